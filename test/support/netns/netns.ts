// A network namespace joined to the root namespace by a link with a fixed one-way delay, for tests that need real
// TCP connects with a known latency. Only addresses this helper creates are used: 10.203.A.B/30, one end in the
// root namespace (.1 of the /30), the other inside the test's namespace (.2).
//
// Two ways to make the delay, chosen at creation:
//  - 'netem': a veth pair with `tc qdisc add dev <root end> root netem delay <ms>` (kernels with sch_netem).
//  - 'tun': kernels built without sch_netem (this project's CI VM: CONFIG_NET_SCH_NETEM is not set) get two TUN
//    devices instead of the veth, each driven by socat, with a UDP delay line in this process between them:
//    packets toward the namespace wait <ms> before being passed on, replies pass straight back. Same effect on
//    the TCP handshake as netem on the root end's egress: the SYN arrives <ms> late, so connect() takes ~<ms>.
// teardown() removes everything (processes, devices, qdisc, namespace) and is safe to call more than once and
// after a partial setup; call it from t.after()/finally so a failed assertion still cleans up.
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { ManagedProcess, waitFor } from '../collector/collector.ts';

export type DelayMethod = 'netem' | 'tun';

export interface DelayedLinkOptions {
  /** One-way delay added to packets going from the root namespace into the test namespace. */
  delayMs: number;
  /** Force a method; default: netem when the kernel has it, else tun. */
  method?: DelayMethod;
}

export interface NetnsListener {
  port: number;
  /** Connections accepted so far (the listener reports each on stdout). */
  accepted(): number;
  stop(): Promise<void>;
}

export interface DelayedLink {
  /** Name of the network namespace holding the far end. */
  ns: string;
  method: DelayMethod;
  /** Address of the root-namespace end, e.g. 10.203.17.1 */
  hostAddr: string;
  /** Address inside the namespace, e.g. 10.203.17.2: connect here to cross the delay. */
  nsAddr: string;
  delayMs: number;
  /** Device names this link created (root end first). */
  devices: string[];
  /** PIDs of every process this link started (socat, delay relay, listeners), for leak checks. */
  pids(): number[];
  /** Runs a command inside the namespace (ip netns exec) to completion. */
  exec(file: string, args: string[]): Promise<string>;
  /** Starts a TCP listener inside the namespace on nsAddr:port that accepts and closes every connection. */
  listen(port: number): Promise<NetnsListener>;
  teardown(): Promise<void>;
}

const NS_PREFIX = 'connlat-test-';
let linkCounter = 0;

/** Why network-namespace tests cannot run here, or undefined. */
export function netnsSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (ip netns, tc)';
  for (const bin of ['ip', 'tc']) {
    if (!which(bin)) return `${bin} not found (apt-get install iproute2)`;
  }
  if (kernelHasNetem() !== true && !which('socat')) {
    return 'the kernel has no sch_netem, and socat (for the TUN delay line instead) is not installed: apt-get install socat';
  }
  return undefined;
}

/** Whether the running kernel has sch_netem, from /proc/config.gz; undefined when that file is not there. */
export function kernelHasNetem(): boolean | undefined {
  try {
    const config = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
    return /^CONFIG_NET_SCH_NETEM=[ym]$/m.test(config);
  } catch {
    return undefined;
  }
}

function which(bin: string): string | undefined {
  // sbin too: ip and tc live there, and a non-login root shell's PATH may lack it.
  for (const dir of [...(process.env.PATH ?? '/usr/bin:/bin').split(':'), '/usr/sbin', '/sbin']) {
    if (dir && existsSync(`${dir}/${bin}`)) return `${dir}/${bin}`;
  }
  return undefined;
}

/** Runs a command to completion; rejects with its stderr on failure. */
export function sh(file: string, args: string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(which(file) ?? file, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
  });
}

/** Namespaces, links and netem qdiscs that look like ours (any test process), for leak checks. */
export async function listTestArtifacts(): Promise<{ namespaces: string[]; links: string[]; netemQdiscs: string[] }> {
  const nsOut = await sh('ip', ['netns', 'list']).catch(() => '');
  const namespaces = nsOut
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(NS_PREFIX));
  const linkOut = await sh('ip', ['-o', 'link', 'show']);
  const links = linkOut
    .split('\n')
    .map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? '')
    .filter((n) => /^clt\d+[ab]\d+$/.test(n));
  const qdiscOut = await sh('tc', ['qdisc', 'show']);
  const netemQdiscs = qdiscOut.split('\n').filter((l) => l.includes('netem') && /dev clt\d+/.test(l));
  return { namespaces, links, netemQdiscs };
}

/** Removes namespaces/links left by test processes that no longer exist (a crashed earlier run). */
export async function removeStaleArtifacts(): Promise<void> {
  const alive = processAlive;
  const { namespaces, links } = await listTestArtifacts();
  for (const ns of namespaces) {
    const pid = Number(/^connlat-test-(\d+)-/.exec(ns)?.[1]);
    if (pid && pid !== process.pid && !alive(pid)) await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
  for (const link of links) {
    const pid = Number(/^clt(\d+)[ab]/.exec(link)?.[1]);
    if (pid && pid !== process.pid && !alive(pid)) await sh('ip', ['link', 'del', link]).catch(() => undefined);
  }
}

/** Picks a 10.203.A.B/30 block that no interface in the root namespace uses. */
async function pickSubnet(): Promise<{ hostAddr: string; nsAddr: string }> {
  const used = await sh('ip', ['-o', '-4', 'addr', 'show']);
  for (let attempt = 0; attempt < 64; attempt++) {
    const a = Math.floor(Math.random() * 256);
    const b = Math.floor(Math.random() * 64) * 4;
    const base = `10.203.${a}.`;
    if (used.includes(`${base}${b + 1}/`) || used.includes(`${base}${b + 2}/`)) continue;
    return { hostAddr: `${base}${b + 1}`, nsAddr: `${base}${b + 2}` };
  }
  throw new Error('no free 10.203.x.y/30 block found');
}

export async function createDelayedLink(opts: DelayedLinkOptions): Promise<DelayedLink> {
  const n = linkCounter++;
  const ns = `${NS_PREFIX}${process.pid}-${n}`;
  const hostIf = `clt${process.pid}a${n}`;
  const nsIf = `clt${process.pid}b${n}`;
  const { hostAddr, nsAddr } = await pickSubnet();
  const cleanups: Array<() => Promise<void>> = [];
  const started: ManagedProcess[] = [];
  let tornDown: Promise<void> | undefined;
  const teardown = () => {
    // Reverse order of setup; every step tolerates "already gone".
    tornDown ??= (async () => {
      const errors: string[] = [];
      for (const fn of cleanups.reverse()) {
        await fn().catch((err: unknown) => errors.push((err as Error).message));
      }
      if (errors.length) throw new Error(`teardown of ${ns}: ${errors.join('; ')}`);
    })();
    return tornDown;
  };

  // netem unless the kernel is known to lack it; if tc still says the qdisc kind is unknown, fall back to tun.
  let method: DelayMethod = opts.method ?? (kernelHasNetem() === false ? 'tun' : 'netem');
  try {
    await sh('ip', ['netns', 'add', ns]);
    cleanups.push(() => sh('ip', ['netns', 'del', ns]).then(() => undefined));
    await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);

    if (method === 'netem') {
      await sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', ns]);
      cleanups.push(() => sh('ip', ['link', 'del', hostIf]).then(() => undefined, () => undefined));
      try {
        await sh('tc', ['qdisc', 'add', 'dev', hostIf, 'root', 'netem', 'delay', `${opts.delayMs}ms`]);
        // Goes away with the device anyway; deleting it explicitly makes a failed link delete visible.
        cleanups.push(() => sh('tc', ['qdisc', 'del', 'dev', hostIf, 'root']).then(() => undefined, () => undefined));
        await sh('ip', ['addr', 'add', `${hostAddr}/30`, 'dev', hostIf]);
        await sh('ip', ['link', 'set', hostIf, 'up']);
      } catch (err) {
        if (opts.method === 'netem' || !/qdisc kind is unknown/i.test((err as Error).message)) throw err;
        await sh('ip', ['link', 'del', hostIf]); // the peer inside the namespace goes with it
        method = 'tun';
      }
    }
    if (method === 'tun') {
      await setUpTunDelayLine({ ns, hostIf, nsIf, hostAddr, delayMs: opts.delayMs, cleanups, started });
    }
    await sh('ip', ['-n', ns, 'addr', 'add', `${nsAddr}/30`, 'dev', nsIf]);
    await sh('ip', ['-n', ns, 'link', 'set', nsIf, 'up']);
  } catch (err) {
    await teardown().catch(() => undefined);
    throw err;
  }

  const exec = (file: string, args: string[]) => sh('ip', ['netns', 'exec', ns, file, ...args]);

  const listen = async (port: number): Promise<NetnsListener> => {
    // A tiny Node listener run inside the namespace with this same Node binary: accept, count, close.
    const script = `const s=require('net').createServer(c=>{process.stdout.write('A\\n');c.destroy()});` +
      `s.listen(${port},'${nsAddr}',()=>process.stdout.write('L\\n'));process.on('SIGTERM',()=>s.close(()=>process.exit(0)))`;
    const proc = new ManagedProcess(`listener ${nsAddr}:${port}`, which('ip') ?? 'ip', ['netns', 'exec', ns, process.execPath, '-e', script], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    const stop = () => proc.stop('SIGTERM', 5000).then(() => undefined);
    cleanups.push(stop);
    started.push(proc);
    await waitFor(
      `listener on ${nsAddr}:${port}`,
      async () => {
        if (!proc.running) throw new Error(`listener exited: ${proc.tail()}`);
        return proc.output.includes('L\n') ? true : undefined;
      },
      10_000,
      50,
    );
    return { port, accepted: () => proc.output.split('\n').filter((l) => l === 'A').length, stop };
  };

  const pids = () => started.map((p) => p.child.pid).filter((pid): pid is number => pid !== undefined);
  return { ns, method, hostAddr, nsAddr, delayMs: opts.delayMs, devices: [hostIf, nsIf], pids, exec, listen, teardown };
}

/**
 * Two TUN devices (root end hostIf with hostAddr/30; far end nsIf, moved into ns) driven by socat, bridged by
 * delay-relay.ts over loopback UDP. socat writes each packet it reads from its TUN device as one datagram, and each
 * datagram it receives into its device as one packet. socat and the relay run at real-time priority (chrt -f) when
 * possible: otherwise, on a loaded machine, scheduler wake-up latency adds tens of ms to every packet.
 */
async function setUpTunDelayLine(p: {
  ns: string;
  hostIf: string;
  nsIf: string;
  hostAddr: string;
  delayMs: number;
  cleanups: Array<() => Promise<void>>;
  started: ManagedProcess[];
}): Promise<void> {
  const rt = which('chrt') ? ['chrt', '-f', '50'] : [];
  const spawnRt = (name: string, argv: string[]) => {
    const [file, ...args] = [...rt, ...argv] as [string, ...string[]];
    const proc = new ManagedProcess(name, file, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    p.cleanups.push(() => proc.stop('SIGTERM', 5000).then(() => undefined));
    p.started.push(proc);
    return proc;
  };
  const hostSocatPort = await freeUdpPort();
  const nsSocatPort = await freeUdpPort();

  const relay = spawnRt(`delay-relay ${p.hostIf}`, [process.execPath, RELAY_SCRIPT, String(p.delayMs), String(hostSocatPort), String(nsSocatPort)]);
  const ports = await waitFor(
    'the delay relay',
    async () => {
      if (!relay.running) throw new Error(`delay-relay exited: ${relay.tail()}`);
      const line = relay.output.split('\n').find((l) => l.startsWith('{'));
      return line ? (JSON.parse(line) as { toHost: number; toNs: number }) : undefined;
    },
    10_000,
    20,
  );

  const socat = (dev: string, addr: string | undefined, ownPort: number, relayPort: number) => {
    const tun = `TUN${addr ? `:${addr}/30` : ''},tun-name=${dev},tun-type=tun,iff-no-pi${addr ? ',iff-up' : ''}`;
    return spawnRt(`socat ${dev}`, ['socat', '-b', '65536', tun, `UDP-DATAGRAM:127.0.0.1:${relayPort},bind=127.0.0.1:${ownPort}`]);
  };
  const waitDevice = (dev: string, proc: ManagedProcess) =>
    waitFor(
      `TUN device ${dev}`,
      async () => {
        if (!proc.running) throw new Error(`socat for ${dev} exited: ${proc.tail()}`);
        return (await sh('ip', ['link', 'show', dev]).then(() => true, () => false)) ? true : undefined;
      },
      10_000,
      50,
    );

  const hostSocat = socat(p.hostIf, p.hostAddr, hostSocatPort, ports.toHost);
  await waitDevice(p.hostIf, hostSocat);
  // The far end is created here in the root namespace (socat runs next to the relay, on this loopback) and then
  // moved into the test namespace; socat's file descriptor keeps working across the move.
  const nsSocat = socat(p.nsIf, undefined, nsSocatPort, ports.toNs);
  await waitDevice(p.nsIf, nsSocat);
  await sh('ip', ['link', 'set', p.nsIf, 'netns', p.ns]);
  // socat configures the root end's address asynchronously; wait until it is there.
  await waitFor(
    `address on ${p.hostIf}`,
    async () => ((await sh('ip', ['-o', '-4', 'addr', 'show', 'dev', p.hostIf])).includes(p.hostAddr) ? true : undefined),
    10_000,
    50,
  );
}

const RELAY_SCRIPT = new URL('./delay-relay.ts', import.meta.url).pathname;

/** A UDP port free on 127.0.0.1 right now: bind, read, release. */
function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s: Socket = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
  });
}

/** Whether a process with this PID still exists (for "nothing left behind" assertions). */
export function processAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
