// npm run bench:storm (root): connects at fixed rates on loopback, in a network namespace of its own, and what the
// connect tools cost: CPU per connect of tool + agent for connlat-probe and for tcpstates (and of the agent alone
// for tcpconnlat-format lines written into it at the same rate), events lost, and the connect rate a workload
// reaches with and without each tool attached, and the workload's CPU per connect at a fixed 10k connects/s with and
// without connlat-probe (the kernel-side cost). BENCHMARKS.md records the results.
//
// Workload: bench/storm-peer.py (blocking Python clients paced in 10 ms slots, RST close, pinned to CPU 0; a Python
// accept loop, not pinned). Tool and agent are pinned to CPU 1. The tool's stdout goes through this process into the agent's
// stdin (`--source -`), so lines can be counted; the agent runs from the sources (node type stripping), or with
// STORM_AGENT=dist from the compiled tree as the image runs it, with STORM_NODE_FLAGS (e.g. the DaemonSet's
// NODE_OPTIONS, and NAME=value words for its environment; several sets separated by '|' run one after the other in
// every fixed-rate case, for ratios in one run). CPU is sampled every second: the first STORM_WARMUP seconds of a storm (JIT warm-up) are reported
// apart from the rest (steady state); the storm starts after the agent's first metric export (its one-time lazy loads).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineDecoder } from '../src/parse/decoder.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const PEER = `${REPO}bench/storm-peer.py`;
const AGENT_TREE = process.env.STORM_AGENT === 'dist' ? 'dist' : 'sources';
const ENV_WORD = /^[A-Z_][A-Z0-9_]*=/;
const NODE_FLAG_SETS = (process.env.STORM_NODE_FLAGS ?? '').split('|').map((set) => set.split(' ').filter(Boolean));
/** Seconds at the start of each storm reported as warm-up, apart from the steady state after them. */
const WARMUP = Number(process.env.STORM_WARMUP ?? 3);
/** The agent's export interval; the storm starts after its first export. */
const EXPORT_INTERVAL_MS = 10_000;
let CLI = `${REPO}bin/connlat.js`;
const PORT = 9000;
const SECONDS = Number(process.env.STORM_SECONDS ?? 5);
/** Fixed rates of the CPU-per-connect cases (STORM_RATES= runs none). */
const RATES = (process.env.STORM_RATES ?? '1000,5000,10000,20000').split(',').filter(Boolean).map(Number);
const NS = `connlat-bench-${process.pid}`;
/** Flat-out rounds (0: none, and no delivery-delay check either). */
const ROUNDS = Number(process.env.STORM_ROUNDS ?? 3);
const TICK = 100; // USER_HZ
/** Rounds of the workload-CPU comparison (0: none) and its fixed rate. */
const WORKLOAD_ROUNDS = Number(process.env.STORM_WORKLOAD_ROUNDS ?? 5);
const WORKLOAD_RATE = Number(process.env.STORM_WORKLOAD_RATE ?? 10_000);

type Mode = 'connlat-probe' | 'tcpstates' | 'tcpconnlat-lines';
/** The fixed-rate cases to run (STORM_MODES=connlat-probe,tcpconnlat-lines; default all three). */
const MODES = (process.env.STORM_MODES ?? 'connlat-probe,tcpstates,tcpconnlat-lines').split(',') as Mode[];

function sh(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${file} ${args.join(' ')}: ${err.trim()}`))));
  });
}

/** user + system CPU seconds of a process so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

function exited(p: ChildProcess): Promise<void> {
  return p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((r) => p.once('exit', () => r()));
}

/**
 * Runs the workload at `rate` connects/s (0: flat out) split over `clients` processes on CPU 0; `cpu` is the clients'
 * user + system CPU seconds (their own getrusage at exit).
 */
async function workload(rate: number, clients: number): Promise<{ connects: number; failed: number; seconds: number; cpu: number }> {
  const runs = await Promise.all(Array.from({ length: clients }, () =>
    sh('ip', ['netns', 'exec', NS, 'taskset', '-c', '0', 'python3', PEER, 'connect', String(PORT), String(rate / clients), String(SECONDS)])));
  const parts = runs.map((r) => JSON.parse(r) as { connects: number; failed: number; seconds: number; cpu: number });
  const sum = (key: 'connects' | 'failed' | 'cpu') => parts.reduce((n, p) => n + p[key], 0);
  return { connects: sum('connects'), failed: sum('failed'), seconds: Math.max(...parts.map((p) => p.seconds)), cpu: sum('cpu') };
}

/** A process on CPU 1 that wakes every 50 ms, as the tools' poll loops do (see flatOut). */
function waker(): ChildProcess {
  return spawn('taskset', ['-c', '1', 'python3', '-c', 'import time\nwhile True: time.sleep(0.05)'], { stdio: 'ignore' });
}

interface Attached {
  tool?: ChildProcess;
  agent?: ChildProcess;
  lines: () => string[];
  lost: () => number;
  stop: () => Promise<void>;
}

/** Waits until a starting agent has loaded (its CPU time stops growing) and made its first export (an OTLP/JSON
 * export loads its serializer then), so that neither is measured. */
async function idle(agent: ChildProcess | undefined, spawnedAt: number): Promise<void> {
  if (!agent) return;
  const firstExport = spawnedAt + EXPORT_INTERVAL_MS + 1000 - performance.now();
  if (firstExport > 0) await new Promise((r) => setTimeout(r, firstExport));
  let last = -1;
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const now = cpuSeconds(agent.pid!);
    if (now - last < 0.02) return;
    last = now;
  }
}

/** Starts `mode` (tool into agent, or synthetic tcpconnlat lines into agent); resolves once the tool attached. */
async function attach(mode: Mode, withAgent: boolean, probePath: string, nodeFlags: string[] = []): Promise<Attached> {
  const spawnedAt = performance.now();
  const agent = withAgent
    ? spawn('taskset', ['-c', '1', process.execPath, ...nodeFlags.filter((f) => !ENV_WORD.test(f)), CLI, 'run', '--source', '-', '--export', 'otlp-json:/dev/null',
      '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off', '--export-interval-ms', String(EXPORT_INTERVAL_MS)],
    { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, ...Object.fromEntries(nodeFlags.filter((f) => ENV_WORD.test(f)).map((f) => f.split(/=(.*)/s))) } })
    : undefined;
  agent?.stderr!.resume();
  const kept: string[] = [];
  let partial = '';
  let lost = 0;
  const keep = (chunk: Buffer) => {
    agent?.stdin!.write(chunk);
    const text = partial + chunk.toString('latin1');
    const cut = text.lastIndexOf('\n');
    partial = text.slice(cut + 1);
    // keep only what names our port: the tools see every connect of the machine
    for (const line of text.slice(0, cut).split('\n')) if (line.includes(` ${PORT} `) || /^[A-Z]/.test(line)) kept.push(line);
  };
  if (mode === 'tcpconnlat-lines') await idle(agent, spawnedAt);
  if (mode === 'tcpconnlat-lines') return { agent, lines: () => kept, lost: () => 0, stop: async () => { agent?.stdin!.end(); if (agent) await exited(agent); } };
  const tool = mode === 'connlat-probe'
    ? spawn('taskset', ['-c', '1', probePath], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('taskset', ['-c', '1', 'stdbuf', '-oL', '/usr/sbin/tcpstates'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  tool.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    for (const m of d.toString().matchAll(/^lost (\d+) events/gm)) lost += Number(m[1]);
  });
  tool.stdout!.on('data', keep);
  await idle(agent, spawnedAt);
  const deadline = Date.now() + 15_000;
  while (kept.length === 0) {
    if (Date.now() > deadline || tool.exitCode !== null) throw new Error(`${mode} did not attach: ${err.trim()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    tool, agent, lines: () => kept, lost: () => lost,
    stop: async () => {
      tool.kill('SIGINT');
      await exited(tool);
      agent?.stdin!.end();
      if (agent) await exited(agent);
    },
  };
}

/** Writes tcpconnlat lines for `rate` connects/s into the agent for SECONDS, in 50 ms batches (a tool's flushes). */
async function writeConnlatLines(agent: ChildProcess, rate: number): Promise<number> {
  agent.stdin!.write('PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)\n');
  const perBatch = rate / 20;
  let written = 0;
  const start = performance.now();
  for (let b = 0; b < SECONDS * 20; b++) {
    let chunk = '';
    for (let i = 0; i < perBatch; i++, written++) chunk += `${String(20000 + (written % 5000)).padEnd(6)} python3      4  127.0.0.1        127.0.0.1        ${PORT}  0.0${written % 10}\n`;
    agent.stdin!.write(chunk);
    const wait = start + (b + 1) * 50 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  return written;
}

function connectsSeen(mode: Mode, lines: string[]): number {
  if (mode === 'tcpconnlat-lines') return 0;
  const decoder = new LineDecoder(mode);
  let n = 0;
  for (const line of lines) {
    const r = decoder.decode(line, 0);
    if (r.kind === 'event' && r.event.dport === PORT && !r.event.failed) n++;
  }
  return n;
}

/**
 * How late connlat-probe's batched output is: 50 connects to a closed loopback port, 37 ms apart (so they fall at
 * every phase of its 50 ms drain), each timed from the refusal seen by this process to its line arriving here.
 */
async function deliveryDelay(probePath: string): Promise<void> {
  const { createServer, connect } = await import('node:net');
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  const tool = spawn(probePath, [], { stdio: ['ignore', 'pipe', 'ignore'] });
  const arrivals: number[] = []; // arrival time of each line for `port`; connects are sequential, so line i is connect i
  let header = false;
  let partial = '';
  tool.stdout!.setEncoding('latin1').on('data', (chunk: string) => {
    const now = performance.now();
    const text = partial + chunk;
    const cut = text.lastIndexOf('\n');
    partial = text.slice(cut + 1);
    for (const line of text.slice(0, cut).split('\n')) {
      if (line.startsWith('TIME(s)')) header = true;
      if (line.split(/ +/)[7] === String(port)) arrivals.push(now);
    }
  });
  while (!header) await new Promise((r) => setTimeout(r, 20));
  const delays: number[] = [];
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => connect(port, '127.0.0.1').once('error', r));
    const refusedAt = performance.now();
    const deadline = refusedAt + 2000;
    while (arrivals.length <= i && performance.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    if (arrivals.length > i) delays.push(arrivals[i]! - refusedAt);
    await new Promise((r) => setTimeout(r, 37));
  }
  tool.kill('SIGINT');
  await exited(tool);
  delays.sort((a, b) => a - b);
  console.log(`\nconnlat-probe delivery: ${delays.length}/50 lines arrived; after the refusal p50 ${delays[24]?.toFixed(1)} ms, ` +
    `p90 ${delays[44]?.toFixed(1)} ms, max ${delays.at(-1)?.toFixed(1)} ms`);
}

/**
 * Kernel-side cost: the workload flat out with each tool attached (its output read and discarded), against no tool but
 * a process on CPU 1 that wakes every 50 ms as the tools' poll loops do: on this VM a vCPU kept awake alone makes
 * loopback connects up to twice as fast, which is not the tool's doing.
 */
async function flatOut(probePath: string): Promise<void> {
  console.log('\nworkload flat out (1 client, CPU 0), tool user space on CPU 1:');
  await workload(0, 1); // warm-up, not counted: the first flat-out run in a fresh namespace is always slow
  const flat: Record<string, number[]> = { none: [], 'connlat-probe': [], tcpstates: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of ['none', 'connlat-probe', 'tcpstates'] as const) {
      const wake = mode === 'none' ? waker() : undefined;
      const a = mode === 'none' ? undefined : await attach(mode, false, probePath);
      const w = await workload(0, 1);
      await a?.stop();
      wake?.kill('SIGKILL');
      const rate = w.connects / w.seconds;
      flat[mode]!.push(rate);
      console.log(`  ${mode.padEnd(14)} ${Math.round(rate).toLocaleString('en')} connects/s${a ? `, lost ${a.lost()}` : ''}`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const mode of ['connlat-probe', 'tcpstates']) {
    const ratios = flat[mode]!.map((r, i) => (r / flat.none![i]!).toFixed(2)).join(' ');
    console.log(`  ${mode}: ${(median(flat[mode]!) / median(flat.none!)).toFixed(2)} of the median connect rate without a tool (per round: ${ratios})`);
  }
}

/**
 * Kernel-side cost at a fixed rate, where the rate itself cannot drop: the workload's CPU per connect (its clients'
 * getrusage plus the accept loop's /proc/PID/stat) at WORKLOAD_RATE with connlat-probe attached (its output read
 * and discarded, no agent) against no tool but the 50 ms waker, rounds alternating (the order flips every round).
 */
async function workloadCost(probePath: string, serverPid: number): Promise<void> {
  console.log(`\nworkload CPU per connect at ${WORKLOAD_RATE.toLocaleString('en')} connects/s (clients on CPU 0, tool user space on CPU 1):`);
  const perConnect: Record<string, number[]> = { none: [], 'connlat-probe': [] };
  for (let round = 0; round < WORKLOAD_ROUNDS; round++) {
    const order = round % 2 === 0 ? (['none', 'connlat-probe'] as const) : (['connlat-probe', 'none'] as const);
    for (const mode of order) {
      const wake = mode === 'none' ? waker() : undefined;
      const a = mode === 'none' ? undefined : await attach(mode, false, probePath);
      const server0 = cpuSeconds(serverPid);
      const w = await workload(WORKLOAD_RATE, WORKLOAD_RATE >= 10000 ? 2 : 1);
      const serverCpu = cpuSeconds(serverPid) - server0;
      await a?.stop();
      wake?.kill('SIGKILL');
      const us = ((w.cpu + serverCpu) / w.connects) * 1e6;
      perConnect[mode]!.push(us);
      console.log(`  round ${round + 1} ${mode.padEnd(14)} ${Math.round(w.connects / w.seconds).toLocaleString('en')} connects/s, ` +
        `clients ${(w.cpu / w.seconds * 100).toFixed(1)} % + accept loop ${(serverCpu / w.seconds * 100).toFixed(1)} % of a core, ` +
        `${us.toFixed(1)} us per connect${a ? `, lost ${a.lost()}` : ''}`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const ratios = perConnect['connlat-probe']!.map((us, i) => us / perConnect.none![i]!);
  console.log(`  connlat-probe: workload CPU per connect ${(median(perConnect['connlat-probe']!) / median(perConnect.none!)).toFixed(3)}x ` +
    `the median without a tool; median of the rounds' ratios ${median(ratios).toFixed(3)} (per round: ${ratios.map((r) => r.toFixed(3)).join(' ')})`);
}

/** Compiles src/ as the image build does (tsconfig.build.json) into a temporary dist/; returns its cli.js. */
function compileAgent(): string {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-storm-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const r = spawnSync(process.execPath, [`${REPO}node_modules/typescript/bin/tsc`, '-p', `${REPO}tsconfig.build.json`, '--outDir', join(dir, 'dist')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
  symlinkSync(`${REPO}node_modules`, join(dir, 'node_modules'));
  symlinkSync(`${REPO}package.json`, join(dir, 'package.json'));
  return join(dir, 'dist', 'cli.js');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('connect-storm needs root (network namespace, BPF)');
  if (AGENT_TREE === 'dist') CLI = compileAgent();
  const probePath = /^connlat-probe=(.+)$/m.exec(await sh(`${REPO}scripts/build-probe.sh`, []))?.[1];
  if (!probePath) throw new Error('scripts/build-probe.sh printed no path');
  await sh('ip', ['netns', 'add', NS]);
  let server: ChildProcess | undefined;
  try {
    await sh('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    // ports for 20k connects/s, and an accept queue that never overflows (an overflow costs a 1 s SYN retransmit)
    await sh('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=10000 65000', 'net.core.somaxconn=65535',
      'net.ipv4.tcp_max_syn_backlog=65535']);
    server = spawn('ip', ['netns', 'exec', NS, 'python3', PEER, 'serve', String(PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((r) => server!.stdout!.once('data', () => r()));
    console.log(`connect storm: ${SECONDS} s per case, agent from ${AGENT_TREE}, node flags ${NODE_FLAG_SETS.map((f) => `'${f.join(' ')}'`).join(' | ')}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);

    if (WORKLOAD_ROUNDS > 0) await workloadCost(probePath, server.pid!);
    if (ROUNDS > 0) await flatOut(probePath);
    if (ROUNDS > 0) await deliveryDelay(probePath);

    console.log('\nfixed rates: CPU of tool + agent per connect (CPU 1), events lost');
    console.log(`(whole storm + 0.5 s drain; steady: from second ${WARMUP} of the storm to its end; warm-up: its first ${WARMUP} s)`);
    console.log('| target/s | achieved/s | mode | tool CPU % | agent CPU % | us per connect (tool + agent) | steady tool + agent CPU % | steady us per connect | warm-up tool + agent CPU % | connects seen / made | lost (stderr) |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const rate of RATES) {
      for (const mode of MODES) for (const flags of NODE_FLAG_SETS) {
        const a = await attach(mode, true, probePath, flags);
        const tool0 = a.tool ? cpuSeconds(a.tool.pid!) : 0;
        const agent0 = cpuSeconds(a.agent!.pid!);
        const t0 = performance.now();
        // tool + agent CPU at every whole second of the storm
        const both = () => (a.tool ? cpuSeconds(a.tool.pid!) : 0) + cpuSeconds(a.agent!.pid!);
        const perSecond = [both()];
        const sampler = setInterval(() => perSecond.length <= SECONDS && perSecond.push(both()), 1000);
        const w = mode === 'tcpconnlat-lines'
          ? { connects: await writeConnlatLines(a.agent!, rate), failed: 0, seconds: SECONDS }
          : await workload(rate, rate >= 10000 ? 2 : 1);
        clearInterval(sampler);
        await new Promise((r) => setTimeout(r, 500)); // drain
        const wall = (performance.now() - t0) / 1000;
        const last = perSecond.length - 1;
        const steadyCpu = last > WARMUP ? (perSecond[last]! - perSecond[WARMUP]!) / (last - WARMUP) : NaN;
        const warmCpu = last >= WARMUP ? (perSecond[WARMUP]! - perSecond[0]!) / WARMUP : NaN;
        const toolCpu = a.tool ? cpuSeconds(a.tool.pid!) - tool0 : 0;
        const agentCpu = cpuSeconds(a.agent!.pid!) - agent0;
        await a.stop();
        const seen = connectsSeen(mode, a.lines());
        const usPer = ((toolCpu + agentCpu) / w.connects) * 1e6;
        const label = NODE_FLAG_SETS.length > 1 ? `${mode} [${flags.join(' ')}]` : mode;
        console.log(`| ${rate.toLocaleString('en')} | ${Math.round(w.connects / w.seconds).toLocaleString('en')} | ${label} | ${(toolCpu / wall * 100).toFixed(1)} | ${(agentCpu / wall * 100).toFixed(1)} | ${usPer.toFixed(1)} | ${(steadyCpu * 100).toFixed(1)} | ${(steadyCpu / (w.connects / w.seconds) * 1e6).toFixed(1)} | ${(warmCpu * 100).toFixed(1)} | ${mode === 'tcpconnlat-lines' ? '-' : `${seen} / ${w.connects}`} | ${a.lost()} |`);
      }
    }
    console.log(`\nload average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  } finally {
    server?.kill('SIGTERM');
    await sh('ip', ['netns', 'del', NS]).catch(() => undefined);
  }
}

await main();
