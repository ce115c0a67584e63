// npm run bench (second part): what one *connect* costs the agent in each tool's output format, and from a live pipe
// instead of a file. The same connects (200k, 1k destinations, latencies exponential with mean 2 ms, fixed seed) are
// printed as tcpconnlat lines (1 per connect), connlat-probe lines (1 per connect) and tcpstates lines (9 per connect:
// both ends of a loopback connection, as tcpstates prints them), then run through source -> parse -> record -> export
// (OTLP/JSON file), each case in its own child process:
//   file   ReplaySource over the file
//   pipe   the pipeline reads its stdin while a writer process feeds it the file through a pipe at 10k connects/s
//          (BENCH_PIPE_RATE), one write per line (what `stdbuf -oL` makes tcpconnlat and tcpstates do) or, for
//          connlat-probe, one write per 50 ms (its batched output)
// Prints connects per CPU-second of the pipeline process (the writer's CPU is not counted) and CPU us per connect,
// with the ratio to tcpconnlat from a file in the same run. The pipeline runs from the TypeScript sources.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_METRIC_ATTRIBUTES } from '../src/config.ts';
import { LineDecoder } from '../src/parse/decoder.ts';
import { ReplaySource } from '../src/sources/replay.ts';
import { createTelemetry } from '../src/telemetry/index.ts';
import { renderTcpconnlat, renderTcpstates, tcpconnlatHeader, tcpstatesHeader } from '../test/parse/render.ts';
import { CONNLAT_PROBE_HEADER } from '../src/parse/connlat-probe.ts';

const CONNECTS = Number(process.env.BENCH_CONNECTS ?? 200_000);
/** Connects per second written into the live pipe. */
const RATE = Number(process.env.BENCH_PIPE_RATE ?? 10_000);
type Format = 'tcpconnlat' | 'tcpstates' | 'connlat-probe';

const pad = (s: string | number, n: number) => String(s).padEnd(n);

/** The same connects in one tool's format. */
function generate(format: Format, path: string): void {
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const header = format === 'tcpconnlat' ? tcpconnlatHeader(false, false) : format === 'tcpstates' ? tcpstatesHeader(false, false) : CONNLAT_PROBE_HEADER;
  const parts: string[] = [header];
  for (let i = 0; i < CONNECTS; i++) {
    const d = i % 1000;
    const daddr = `10.0.${d >> 8}.${d & 255}`;
    const dport = 1024 + d;
    const lat = -Math.log(1 - rand()) * 2;
    const pid = 1000 + (i % 5000);
    const sport = 20000 + (i % 40000);
    if (format === 'tcpconnlat') {
      parts.push(renderTcpconnlat({ pid, comm: 'python3', ip: 4, saddr: '10.244.1.7', daddr, dport, lat: lat.toFixed(2) }));
    } else if (format === 'connlat-probe') {
      parts.push([pad((i / 1000).toFixed(3), 9), pad(pid, 6), pad('python3', 12), pad(4, 2), pad('10.244.1.7', 16), pad(sport, 6), pad(daddr, 16),
        pad(dport, 5), pad(lat.toFixed(2), 7), pad(0, 4), pad((lat / 2).toFixed(3), 7), 'ok'].join(' '));
    } else {
      const client = (i * 2).toString(16).padStart(16, 'f');
      const child = (i * 2 + 1).toString(16).padStart(16, 'f');
      const line = (skaddr: string, p: number, comm: string, laddr: string, lport: number, raddr: string, rport: number, from: string, to: string, ms: string) =>
        renderTcpstates({ skaddr, pid: p, comm, laddr, lport, raddr, rport, oldState: from, newState: to, ms });
      parts.push(
        line(client, pid, 'python3', '10.244.1.7', 0, daddr, dport, 'CLOSE', 'SYN_SENT', '0.000'),
        line(child, 0, 'swapper/0', daddr, dport, '10.244.1.7', sport, 'SYN_RECV', 'ESTABLISHED', '0.010'),
        line(client, 0, 'swapper/0', '10.244.1.7', sport, daddr, dport, 'SYN_SENT', 'ESTABLISHED', lat.toFixed(3)),
        line(client, pid, 'python3', '10.244.1.7', sport, daddr, dport, 'ESTABLISHED', 'FIN_WAIT1', '0.020'),
        line(child, 0, 'swapper/0', daddr, dport, '10.244.1.7', sport, 'ESTABLISHED', 'CLOSE_WAIT', '0.030'),
        line(client, 0, 'swapper/0', '10.244.1.7', sport, daddr, dport, 'FIN_WAIT1', 'FIN_WAIT2', '0.001'),
        line(child, 7, 'server', daddr, dport, '10.244.1.7', sport, 'CLOSE_WAIT', 'LAST_ACK', '0.015'),
        line(client, 0, 'swapper/0', '10.244.1.7', sport, daddr, dport, 'FIN_WAIT2', 'CLOSE', '0.002'),
        line(child, 0, 'swapper/0', daddr, dport, '10.244.1.7', sport, 'LAST_ACK', 'CLOSE', '0.004'),
      );
    }
  }
  writeFileSync(path, parts.join('\n') + '\n');
}

/** The pipeline over a file, or over stdin ('-'); prints {connects, cpuSeconds} as JSON. */
async function pipelineChild(input: string, out: string): Promise<void> {
  const telemetry = createTelemetry({
    exports: [{ kind: 'otlp-json', path: out }], resource: { 'service.name': 'connlat-bench' }, histogram: 'explicit',
    metricAttributes: [...DEFAULT_METRIC_ATTRIBUTES], cardinalityLimit: 2000, exportIntervalMs: 10_000, slowMs: 100,
    slowLogRatePerSec: 100, slowLogBurst: 500, temporality: 'cumulative',
  });
  const decoder = new LineDecoder('detect');
  const source = input === '-' ? new ReplaySource({ stdin: process.stdin }) : new ReplaySource({ path: input });
  let connects = 0;
  const cpu0 = process.cpuUsage();
  await source.run({
    line(text, at) {
      const r = decoder.decode(text, at);
      if (r.kind === 'event') {
        telemetry.record(r.event);
        connects++;
      }
    },
    lostEvents() {},
    restart() {},
    diagnostic() {},
    toolSelected() {},
  });
  await telemetry.shutdown();
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(JSON.stringify({ connects, cpuSeconds: (cpu.user + cpu.system) / 1e6 }) + '\n');
}

/**
 * Feeds a file to stdout at `linesPerSecond`: mode 'line' writes each line by itself as it falls due (1 ms slots;
 * what `stdbuf -oL` makes tcpconnlat and tcpstates do), 'batch' writes what fell due every 50 ms at once (connlat-probe).
 */
function writerChild(file: string, mode: string, linesPerSecond: number): void {
  const data = readFileSync(file);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const sleep = (ms: number) => Atomics.wait(pause, 0, 0, ms);
  // Node leaves a pipe on stdout non-blocking: a full pipe answers EAGAIN, so wait for the reader and go on
  const writeAll = (start: number, end: number) => {
    while (start < end) {
      try {
        start += writeSync(1, data, start, end - start);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        sleep(1);
      }
    }
  };
  const slotMs = mode === 'batch' ? 50 : 1;
  const t0 = performance.now();
  let start = 0;
  let written = 0;
  while (start < data.length) {
    const due = Math.floor(((performance.now() - t0) / 1000) * linesPerSecond);
    if (mode === 'batch') {
      let end = start;
      for (; written < due && end < data.length; written++) end = data.indexOf(10, end) + 1;
      writeAll(start, end);
      start = end;
    } else {
      for (; written < due && start < data.length; written++) {
        const end = data.indexOf(10, start) + 1;
        writeAll(start, end);
        start = end;
      }
    }
    sleep(slotMs);
  }
}

function runCase(self: string, file: string, out: string, pipe: boolean, format: Format): Promise<{ connects: number; cpuSeconds: number }> {
  const node = JSON.stringify(process.execPath);
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  // a shell pipeline: a plain blocking pipe between writer and reader, as between a tool and the agent
  const command = pipe
    ? `${node} ${q(self)} --writer ${q(file)} ${format === 'connlat-probe' ? 'batch' : 'line'} ${RATE * (format === 'tcpstates' ? 9 : 1)} | ` +
      `${node} ${q(self)} --pipeline - ${q(out)}`
    : `${node} ${q(self)} --pipeline ${q(file)} ${q(out)}`;
  return new Promise((resolve, reject) => {
    const reader = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    reader.stdout!.on('data', (d) => (stdout += d));
    reader.once('exit', (code) => (code === 0 ? resolve(JSON.parse(stdout.trim()) as { connects: number; cpuSeconds: number }) : reject(new Error(`pipeline exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-bench-formats-'));
  const self = fileURLToPath(import.meta.url);
  try {
    const files = Object.fromEntries((['tcpconnlat', 'tcpstates', 'connlat-probe'] as const).map((f) => {
      const path = join(dir, `${f}.txt`);
      generate(f, path);
      return [f, path];
    })) as Record<Format, string>;
    const load0 = loadavg()[0]!;
    console.log(`\nper-connect cost by format: ${CONNECTS.toLocaleString('en')} connects, 1k destinations, pipeline from the sources, Node ${process.version}`);
    console.log('| format | input | lines per connect | connects/CPU-s | CPU us per connect | ratio to tcpconnlat file |');
    console.log('| --- | --- | --- | --- | --- | --- |');
    let base: number | undefined;
    for (const pipe of [false, true]) {
      for (const format of ['tcpconnlat', 'connlat-probe', 'tcpstates'] as const) {
        const r = await runCase(self, files[format], join(dir, 'out.jsonl'), pipe, format);
        if (r.connects !== CONNECTS) throw new Error(`${format}: ${r.connects} connects decoded, expected ${CONNECTS}`);
        const us = (r.cpuSeconds / r.connects) * 1e6;
        base ??= us;
        const input = pipe ? `live pipe, ${RATE.toLocaleString('en')} connects/s, ${format === 'connlat-probe' ? 'a write per 50 ms' : 'a write per line'}` : 'file';
        console.log(`| ${format} | ${input} | ${format === 'tcpstates' ? 9 : 1} | ${Math.round(r.connects / r.cpuSeconds).toLocaleString('en')} | ${us.toFixed(2)} | ${(us / base).toFixed(2)} |`);
      }
    }
    console.log(`load average ${load0.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--pipeline') await pipelineChild(process.argv[3]!, process.argv[4]!);
else if (process.argv[2] === '--writer') writerChild(process.argv[3]!, process.argv[4]!, Number(process.argv[5]));
else await main();
