// npx node bench/rest-rss.ts [checkout ...]: RSS of a running agent at rest, as root. Per checkout (default: this one)
// and per tree (its sources, and its dist/ built as the checkout's `npm run build` does): the agent runs
// `--source tcpstates` (the real tool), exports over OTLP gRPC to a local receiver, with Kubernetes enrichment on
// against a throwaway API server (KubeHarness: 100 pods, 20 services); the bench then makes loopback connects to 1,000
// distinct destinations (127.0.x.y), waits for two exports, then idles and reads VmRSS (at rest) and VmHWM (peak)
// from /proc. Needs root (tcpstates) and scripts/build-kube.sh's binaries; says why when it cannot run.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubernetesObject } from '@kubernetes/client-node';
import { kubeSkipReason, startKubeHarness } from '../test/support/kube/harness.ts';
import { startOtlpReceiver } from '../test/support/otlp/receiver.ts';

const DESTINATIONS = Number(process.env.REST_DESTINATIONS ?? 1000);
const REST_MS = Number(process.env.REST_MS ?? 20_000);
/** Node flags for the agent (e.g. REST_NODE_FLAGS='--max-semi-space-size=1'), and which trees to run (default both). */
const NODE_FLAGS = (process.env.REST_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const TREES = (process.env.REST_TREES ?? 'sources,dist').split(',');
/**
 * Variants run one after the other per tree and round (alternating, so that the machine's drift falls on all alike):
 * REST_VARIANTS='name:flags|name:flags', where flags are node flags and NAME=value environment entries, e.g.
 * 'daemonset:--max-semi-space-size=2|arena2:--max-semi-space-size=2 MALLOC_ARENA_MAX=2'; words after a lone `--` are
 * agent arguments (e.g. '-- --slow-ms 0': every connect is slow, so spans and log records are made). Default: one
 * variant, REST_NODE_FLAGS.
 */
const VARIANTS = (process.env.REST_VARIANTS ?? `:${NODE_FLAGS.join(' ')}`).split('|').map((v) => {
  const [name, words = ''] = v.split(/:(.*)/s) as [string, string?];
  const [nodeWords = '', agentWords = ''] = words.split(/(?:^| )--(?: |$)/);
  const all = nodeWords.split(' ').filter(Boolean);
  const env = Object.fromEntries(all.filter((w) => /^[A-Z_][A-Z0-9_]*=/.test(w)).map((w) => w.split(/=(.*)/s) as [string, string]));
  return { name, flags: all.filter((w) => !/^[A-Z_][A-Z0-9_]*=/.test(w)), env, agentArgs: agentWords.split(' ').filter(Boolean) };
});
const ROUNDS = Number(process.env.REST_ROUNDS ?? 1);
const checkouts = process.argv.length > 2 ? process.argv.slice(2).map((p) => resolve(p)) : [fileURLToPath(new URL('..', import.meta.url))];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (process.getuid?.() !== 0) {
  console.log('skipped: needs root (the tcpstates tool)');
  process.exit(0);
}
const skip = kubeSkipReason();
if (skip) {
  console.log(`skipped: ${skip}`);
  process.exit(0);
}

function status(pid: number): { rss: number; hwm: number; anon: number; file: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(text)![1]);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024, anon: kb('RssAnon') / 1024, file: kb('RssFile') / 1024 };
}

/** Builds the checkout's dist/ as its `npm run build` does: the esbuild bundle (scripts/bundle.ts), or tsc before it. */
function compile(repo: string, dir: string): string {
  const bundler = join(repo, 'scripts', 'bundle.ts');
  const r = existsSync(bundler)
    ? spawnSync(process.execPath, [bundler, '--outdir', join(dir, 'dist')], { encoding: 'utf8' })
    : spawnSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build failed: ${r.error ?? `${r.stdout}${r.stderr}`}`);
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  symlinkSync(join(repo, 'package.json'), join(dir, 'package.json'));
  return join(dir, 'dist', 'cli.js');
}

/** One loopback connect to each of n distinct addresses 127.0.x.y (all routed to lo), to one listening port. */
async function connectAll(port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const host = `127.0.${1 + (i >> 8)}.${1 + (i & 255)}`;
    await new Promise<void>((done) => {
      const c = connect(port, host, () => c.end());
      c.on('close', () => done());
      c.on('error', () => done());
    });
  }
}

const harness = await startKubeHarness();
const receiver = await startOtlpReceiver();
const listener = createServer((s) => s.end());
await new Promise<void>((r) => listener.listen(0, '0.0.0.0', r));
const port = (listener.address() as { port: number }).port;
const work = mkdtempSync(join(tmpdir(), 'connlat-rest-'));
try {
  const ns = await harness.createNamespace('rest');
  for (let i = 0; i < 100; i++) {
    await harness.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${i}`, namespace: ns }, spec: { containers: [{ name: 'c', image: 'none' }] } } as KubernetesObject);
  }
  for (let i = 0; i < 20; i++) {
    await harness.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}`, namespace: ns }, spec: { ports: [{ port: 80 + i }] } } as KubernetesObject);
  }
  console.log(`connlat agent at rest: tcpstates, OTLP gRPC, enrichment on (100 pods, 20 services), ${DESTINATIONS} destinations, ${REST_MS / 1000} s idle (at rest: the median of its last 10 s), variants ${VARIANTS.map((v) => `'${v.name}': '${[...v.flags, ...Object.entries(v.env).map(([k, x]) => `${k}=${x}`), ...(v.agentArgs.length > 0 ? ['--', ...v.agentArgs] : [])].join(' ')}'`).join(', ')}; ${ROUNDS} round(s); Node ${process.version}, load average ${loadavg()[0]!.toFixed(1)}, ${new Date().toISOString()}`);
  console.log(`${'tree'.padEnd(60)} ${'first line RSS'.padStart(15)} ${'at rest RSS'.padStart(12)} ${'(anon + file)'.padStart(15)} ${'peak (HWM)'.padStart(11)} ${'spans'.padStart(6)}`);
  let n = 0;
  const entries: Array<[string, string]> = [];
  for (const repo of checkouts) {
    if (TREES.includes('sources')) entries.push([`${repo} (sources)`, join(repo, 'src', 'cli.ts')]);
    if (TREES.includes('dist')) entries.push([`${repo} (dist/)`, compile(repo, mkdtempSync(join(work, `t${n++}-`)))]);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [tree, entry] of entries) for (const variant of VARIANTS) {
      const name = variant.name ? `${tree} ${variant.name}` : tree;
      const tracesBefore = receiver.traces.length;
      const child: ChildProcess = spawn(process.execPath, [...variant.flags, entry, '--source', 'tcpstates', '--export', 'otlp', '--otlp-endpoint', receiver.endpoint,
        '--export-interval-ms', '2000', '--kubernetes', 'on', '--kubeconfig', harness.kubeconfigPath, '--node-name', 'rest-node',
        '--health-addr', 'off', '--view', 'off', '--log-level', 'debug', ...variant.agentArgs], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...variant.env } });
      let err = '';
      child.stderr!.on('data', (d) => (err += d));
      const deadline = Date.now() + 60_000;
      while (!/reading tcpstates/.test(err)) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`agent did not start: ${err}`);
        await sleep(100);
      }
      await sleep(2000); // the tool attaches
      await connectAll(port, DESTINATIONS);
      while (!/first line read/.test(err)) await sleep(100);
      const first = status(child.pid!);
      await connectAll(port, DESTINATIONS);
      await sleep(5000); // two exports
      // at rest: the median (by RSS) of one reading a second over the last 10 s of the idle time, so that where the
      // last GC fell does not decide the number
      await sleep(Math.max(0, REST_MS - 10_000));
      const readings: Array<ReturnType<typeof status>> = [];
      for (let i = 0; i < 10; i++) {
        readings.push(status(child.pid!));
        await sleep(1000);
      }
      const rest = readings.sort((a, b) => a.rss - b.rss)[5]!;
      rest.hwm = status(child.pid!).hwm;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      const split = `(${rest.anon.toFixed(1)} + ${rest.file.toFixed(1)})`;
      // spans the agent exported (slow or failed connects: the loopback connects are fast unless --slow-ms says so)
      const spans = receiver.traces.slice(tracesBefore).flatMap((r) => r.resourceSpans ?? []).flatMap((r) => r.scopeSpans ?? []).reduce((n, s) => n + (s.spans?.length ?? 0), 0);
      console.log(`${name.padEnd(60)} ${first.rss.toFixed(1).padStart(12)} MB ${rest.rss.toFixed(1).padStart(9)} MB ${split.padStart(15)} ${rest.hwm.toFixed(1).padStart(8)} MB ${String(spans).padStart(6)}`);
    }
  }
} finally {
  listener.close();
  await receiver.close();
  await harness.stop();
  rmSync(work, { recursive: true, force: true });
}
