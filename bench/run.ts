// npm run bench: 1M recorded tcpconnlat lines through source -> parse -> record -> export (OTLP/JSON file), against
// a bare readline-and-split loop over the same file in the same run. Each case runs in its own child process so its
// peak RSS is its own. Prints lines/s, lines per CPU-second, peak RSS and the ratio to the baseline; BENCHMARKS.md
// records the results.
//
// The pipeline runs the compiled JavaScript (tsc -p tsconfig.build.json into a temporary directory), which is what
// the agent image runs; BENCH_FROM=src runs the TypeScript sources through Node's type stripping instead (as
// `npm start` in a checkout does), which adds the stripper's memory to the peak RSS.
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const LINES = Number(process.env.BENCH_LINES ?? 1_000_000);
const FROM: 'dist' | 'src' = process.env.BENCH_FROM === 'src' ? 'src' : 'dist';
/** Node flags for the measured children (e.g. BENCH_NODE_FLAGS='--max-semi-space-size=1', as the agent image runs). */
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);

/** tcpconnlat's own printf: "%-6d %-12.12s %-2d %-16s %-16s %-5d %.2f". */
function renderLine(pid: number, comm: string, saddr: string, daddr: string, dport: number, lat: number): string {
  return `${String(pid).padEnd(6)} ${comm.slice(0, 12).padEnd(12)} ${'4'.padEnd(2)} ${saddr.padEnd(16)} ${daddr.padEnd(16)} ${String(dport).padEnd(5)} ${lat.toFixed(2)}`;
}

function generate(path: string, destinations: number): void {
  const comms = ['curl', 'kubelet', 'coredns', 'node-cache', 'etcd', 'java', 'python3', 'envoy'];
  const parts: string[] = ['PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)'];
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < LINES; i++) {
    const d = i % destinations;
    const daddr = `10.${(d >> 16) & 255}.${(d >> 8) & 255}.${d & 255}`;
    const lat = -Math.log(1 - rand()) * 2; // exponential, mean 2 ms: a few above 100 ms would be rare
    parts.push(renderLine(1000 + (i % 5000), comms[i % comms.length]!, '10.244.1.7', daddr, 1024 + (d % 50000), lat));
  }
  writeFileSync(path, parts.join('\n') + '\n');
}

interface CaseResult {
  name: string;
  lines: number;
  seconds: number;
  /** user + system CPU seconds of the case (less disturbed by other processes than wall time) */
  cpuSeconds: number;
  maxRssMb: number;
}

function finish(name: string, lines: number, start: number, cpu0: NodeJS.CpuUsage): CaseResult {
  const cpu = process.cpuUsage(cpu0);
  return { name, lines, seconds: (performance.now() - start) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6, maxRssMb: process.resourceUsage().maxRSS / 1024 };
}

async function baseline(file: string): Promise<CaseResult> {
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let lines = 0;
  let fields = 0;
  const rl = createInterface({ input: createReadStream(file, { encoding: 'latin1' }), crlfDelay: Infinity });
  for await (const line of rl) {
    fields += line.trim().split(/\s+/).length;
    lines++;
  }
  if (fields === 0) throw new Error('baseline read nothing');
  return finish('baseline', lines, start, cpu0);
}

/** The pipeline's modules, from the compiled tree at `root` (a dist/ directory) or from the sources. */
async function load(root: string) {
  const ext = root.endsWith('/src') ? 'ts' : 'js';
  const mod = (path: string) => pathToFileURL(`${root}/${path}.${ext}`).href;
  return {
    ReplaySource: (await import(mod('sources/replay')) as typeof import('../src/sources/replay.ts')).ReplaySource,
    LineDecoder: (await import(mod('parse/decoder')) as typeof import('../src/parse/decoder.ts')).LineDecoder,
    createTelemetry: (await import(mod('telemetry/index')) as typeof import('../src/telemetry/index.ts')).createTelemetry,
    DEFAULT_METRIC_ATTRIBUTES: (await import(mod('config')) as typeof import('../src/config.ts')).DEFAULT_METRIC_ATTRIBUTES,
  };
}

/** source + parse only (no record, no export): what the rest of the pipeline costs on top of it. */
async function parseOnly(file: string, root: string, name: string): Promise<CaseResult> {
  const { ReplaySource, LineDecoder } = await load(root);
  const decoder = new LineDecoder('detect');
  let lines = 0;
  let events = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  await new ReplaySource({ path: file }).run({
    line(text, at) {
      lines++;
      if (decoder.decode(text, at).kind === 'event') events++;
    },
    lostEvents() {},
    restart() {},
    diagnostic() {},
    toolSelected() {},
  });
  if (events !== LINES) throw new Error(`${name}: expected ${LINES} events, got ${events}`);
  return finish(name, lines, start, cpu0);
}

async function pipeline(file: string, out: string, root: string, name: string): Promise<CaseResult> {
  const { ReplaySource, LineDecoder, createTelemetry, DEFAULT_METRIC_ATTRIBUTES } = await load(root);
  const telemetry = createTelemetry({
    exports: [{ kind: 'otlp-json', path: out }],
    resource: { 'service.name': 'connlat-bench' },
    histogram: 'explicit',
    metricAttributes: [...DEFAULT_METRIC_ATTRIBUTES],
    cardinalityLimit: 2000,
    exportIntervalMs: 10_000,
    slowMs: 100,
    slowLogRatePerSec: 100,
    slowLogBurst: 500,
    traces: true, // the agent's default (--traces on): spans only for slow or failed connects, the trace SDK loaded
    temporality: 'cumulative',
  });
  const decoder = new LineDecoder('detect');
  const source = new ReplaySource({ path: file });
  let lines = 0;
  let events = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  await source.run({
    line(text, at) {
      lines++;
      const r = decoder.decode(text, at);
      if (r.kind === 'event') {
        telemetry.record(r.event);
        events++;
      }
    },
    lostEvents() {},
    restart() {},
    diagnostic() {},
    toolSelected() {},
  });
  await telemetry.shutdown();
  if (events !== LINES) throw new Error(`${name}: expected ${LINES} events, got ${events}`);
  return finish(name, lines, start, cpu0);
}

async function child(kind: string, file: string, out: string, root: string): Promise<void> {
  const r =
    kind === 'baseline' ? await baseline(file) : kind.startsWith('source + parse') ? await parseOnly(file, root, kind) : await pipeline(file, out, root, kind);
  process.stdout.write(JSON.stringify(r) + '\n');
}

/** Compiles src/ as the image build does (tsconfig.build.json) into dir/dist; node_modules resolves via a link. */
function compile(dir: string): string {
  const repo = fileURLToPath(new URL('..', import.meta.url));
  const out = join(dir, 'dist');
  const r = spawnSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json'), '--outDir', out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-bench-'));
  try {
    const few = join(dir, 'lines-1k-destinations.txt');
    const many = join(dir, 'lines-100k-destinations.txt');
    generate(few, 1000);
    generate(many, 100_000);
    const root = FROM === 'src' ? fileURLToPath(new URL('../src', import.meta.url)).replace(/\/$/, '') : compile(dir);
    const self = fileURLToPath(import.meta.url);
    const load0 = loadavg()[0]!;
    const run = (kind: string, file: string) => {
      const r = spawnSync(process.execPath, [...NODE_FLAGS, self, '--child', kind, file, join(dir, 'out.jsonl'), root], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${kind} failed: ${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as CaseResult;
    };
    const results = [
      run('baseline', few),
      run('source + parse (1k dest.)', few),
      run('pipeline (1k destinations)', few),
      run('baseline', many),
      run('pipeline (100k destinations)', many),
    ];
    const base = results[0]!;
    console.log(`connlat benchmark: ${LINES.toLocaleString('en')} tcpconnlat lines, Node ${process.version}, pipeline from ${FROM}, node flags '${NODE_FLAGS.join(' ')}', ${new Date().toISOString()}`);
    console.log(`load average ${load0.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end`);
    console.log(`${'case'.padEnd(30)} ${'lines/s'.padStart(12)} ${'ratio'.padStart(7)} ${'lines/CPU-s'.padStart(12)} ${'peak RSS MB'.padStart(12)}`);
    for (const r of results) {
      const rate = r.lines / r.seconds;
      console.log(
        `${r.name.padEnd(30)} ${Math.round(rate).toLocaleString('en').padStart(12)} ${(rate / (base.lines / base.seconds)).toFixed(2).padStart(7)} ` +
          `${Math.round(r.lines / r.cpuSeconds).toLocaleString('en').padStart(12)} ${r.maxRssMb.toFixed(0).padStart(12)}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') await child(process.argv[3]!, process.argv[4]!, process.argv[5]!, process.argv[6]!);
else await main();
