// Connect spans through the real CLI (bin/connlat.js, a replay on stdin): spans with the log records' ids and the
// histogram's exemplars in an OTLP/JSON file, --traces off, a gateway that comes up late (every span arrives, once)
// and one that never does (exit status 3, the one line naming traces) (issue 12 section 1).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EXIT } from '../../src/exit-status.ts';
import { CONNLAT_BIN, readOtlpJson, runAgent } from '../support/agent.ts';
import { freePort } from '../support/net.ts';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { attrs, lastMetric, logRecords, spansOf } from '../telemetry/helpers.ts';

const HEADER = 'PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)';
/** tcpconnlat's printf: "%-6d %-12.12s %-2d %-16s %-16s %-5d %.2f" */
const line = (pid: number, lat: string) =>
  `${String(pid).padEnd(6)} ${'curl'.padEnd(12)} ${'4'.padEnd(2)} ${'10.0.0.1'.padEnd(16)} ${'10.0.0.2'.padEnd(16)} ${'443'.padEnd(5)} ${lat}`;
/** 20 fast connects and 10 slow ones (> 100 ms) */
const INPUT = [HEADER, ...Array.from({ length: 30 }, (_, i) => line(1000 + i, i % 3 === 0 ? `${150 + i}.25` : '1.25'))].join('\n') + '\n';
const SLOW_PIDS = Array.from({ length: 10 }, (_, i) => 1000 + 3 * i);
const tmp = () => mkdtempSync(join(tmpdir(), 'connlat-spans-'));
const hexOf = (v: unknown) => (typeof v === 'string' ? v : Buffer.from(v as Uint8Array).toString('hex'));

test('OTLP/JSON: one span per slow connect, the log records carry their ids, the exemplars point at them', async () => {
  const out = join(tmp(), 'out.jsonl');
  const run = await runAgent(['--source', '-', '--export', `otlp-json:${out}`, '--health-addr', 'off'], { input: INPUT });
  assert.equal(run.code, EXIT.ok.code, run.stderr);
  const { metrics, logs, traces } = readOtlpJson(out);
  const spans = spansOf(traces);
  assert.deepEqual(spans.map((s) => attrs(s.attributes)['process.pid']), SLOW_PIDS);
  for (const s of spans) {
    assert.equal(s.name, 'tcp.connect');
    assert.equal(s.kind, 3);
    assert.match(s.traceId, /^[0-9a-f]{32}$/);
    assert.match(s.spanId, /^[0-9a-f]{16}$/);
  }
  const records = logRecords(logs);
  assert.deepEqual(records.map((r) => [r.traceId, r.spanId]), spans.map((s) => [s.traceId, s.spanId]));
  const ids = new Set(spans.map((s) => `${s.traceId}/${s.spanId}`));
  const exemplars = metrics.flatMap((req) => (lastMetric([req], 'tcp.connect.duration')?.histogram.dataPoints ?? []).flatMap((p: any) => p.exemplars ?? []));
  // the 10 slow latencies (150.25 .. 177.25 ms) share one series and one bucket (0.1, 0.25]: one exemplar, the newest
  assert.equal(exemplars.length, 1);
  assert.ok(ids.has(`${exemplars[0].traceId}/${exemplars[0].spanId}`));
  assert.equal(exemplars[0].asDouble, 0.17725);
});

test('--traces off: no span in the file, no trace ids on the log records', async () => {
  const out = join(tmp(), 'out.jsonl');
  const run = await runAgent(['--source', '-', '--export', `otlp-json:${out}`, '--health-addr', 'off', '--traces', 'off'], { input: INPUT });
  assert.equal(run.code, EXIT.ok.code, run.stderr);
  const { logs, traces } = readOtlpJson(out);
  assert.equal(traces.length, 0);
  const records = logRecords(logs);
  assert.equal(records.length, 10);
  for (const r of records) assert.equal(r.traceId, undefined);
});

test('a gateway that comes up late: every span arrives, once; the run exits 0', async (t) => {
  const port = await freePort();
  const child = spawn(process.execPath, [CONNLAT_BIN, '--source', '-', '--export', 'otlp', '--otlp-endpoint', `http://127.0.0.1:${port}`,
    '--health-addr', 'off', '--export-retry-max-ms', '300', '--export-interval-ms', '500'], { stdio: ['pipe', 'ignore', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.stdin!.write(INPUT);
  // failed attempts against a closed port first (the spans are queued, not lost)
  for (const start = Date.now(); !/traces export failed/.test(stderr); await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() - start > 30_000 || child.exitCode !== null) assert.fail(`no failed traces export: ${stderr}`);
  }
  const receiver = await startOtlpReceiver({ port });
  t.after(() => receiver.close());
  await receiver.waitFor(() => spansOf(receiver.traces).length >= 10 && logRecords(receiver.logs).length >= 10, 20_000);
  child.stdin!.end();
  assert.equal(await exited, EXIT.ok.code, stderr);
  const spans = spansOf(receiver.traces);
  assert.deepEqual(spans.map((s) => attrs(s.attributes)['process.pid']), SLOW_PIDS, 'each once, in order');
  assert.deepEqual(logRecords(receiver.logs).map((r) => hexOf(r.spanId)), spans.map((s) => hexOf(s.spanId)));
});

test('a gateway that never answers: exit status 3, and the one line names the spans not delivered', async () => {
  const port = await freePort(); // nothing listens there
  const run = await runAgent(['--source', '-', '--export', 'otlp', '--otlp-endpoint', `http://127.0.0.1:${port}`,
    '--health-addr', 'off', '--shutdown-timeout-ms', '1500', '--export-retry-max-ms', '200'], { input: INPUT });
  assert.equal(run.code, EXIT.undelivered.code, run.stderr);
  const summary = run.stderr.split('\n').filter((l) => /ERROR +not delivered: /.test(l));
  assert.equal(summary.length, 1, run.stderr);
  assert.match(summary[0]!, /metrics: the last export .*; 10 slow-connection log records \(shutdown: 10 .*\); traces: 10 connect spans \(shutdown: 10 \[not delivered before the shutdown deadline\]\)$/);
});
