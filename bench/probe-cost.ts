// npm run bench:probe (root): what connlat-probe costs the workload, kernel side, for several builds of it in one run
// (BENCHMARKS.md, "connlat-probe's own cost"):
//   1. BPF run time per connect: kernel.bpf_stats_enabled on, the same STATS_RATE x STATS_SECONDS loopback connects
//      per variant, and each of its programs' run_time_ns / run_cnt read from /proc/PID/fdinfo of the tool's fds.
//   2. Toggled (the measure to read): the workload flat out for TOGGLE_SECONDS while bench/probe-toggle.c attaches and
//      detaches a variant's programs every TOGGLE_MS; each attached window's connect rate against the detached
//      windows either side. On loopback in one network namespace and across a veth pair between two (RATE_NETS).
//   3. Rounds (RATE_ROUNDS; 0 skips): the workload flat out with the tool alone (stdout to /dev/null) or into the
//      agent, against no tool, in short rounds, the order reversed every round; rate and the workload's CPU per
//      connect. On this shared 2-core VM the no-tool rounds alone spread 2x: only the agent's case needs this part.
// bpf_stats is off for parts 2 and 3 (it costs two clock reads per program run).
// Variants (PROBE_VARIANTS, comma-separated), all built here: main (bpf-tools/connlat-probe of the `main` branch),
// this (these sources), this-raw_tp (the same with --attach raw_tp), empty / empty-raw_tp (these sources built with
// -DCONNLAT_PROBE_EMPTY: the programs attached but doing nothing, i.e. the tracepoints' own cost: the floor), null
// (part 2 only: nothing attached in any window, what the method reads when nothing changes), NAME=-DFLAG:-DFLAG
// (these sources with extra flags).
// Workload: bench/storm-peer.py, one client and the accept loop both on CPU 0; tools and agent on CPU 1; a process
// waking every 50 ms on CPU 1 in the no-tool rounds (as the tool's poll loop does; see connect-storm.ts). What each
// connect is (PROBE_WORKLOADS, comma-separated; parts 2 and 3 run each, part 1 the first):
//   connect   nothing but connect, closed with an RST: the least work per connect, so the tool's largest share
//   exchange  one 64-byte request and a 1 KiB answer per connection, the server closing first (no RST)
//   http      one HTTP/1.0 GET per connection, Python's http.client against http.server: an application's own work
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const PEER = `${REPO}bench/storm-peer.py`;
const CLI = `${REPO}bin/connlat.js`;
const PORT = 9000;
const VARIANTS = (process.env.PROBE_VARIANTS ?? 'main,this,this-raw_tp,empty').split(',').filter(Boolean);
const STATS_RATE = Number(process.env.STATS_RATE ?? 5000);
const STATS_SECONDS = Number(process.env.STATS_SECONDS ?? 4);
const STATS_ROUNDS = Number(process.env.STATS_ROUNDS ?? 3);
const RATE_ROUNDS = Number(process.env.RATE_ROUNDS ?? 10);
const RATE_SECONDS = Number(process.env.RATE_SECONDS ?? 5);
/** Which tool variants the flat-out part runs, alone and into the agent ('main,this,empty' and 'main+agent,...'). */
const RATE_CASES = (process.env.RATE_CASES ?? 'main+agent,this+agent').split(',').filter(Boolean);
const TOGGLE_ROUNDS = Number(process.env.TOGGLE_ROUNDS ?? 2);
const TOGGLE_SECONDS = Number(process.env.TOGGLE_SECONDS ?? 30);
const TOGGLE_MS = Number(process.env.TOGGLE_MS ?? 200);
/**
 * Client/server pairs the toggled part runs at once, pair i on CPU i mod 2 and port PORT + i (1: one pair on CPU 0,
 * the toggler on CPU 1; 2: both cores busy, so the machine's rate is the workload's, e.g. ~10k connects/s of http).
 */
const TOGGLE_PAIRS = Number(process.env.TOGGLE_PAIRS ?? 1);
/** Which variants the toggled part runs (default: all). */
const TOGGLE_VARIANTS = (process.env.TOGGLE_VARIANTS ?? VARIANTS.map((v) => v.split('=')[0]).join(',')).split(',');
const NETS = (process.env.RATE_NETS ?? 'loopback,veth').split(',').filter(Boolean) as Net[];
/** storm-peer.py's arguments for each workload, given to both ends. */
const WORKLOAD_ARGS = { connect: [], exchange: ['--exchange', '64,1024'], http: ['--http'] } as const satisfies Record<string, readonly string[]>;
type Workload = keyof typeof WORKLOAD_ARGS;
const WORKLOADS = (process.env.PROBE_WORKLOADS ?? 'connect').split(',').filter(Boolean).map((w) => {
  if (!(w in WORKLOAD_ARGS)) throw new Error(`PROBE_WORKLOADS: unknown workload '${w}' (${Object.keys(WORKLOAD_ARGS).join(', ')})`);
  return w as Workload;
});
const TAG = `connlat-pcost-${process.pid}`;

type Net = 'loopback' | 'veth';
/** Undone on exit, also on SIGINT/SIGTERM: namespaces deleted, children killed. */
const cleanups = new Set<() => void>();
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { for (const c of cleanups) c(); process.exit(130); });
/** A build of the probe: its binary (run with args), its BPF object and the section prefix of the set it attaches. */
interface Variant { name: string; file: string; args: string[]; obj: string; section: string }
interface Topology { client: string; server: string; host: string; teardown: () => void }

function run(file: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(file, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')}: ${(r.stderr || r.stdout || '').trim()}`);
  return r.stdout;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Builds every variant with the probe's Makefile into a temporary directory (the binary, and the BPF object that
 * bench/probe-toggle.c loads), and the toggler itself.
 */
function buildVariants(): { variants: Variant[]; toggler: string } {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-pcost-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', remove);
  cleanups.add(remove);
  const probeSrc = `${REPO}bpf-tools/connlat-probe`;
  const make = (src: string, name: string, extra: string[] = []) => {
    run('make', ['-s', '-C', src, `OUTPUT=${join(dir, name)}`, ...extra]);
    return { file: join(dir, name, 'connlat-probe'), obj: join(dir, name, 'connlat-probe.bpf.o') };
  };
  const built = new Map<string, { file: string; obj: string }>();
  const once = (key: string, build: () => { file: string; obj: string }) => built.get(key) ?? built.set(key, build()).get(key)!;
  const variants = VARIANTS.map((name): Variant => {
    switch (name) {
      case 'this': return { name, ...once('this', () => make(probeSrc, 'this')), args: [], section: 'tp_btf/' };
      case 'this-raw_tp': return { name, ...once('this', () => make(probeSrc, 'this')), args: ['--attach', 'raw_tp'], section: 'raw_tp/' };
      case 'main': {
        const src = join(dir, 'main-src');
        run('sh', ['-c', `mkdir -p ${src} && git -C ${REPO} archive main bpf-tools/connlat-probe | tar -x -C ${src}`]);
        return { name, ...make(join(src, 'bpf-tools/connlat-probe'), 'main'), args: [], section: 'raw_tp/' };
      }
      case 'empty': return { name, ...make(probeSrc, 'empty', ['BPF_EXTRA_CFLAGS=-DCONNLAT_PROBE_EMPTY']), args: [], section: 'tp_btf/' };
      // the toggled part's null check: windows alternate with nothing attached (the probe is not run otherwise)
      case 'null': return { name, ...once('this', () => make(probeSrc, 'this')), args: [], section: 'none/' };
      case 'empty-raw_tp': return { name, ...once('empty', () => make(probeSrc, 'empty', ['BPF_EXTRA_CFLAGS=-DCONNLAT_PROBE_EMPTY'])), args: ['--attach', 'raw_tp'], section: 'raw_tp/' };
      default: {
        // NAME=-DFLAG:-DFLAG...: these sources built with extra flags (experiments)
        const m = /^([\w-]+)=(.+)$/.exec(name);
        if (!m) throw new Error(`PROBE_VARIANTS: unknown variant '${name}' (main, this, this-raw_tp, empty, empty-raw_tp, NAME=-DFLAG:-DFLAG)`);
        const flags = m[2]!.replaceAll(':', ' ');
        return { name: m[1]!, ...make(probeSrc, m[1]!, [`BPF_EXTRA_CFLAGS=${flags}`, `CFLAGS=-O2 -g ${flags}`]), args: [], section: 'tp_btf/' };
      }
    }
  });
  const toggler = join(dir, 'probe-toggle');
  const arch = process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  run('gcc', ['-O2', '-Wall', '-o', toggler, `${REPO}bench/probe-toggle.c`, `/usr/lib/${arch}/libbpf.a`, '-lelf', '-lz']);
  return { variants, toggler };
}

/** loopback: one namespace; veth: a client and a server namespace joined by a veth pair (nothing in the root one). */
function topology(net: Net): Topology {
  const client = `${TAG}-c`;
  const server = net === 'veth' ? `${TAG}-s` : client;
  const names = [...new Set([client, server])];
  const teardown = () => { for (const ns of names) spawnSync('ip', ['netns', 'del', ns]); cleanups.delete(teardown); };
  cleanups.add(teardown);
  try {
    for (const ns of names) {
      run('ip', ['netns', 'add', ns]);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=10000 65000', 'net.core.somaxconn=65535',
        'net.ipv4.tcp_max_syn_backlog=65535']);
    }
    if (net === 'loopback') return { client, server, host: '127.0.0.1', teardown };
    run('ip', ['-n', client, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth0', 'netns', server]);
    for (const [ns, addr] of [[client, '10.213.0.1'], [server, '10.213.0.2']] as const) {
      run('ip', ['-n', ns, 'addr', 'add', `${addr}/30`, 'dev', 'veth0']);
      run('ip', ['-n', ns, 'link', 'set', 'veth0', 'up']);
    }
    return { client, server, host: '10.213.0.2', teardown };
  } catch (e) {
    teardown();
    throw e;
  }
}

async function startServer(t: Topology, load: Workload, pair = 0): Promise<ChildProcess> {
  const p = spawn('ip', ['netns', 'exec', t.server, 'taskset', '-c', String(pair % 2), 'python3', PEER, ...WORKLOAD_ARGS[load], 'serve', String(PORT + pair), t.host], { stdio: ['ignore', 'pipe', 'inherit'] });
  const kill = () => p.kill('SIGTERM');
  cleanups.add(kill);
  p.once('exit', () => cleanups.delete(kill));
  await new Promise<void>((r) => p.stdout!.once('data', () => r()));
  return p;
}

function workload(t: Topology, load: Workload, rate: number, seconds: number): Promise<{ connects: number; failed: number; seconds: number; cpu: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', t.client, 'taskset', '-c', '0', 'python3', PEER, ...WORKLOAD_ARGS[load], 'connect', String(PORT), String(rate), String(seconds), t.host],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`storm-peer.py connect exited ${code}`))));
  });
}

/** user + system CPU seconds of a process so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ
}

/** Program id -> (name, run_time_ns, run_cnt) of the BPF programs a process holds, from /proc/PID/fdinfo. */
function progStats(pid: number): Map<number, { ns: number; runs: number }> {
  const stats = new Map<number, { ns: number; runs: number }>();
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let info: string;
    try { info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'); } catch { continue; }
    const id = /^prog_id:\s+(\d+)$/m.exec(info)?.[1];
    if (!id) continue;
    stats.set(Number(id), { ns: Number(/^run_time_ns:\s+(\d+)$/m.exec(info)?.[1] ?? NaN), runs: Number(/^run_cnt:\s+(\d+)$/m.exec(info)?.[1] ?? NaN) });
  }
  return stats;
}

function progName(id: number): string {
  return (JSON.parse(run('bpftool', ['prog', 'show', 'id', String(id), '-j'])) as { name: string }).name;
}

/** A variant attached (its programs loaded and attached: 3 prog fds and its header printed), output to /dev/null or the agent. */
async function attach(v: Variant, withAgent: boolean): Promise<{ pid: number; stop: () => Promise<void> }> {
  const agent = withAgent
    ? spawn('taskset', ['-c', '1', process.execPath, CLI, 'run', '--source', '-', '--export', 'otlp-json:/dev/null', '--health-addr', 'off',
      '--view', 'off', '--kubernetes', 'off', '--export-interval-ms', '60000'], { stdio: ['pipe', 'ignore', 'ignore'] })
    : undefined;
  const tool = spawn('taskset', ['-c', '1', v.file, ...v.args], { stdio: ['ignore', agent ? agent.stdin! : openSync('/dev/null', 'w'), 'pipe'] });
  let err = '';
  tool.stderr!.on('data', (d) => (err += d));
  const kill = () => { tool.kill('SIGKILL'); agent?.kill('SIGKILL'); };
  cleanups.add(kill);
  const exited = (p: ChildProcess) => (p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => p.once('exit', () => r())));
  const deadline = Date.now() + 15_000;
  while (progStats(tool.pid!).size < 3) {
    if (tool.exitCode !== null || Date.now() > deadline) throw new Error(`${v.name} did not attach: ${err.trim()}`);
    await sleep(50);
  }
  await sleep(withAgent ? 2000 : 300); // the agent's start-up (JIT) out of the round
  return {
    pid: tool.pid!,
    stop: async () => {
      cleanups.delete(kill);
      tool.kill('SIGINT');
      await exited(tool);
      if (agent) { agent.stdin!.end(); await exited(agent); }
      if (/^lost /m.test(err)) console.log(`    ${v.name}: ${err.trim().split('\n').join('; ')}`);
    },
  };
}

async function bpfStats(variants: Variant[]): Promise<void> {
  const before = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  run('sysctl', ['-qw', 'kernel.bpf_stats_enabled=1']);
  const t = topology('loopback');
  const load = WORKLOADS[0]!;
  const server = await startServer(t, load);
  try {
    console.log(`\nBPF run time per loopback connect, workload ${load} (bpf_stats; ${STATS_RATE}/s x ${STATS_SECONDS} s per variant and round, ${STATS_ROUNDS} rounds alternating):`);
    const perConnect: Record<string, number[]> = {};
    const perProg: Record<string, Record<string, { ns: number; runs: number; connects: number }>> = {};
    await workload(t, load, STATS_RATE, 1); // warm-up
    for (let round = 0; round < STATS_ROUNDS; round++) {
      const order = round % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        const a = await attach(v, false);
        const s0 = progStats(a.pid);
        const w = await workload(t, load, STATS_RATE, STATS_SECONDS);
        const s1 = progStats(a.pid);
        const names = new Map([...s1.keys()].map((id) => [id, progName(id)]));
        await a.stop();
        let total = 0;
        for (const [id, end] of s1) {
          const d = { ns: end.ns - s0.get(id)!.ns, runs: end.runs - s0.get(id)!.runs };
          total += d.ns;
          const name = names.get(id)!;
          const p = ((perProg[v.name] ??= {})[name] ??= { ns: 0, runs: 0, connects: 0 });
          p.ns += d.ns; p.runs += d.runs; p.connects += w.connects;
        }
        (perConnect[v.name] ??= []).push(total / w.connects);
      }
    }
    console.log('| variant | ns per connect, all programs (median; rounds) | per program: ns per run, runs per connect |');
    console.log('| --- | --- | --- |');
    for (const v of variants) {
      const progs = Object.entries(perProg[v.name]!).map(([n, p]) => `${n} ${(p.ns / Math.max(p.runs, 1)).toFixed(0)} ns x ${(p.runs / p.connects).toFixed(2)}`).join('; ');
      console.log(`| ${v.name} | ${median(perConnect[v.name]!).toFixed(0)} (${perConnect[v.name]!.map((n) => n.toFixed(0)).join(' ')}) | ${progs} |`);
    }
  } finally {
    server.kill('SIGTERM');
    t.teardown();
    run('sysctl', ['-qw', `kernel.bpf_stats_enabled=${before}`]);
  }
}

async function flatOut(net: Net, load: Workload, variants: Variant[]): Promise<void> {
  const t = topology(net);
  const server = await startServer(t, load);
  const byName = new Map(variants.map((v) => [v.name, v]));
  const cases = RATE_CASES.filter((c) => byName.has(c.replace('+agent', '')));
  try {
    console.log(`\nworkload ${load} flat out over ${net} (1 client + accept loop on CPU 0; tool [+ agent] on CPU 1), ${RATE_ROUNDS} rounds x ${RATE_SECONDS} s, order reversed every round; load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    await workload(t, load, 0, 2); // warm-up: the first flat-out run in a fresh namespace is slow
    const rates: Record<string, number[]> = { none: [] };
    const cpuPer: Record<string, number[]> = { none: [] }; // workload CPU us per connect (client + accept loop)
    for (let round = 0; round < RATE_ROUNDS; round++) {
      const all = ['none', ...cases];
      const order = round % 2 === 0 ? all : [...all].reverse();
      const line: string[] = [];
      for (const c of order) {
        const wake = c === 'none' ? spawn('taskset', ['-c', '1', 'python3', '-c', 'import time\nwhile True: time.sleep(0.05)'], { stdio: 'ignore' }) : undefined;
        const a = c === 'none' ? undefined : await attach(byName.get(c.replace('+agent', ''))!, c.endsWith('+agent'));
        const server0 = cpuSeconds(server.pid!);
        const w = await workload(t, load, 0, RATE_SECONDS);
        const serverCpu = cpuSeconds(server.pid!) - server0;
        await a?.stop();
        wake?.kill('SIGKILL');
        (rates[c] ??= []).push(w.connects / w.seconds);
        (cpuPer[c] ??= []).push(((w.cpu + serverCpu) / w.connects) * 1e6);
        line.push(`${c} ${Math.round(w.connects / w.seconds)}/s ${cpuPer[c]!.at(-1)!.toFixed(1)} us`);
      }
      console.log(`  round ${round + 1}: ${line.join(', ')}; load ${loadavg()[0]!.toFixed(1)}`);
    }
    // rate: what the workload got; CPU per connect: what each connect cost it, which the machine's other load moves
    // far less (the workload's rate is 1 / CPU per connect while it has its core to itself)
    const spread = (xs: number[]) => `${Math.min(...xs).toFixed(3)}-${Math.max(...xs).toFixed(3)}`;
    const quartiles = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return `${s[Math.floor((s.length - 1) / 4)]!.toFixed(3)}-${s[Math.ceil((s.length - 1) * 3 / 4)]!.toFixed(3)}`; };
    console.log('| case | median connects/s | rate / no tool: median of rounds (quartiles; min-max) | median us CPU per connect | CPU per connect / no tool: median of rounds (quartiles; min-max) |');
    console.log('| --- | --- | --- | --- | --- |');
    console.log(`| none | ${Math.round(median(rates.none!))} | 1 | ${median(cpuPer.none!).toFixed(1)} | 1 |`);
    for (const c of cases) {
      const ratios = rates[c]!.map((r, i) => r / rates.none![i]!);
      const cpuRatios = cpuPer[c]!.map((r, i) => r / cpuPer.none![i]!);
      console.log(`| ${c} | ${Math.round(median(rates[c]!))} | ${median(ratios).toFixed(3)} (${quartiles(ratios)}; ${spread(ratios)}) | ` +
        `${median(cpuPer[c]!).toFixed(1)} | ${median(cpuRatios).toFixed(3)} (${quartiles(cpuRatios)}; ${spread(cpuRatios)}) |`);
    }
  } finally {
    server.kill('SIGTERM');
    t.teardown();
  }
}

/** Cumulative connects at time `at` (ns), interpolated between the workload's samples. */
function connectsAt(samples: [number, number][], at: number): number {
  let lo = 0;
  let hi = samples.length - 1;
  if (at <= samples[0]![0]) return samples[0]![1];
  if (at >= samples[hi]![0]) return samples[hi]![1];
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (samples[mid]![0] <= at) lo = mid; else hi = mid;
  }
  const [t0, c0] = samples[lo]!;
  const [t1, c1] = samples[hi]!;
  return c0 + ((c1 - c0) * (at - t0)) / (t1 - t0);
}

/**
 * 3. The workload flat out while bench/probe-toggle.c attaches and detaches a variant's programs every TOGGLE_MS
 * (ring buffer drained every 50 ms, output discarded, no agent): each attached window's connect rate against the mean
 * of the detached windows either side. Windows a fifth of a second apart see the same machine, which 3-5 s rounds
 * on this shared VM do not (their rates without a tool spread 2x).
 */
async function toggled(net: Net, load: Workload, variants: Variant[], toggler: string): Promise<void> {
  const t = topology(net);
  const pairs = Array.from({ length: TOGGLE_PAIRS }, (_, i) => i);
  const servers = await Promise.all(pairs.map((i) => startServer(t, load, i)));
  const guardNs = 10e6; // left out at each edge of a window: attach/detach takes ~1 ms
  try {
    console.log(`\nworkload ${load} flat out over ${net} (${TOGGLE_PAIRS} client/server pair${TOGGLE_PAIRS > 1 ? 's' : ''}), programs attached and detached every ${TOGGLE_MS} ms (${TOGGLE_ROUNDS} x ${TOGGLE_SECONDS} s per variant, alternating; load ${loadavg().map((l) => l.toFixed(1)).join(' ')}):`);
    await workload(t, load, 0, 2); // warm-up
    const ratios: Record<string, number[]> = {};
    for (let round = 0; round < TOGGLE_ROUNDS; round++) {
      for (const v of round % 2 === 0 ? variants : [...variants].reverse()) {
        const tog = spawn('taskset', ['-c', '1', toggler, v.obj, v.section, String(TOGGLE_MS), String(TOGGLE_SECONDS + 1)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        tog.stdout!.on('data', (d) => (out += d));
        const done = new Promise<number | null>((r) => tog.once('exit', r));
        const kill = () => tog.kill('SIGKILL');
        cleanups.add(kill);
        await sleep(300); // loaded and in its first windows
        const clients = await Promise.all(pairs.map((i) => new Promise<[number, number][]>((resolve, reject) => {
          const p = spawn('ip', ['netns', 'exec', t.client, 'taskset', '-c', String(i % 2), 'python3', PEER, ...WORKLOAD_ARGS[load], 'slots', String(PORT + i), String(TOGGLE_SECONDS), t.host], { stdio: ['ignore', 'pipe', 'inherit'] });
          let json = '';
          p.stdout!.on('data', (d) => (json += d));
          p.once('exit', (code) => (code === 0 ? resolve((JSON.parse(json) as { samples: [number, number][] }).samples) : reject(new Error(`storm-peer.py slots exited ${code}`))));
        })));
        if ((await done) !== 0) throw new Error(`probe-toggle ${v.name} failed`);
        cleanups.delete(kill);
        // all pairs' connects together; only the span every client covered
        const connects = (at: number) => clients.reduce((sum, samples) => sum + connectsAt(samples, at), 0);
        const first = Math.max(...clients.map((c) => c[0]![0]));
        const last = Math.min(...clients.map((c) => c.at(-1)![0]));
        const windows = out.trim().split('\n').map((l) => l.split(' ').map(Number) as [number, number, number])
          .filter(([, a, b]) => a > first && b < last)
          .map(([on, a, b]) => ({ on, rate: (connects(b - guardNs) - connects(a + guardNs)) / ((b - a - 2 * guardNs) / 1e9) }));
        const mine = (ratios[v.name] ??= []);
        const before = mine.length;
        for (let i = 1; i + 1 < windows.length; i++) {
          if (windows[i]!.on && !windows[i - 1]!.on && !windows[i + 1]!.on) mine.push(windows[i]!.rate / ((windows[i - 1]!.rate + windows[i + 1]!.rate) / 2));
        }
        const rate = (connects(last) - connects(first)) / ((last - first) / 1e9);
        console.log(`  ${v.name}: ${mine.length - before} windows paired, ${Math.round(rate)} connects/s overall, median ratio this run ${median(mine.slice(before)).toFixed(3)}; load ${loadavg()[0]!.toFixed(1)}`);
      }
    }
    console.log('| variant | attached windows paired | rate attached / detached: median (quartiles) | mean +- 2 standard errors |');
    console.log('| --- | --- | --- | --- |');
    for (const v of variants) {
      const r = [...ratios[v.name]!].sort((a, b) => a - b);
      const mean = r.reduce((x, y) => x + y, 0) / r.length;
      const se = Math.sqrt(r.reduce((x, y) => x + (y - mean) ** 2, 0) / (r.length - 1) / r.length);
      console.log(`| ${v.name} | ${r.length} | ${median(r).toFixed(3)} (${r[Math.floor((r.length - 1) / 4)]!.toFixed(3)}-${r[Math.ceil((r.length - 1) * 3 / 4)]!.toFixed(3)}) | ${mean.toFixed(3)} +- ${(2 * se).toFixed(3)} |`);
    }
  } finally {
    for (const server of servers) server.kill('SIGTERM');
    t.teardown();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('probe-cost needs root (network namespaces, BPF, kernel.bpf_stats_enabled)');
  const { variants, toggler } = buildVariants();
  console.log(`probe cost: variants ${variants.map((v) => v.name).join(', ')}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; ${new Date().toISOString()}`);
  const probes = variants.filter((v) => v.name !== 'null');
  if (STATS_ROUNDS > 0) await bpfStats(probes);
  for (const load of WORKLOADS) {
    if (TOGGLE_ROUNDS > 0) for (const net of NETS) await toggled(net, load, variants.filter((v) => TOGGLE_VARIANTS.includes(v.name)), toggler);
    if (RATE_ROUNDS > 0) for (const net of NETS) await flatOut(net, load, probes);
  }
  console.log(`\nload average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
}

await main();
