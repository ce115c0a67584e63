// Replay: recorded tool output through the real CLI (`connlat --source file:F --export otlp-json:OUT --slow-ms N`)
// gives exact histogram counts and sums and exact slow-log counts. The expected numbers are the ones
// test/fixtures/recordings/README.md states (and test/parse/recordings.test.ts checks against the decoder).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EXIT } from '../../src/exit-status.ts';
import { readOtlpJson, runAgent } from '../support/agent.ts';
import { attrs, lastMetric, logRecords } from '../telemetry/helpers.ts';

const REC = fileURLToPath(new URL('../fixtures/recordings/', import.meta.url));

interface Expect {
  file: string;
  okCount: number;
  okSumMs: number;
  failures: number;
  rejected: number;
  slowAbove10: number;
  slowAbove100: number;
}
const CASES: Expect[] = [
  { file: 'tcpconnlat-blog.txt', okCount: 9, okSumMs: 48.48, failures: 0, rejected: 0, slowAbove10: 1, slowAbove100: 0 },
  { file: 'tcpconnlat-t-L.txt', okCount: 48, okSumMs: 965.77, failures: 0, rejected: 5, slowAbove10: 3, slowAbove100: 1 },
  { file: 'tcpstates-T.txt', okCount: 6, okSumMs: 820.946, failures: 5, rejected: 0, slowAbove10: 5, slowAbove100: 5 },
  { file: 'tcpstates-w.txt', okCount: 7, okSumMs: 573.973, failures: 5, rejected: 0, slowAbove10: 6, slowAbove100: 3 },
];

function histogramTotals(metrics: any[]): { count: number; sumS: number } {
  const m = lastMetric(metrics, 'tcp.connect.duration');
  assert.ok(m, 'tcp.connect.duration exported');
  assert.equal(m.unit, 's');
  let count = 0;
  let sumS = 0;
  for (const dp of m.histogram.dataPoints) {
    count += Number(dp.count);
    sumS += dp.sum;
    assert.equal(dp.bucketCounts.reduce((a: number, b: string) => a + Number(b), 0), Number(dp.count), 'bucket counts add up');
  }
  return { count, sumS };
}

/** Sum of every data point of a counter, across attribute sets. */
function counterTotal(metrics: any[], name: string): number {
  const m = lastMetric(metrics, name);
  return (m?.sum?.dataPoints ?? []).reduce((a: number, dp: any) => a + Number(dp.asInt ?? dp.asDouble), 0);
}

for (const c of CASES) {
  for (const slowMs of [10, 100]) {
    test(`replay ${c.file} --slow-ms ${slowMs}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'connlat-replay-'));
      const out = join(dir, 'out.jsonl');
      const run = await runAgent(['--source', `file:${join(REC, c.file)}`, '--export', `otlp-json:${out}`, '--slow-ms', String(slowMs), '--health-addr', 'off']);
      assert.equal(run.code, 0, run.stderr);
      const { metrics, logs } = readOtlpJson(out);
      const h = histogramTotals(metrics);
      assert.equal(h.count, c.okCount);
      assert.ok(Math.abs(h.sumS - c.okSumMs / 1000) < 1e-9, `sum ${h.sumS} s vs ${c.okSumMs} ms`);
      assert.equal(counterTotal(metrics, 'tcp.connect.failures'), c.failures);
      assert.equal(counterTotal(metrics, 'connlat.lines.rejected'), c.rejected);
      const records = logRecords(logs);
      assert.equal(records.length, slowMs === 10 ? c.slowAbove10 : c.slowAbove100);
      for (const r of records) {
        assert.equal(r.eventName, 'tcp.connect.slow');
        assert.equal(r.severityText, 'WARN');
        assert.ok(Number(attrs(r.attributes)['process.pid']) > 0);
      }
      const resource = attrs(metrics[0].resourceMetrics[0].resource.attributes);
      assert.equal(resource['service.name'], 'connlat');
    });
  }
}

test('replay from stdin (-) gives the same numbers as the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-replay-'));
  const out = join(dir, 'out.jsonl');
  const input = readFileSync(join(REC, 'tcpconnlat-blog.txt'), 'latin1');
  const run = await runAgent(['--source', '-', '--export', `otlp-json:${out}`, '--slow-ms', '10', '--health-addr', 'off'], { input });
  assert.equal(run.code, 0, run.stderr);
  const { metrics, logs } = readOtlpJson(out);
  assert.deepEqual(histogramTotals(metrics).count, 9);
  const [record] = logRecords(logs);
  assert.equal(record.body.stringValue, 'curl[21168] 10.0.2.15 -> 76.76.21.21:443 connect took 47.80 ms');
  const a = attrs(record.attributes);
  assert.equal(a['server.address'], '76.76.21.21');
  assert.equal(a['server.port'], 443);
  assert.equal(a['client.address'], '10.0.2.15');
  assert.equal(a['process.executable.name'], 'curl');
  assert.equal(a['network.type'], 'ipv4');
});

test('bad settings and a missing file fail with one line naming what was wrong', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'connlat-replay-')), 'out.jsonl');
  const bad = await runAgent(['--source', 'file:/nonexistent/rec.txt', '--export', `otlp-json:${out}`, '--health-addr', 'off']);
  assert.equal(bad.code, EXIT.failure.code);
  assert.equal(bad.stderr.trim(), 'connlat: cannot read /nonexistent/rec.txt: ENOENT');
  assert.equal(existsSync(out), false, 'no output file for a run that could not start');
  const invalid = await runAgent(['--slow-ms', 'slow']);
  assert.equal(invalid.code, EXIT.config.code);
  assert.equal(invalid.stderr.trim(), "connlat: invalid setting --slow-ms: expected a decimal number, got 'slow'");
});

test('--help documents every flag', async () => {
  const help = await runAgent(['--help']);
  assert.equal(help.code, 0);
  for (const flag of ['--source', '--export', '--slow-ms', '--histogram', '--metric-attributes', '--cardinality-limit', '--health-addr', '--view']) {
    assert.ok(help.stdout.includes(flag), flag);
  }
});
