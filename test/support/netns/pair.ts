// Two network namespaces made by the test, joined by a veth pair, with IPv4 and IPv6 addresses of their own:
// `client` makes connects, `server` holds listeners and the nftables rules that drop or reject them. Nothing is
// connected to the root namespace, so no packet can reach any other address. The addresses are random per pair
// (10.204.A.B/30, fd0c:204:A:B::/64) because BPF tools see every namespace and tests tell their connects apart by
// destination address. teardown() deletes both namespaces (and with them the veth pair and the rules).
import { ManagedProcess, waitFor } from '../collector/collector.ts';
import { sh } from './netns.ts';

export interface NetnsPair {
  client: string;
  server: string;
  v4: { client: string; server: string };
  v6: { client: string; server: string };
  /** Runs a command in one of the two namespaces to completion; resolves with its stdout. */
  exec(ns: string, file: string, args: string[], timeoutMs?: number): Promise<string>;
  /** Listeners in the server namespace that accept and close, on both addresses. */
  listen(ports: number[]): Promise<void>;
  /** Connects from the client namespace, all at once (see tcp-peer.ts). */
  connect(targets: { host: string; port: number; timeoutMs?: number }[], timeoutMs?: number): Promise<PeerResult[]>;
  teardown(): Promise<void>;
}

export interface PeerResult {
  code: string;
  ms: number;
  localPort?: number;
}

const PEER = new URL('./tcp-peer.ts', import.meta.url).pathname;
let pairCounter = 0;

export async function createNetnsPair(): Promise<NetnsPair> {
  const n = pairCounter++;
  const client = `connlat-test-${process.pid}-pc${n}`;
  const server = `connlat-test-${process.pid}-ps${n}`;
  const a = Math.floor(Math.random() * 256);
  const b = Math.floor(Math.random() * 64) * 4;
  const v4 = { client: `10.204.${a}.${b + 1}`, server: `10.204.${a}.${b + 2}` };
  const prefix = `fd0c:204:${a.toString(16)}:${b.toString(16)}`;
  const v6 = { client: `${prefix}::1`, server: `${prefix}::2` };
  const started: ManagedProcess[] = [];
  const exec = (ns: string, file: string, args: string[], timeoutMs = 15_000) => sh('ip', ['netns', 'exec', ns, file, ...args], timeoutMs);
  const teardown = async () => {
    for (const p of started) await p.stop('SIGTERM', 5000);
    for (const ns of [client, server]) await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
  };
  try {
    for (const ns of [client, server]) {
      await sh('ip', ['netns', 'add', ns]);
      await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      // no duplicate address detection: a tentative link-local address delays neighbour discovery, so the first
      // IPv6 packets after setup could be lost and cost a SYN retransmit
      await sh('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    }
    // made inside the client namespace with its peer in the server one: no device ever sits in the root namespace
    await sh('ip', ['-n', client, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth0', 'netns', server]);
    for (const [ns, addr4, addr6] of [[client, v4.client, v6.client], [server, v4.server, v6.server]] as const) {
      await sh('ip', ['-n', ns, 'addr', 'add', `${addr4}/30`, 'dev', 'veth0']);
      await sh('ip', ['-n', ns, '-6', 'addr', 'add', `${addr6}/64`, 'dev', 'veth0', 'nodad']);
      await sh('ip', ['-n', ns, 'link', 'set', 'veth0', 'up']);
    }
  } catch (err) {
    await teardown();
    throw err;
  }

  const listen = async (ports: number[]) => {
    const args = ports.flatMap((p) => [v4.server, String(p), v6.server, String(p)]);
    const proc = new ManagedProcess(`listeners in ${server}`, 'ip', ['netns', 'exec', server, process.execPath, PEER, 'listen', ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin:/usr/sbin:/sbin' },
    });
    started.push(proc);
    await waitFor(
      `listeners in ${server}`,
      async () => {
        if (!proc.running) throw new Error(`listeners exited: ${proc.output}`);
        return proc.output.includes('L\n') ? true : undefined;
      },
      10_000,
      50,
    );
  };
  const connect = async (targets: { host: string; port: number; timeoutMs?: number }[], timeoutMs = 60_000) =>
    JSON.parse(await exec(client, process.execPath, [PEER, 'connect', JSON.stringify(targets)], timeoutMs)) as PeerResult[];
  return { client, server, v4, v6, exec, listen, connect, teardown };
}
