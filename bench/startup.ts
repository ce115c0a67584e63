// npx node bench/startup.ts [checkout]: what start-up costs, each number in its own fresh process (best of N runs):
//  1. every runtime dependency imported alone: RSS and import time above an empty `node` process;
//  2. `connlat --version` from the sources (type stripping) and from a compiled dist/: wall time and peak RSS;
//  3. process start to the first line read: `connlat --source - --log-level debug` fed one tcpconnlat line on stdin,
//     timed from spawn to the agent's "first line read" debug message (sources and dist/).
// `checkout` (default: this one) lets one run measure another tree too (BENCHMARKS.md: before/after in one run).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUNS = Number(process.env.STARTUP_RUNS ?? 5);
const repo = resolve(process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url)));
const node = process.execPath;

interface Sample {
  ms: number;
  rssMb: number;
}

function best(samples: Sample[]): Sample {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const rss = samples.map((s) => s.rssMb).sort((a, b) => a - b);
  return { ms: ms[Math.floor(ms.length / 2)]!, rssMb: rss[Math.floor(rss.length / 2)]! };
}

/** Median over RUNS of one import in a fresh process: [ms to import, RSS MB after it]. */
function importCost(specifier: string): Sample {
  const code = `const t = performance.now(); ${specifier ? `await import(${JSON.stringify(specifier)});` : ''}
    const ms = performance.now() - t; globalThis.gc?.(); process.stdout.write(JSON.stringify({ ms, rssMb: process.memoryUsage().rss / 2 ** 20 }));`;
  const samples: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = spawnSync(node, ['--input-type=module', '-e', code], { cwd: repo, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`import ${specifier}: ${r.stderr}`);
    samples.push(JSON.parse(r.stdout) as Sample);
  }
  return best(samples);
}

/** Median wall time and peak RSS of `node entry args` run to completion. */
function runCost(entry: string, args: string[]): Sample {
  const samples: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const r = spawnSync('/usr/bin/time', ['-f', '%M', node, entry, ...args], { encoding: 'utf8' });
    const ms = performance.now() - t;
    if (r.status !== 0) throw new Error(`${entry} ${args.join(' ')}: ${r.stderr}`);
    samples.push({ ms, rssMb: Number(r.stderr.trim().split('\n').pop()) / 1024 });
  }
  return best(samples);
}

const LINE = '21168  curl         4  10.0.2.15        76.76.21.21      443   47.80\n';

/** Spawn -> the agent's "first line read" message, one line on stdin; RSS read from /proc at that moment. */
async function firstLine(entry: string): Promise<Sample> {
  const samples: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    const out = mkdtempSync(join(tmpdir(), 'connlat-startup-'));
    const t = performance.now();
    const child = spawn(node, [entry, '--source', '-', '--export', `otlp-json:${join(out, 'o.jsonl')}`, '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off', '--log-level', 'debug'], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    child.stdin.write(LINE);
    const sample = await new Promise<Sample>((done, fail) => {
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        err += chunk;
        if (!/first line read/.test(err)) return;
        const ms = performance.now() - t;
        const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
        child.stdin.end();
        done({ ms, rssMb: rss });
      });
      child.on('exit', (code) => fail(new Error(`agent exited ${code} before reading a line: ${err}`)));
    });
    await new Promise((r) => child.once('exit', r));
    rmSync(out, { recursive: true, force: true });
    samples.push(sample);
  }
  return best(samples);
}

function compile(dir: string): string {
  const r = spawnSync(node, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
  symlinkSync(join(repo, 'package.json'), join(dir, 'package.json'));
  return join(dir, 'dist', 'cli.js');
}

const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; version: string };
const fmt = (s: Sample, base?: Sample) =>
  base ? `${(s.ms - base.ms).toFixed(0).padStart(6)} ms ${(s.rssMb - base.rssMb).toFixed(1).padStart(7)} MB` : `${s.ms.toFixed(0).padStart(6)} ms ${s.rssMb.toFixed(1).padStart(7)} MB`;

console.log(`connlat start-up: ${repo}, Node ${process.version}, median of ${RUNS}, load average ${loadavg()[0]!.toFixed(1)}, ${new Date().toISOString()}`);
const empty = importCost('');
console.log(`${'empty node process'.padEnd(46)} ${fmt(empty)} (RSS)`);
console.log('import alone, above the empty process:');
for (const dep of Object.keys(pkg.dependencies).sort()) console.log(`  ${dep.padEnd(44)} ${fmt(importCost(dep), empty)}`);
const dir = mkdtempSync(join(tmpdir(), 'connlat-startup-dist-'));
try {
  const dist = compile(dir);
  const src = join(repo, 'src', 'cli.ts');
  console.log('whole process (wall, peak RSS):');
  console.log(`  ${'--version, sources'.padEnd(44)} ${fmt(runCost(src, ['--version']))}`);
  console.log(`  ${'--version, dist/'.padEnd(44)} ${fmt(runCost(dist, ['--version']))}`);
  console.log('process start to first line read (wall, RSS then):');
  console.log(`  ${'sources'.padEnd(44)} ${fmt(await firstLine(src))}`);
  console.log(`  ${'dist/'.padEnd(44)} ${fmt(await firstLine(dist))}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`load average ${loadavg()[0]!.toFixed(1)} at end`);
