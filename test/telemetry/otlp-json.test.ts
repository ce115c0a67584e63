// The otlp-json target: one OTLP/JSON request per line, the same data the gRPC receiver decodes from the wire.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { createTelemetry } from '../../src/telemetry/index.ts';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { comparable, FAILURES, lastMetric, logRecords, NINE_CONNECTS, options } from './helpers.ts';

function tempFile(): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-otlp-json-'));
  return { path: join(dir, 'out.jsonl'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function readLines(path: string): any[] {
  const text = readFileSync(path, 'utf8');
  assert.ok(text.endsWith('\n'), 'file ends with a complete line');
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line));
}

describe('telemetry: otlp-json file', () => {
  it('writes one JSON request per line, equal to what the gRPC receiver decodes from the wire', async () => {
    const file = tempFile();
    const receiver = await startOtlpReceiver();
    const telemetry = createTelemetry(
      options({ exports: [{ kind: 'otlp', endpoint: receiver.endpoint }, { kind: 'otlp-json', path: file.path }] }),
    );
    try {
      for (const e of [...NINE_CONNECTS, ...FAILURES]) telemetry.record(e);
      telemetry.self.lineRejected('bad_field_count');
      await telemetry.flush();
      const lines = readLines(file.path);
      const metricLines = lines.filter((l) => 'resourceMetrics' in l);
      const logLines = lines.filter((l) => 'resourceLogs' in l);
      assert.equal(metricLines.length + logLines.length, lines.length, 'every line is a metrics or a logs request');
      assert.equal(metricLines.length, 1);
      assert.equal(logLines.length, 1);

      // Same tree as the protobuf the receiver decoded (camelCase, int64 as strings, defaults omitted), timestamps aside.
      assert.deepEqual(comparable(metricLines[0]), comparable(receiver.metrics.at(-1)));
      assert.deepEqual(comparable(logLines[0]), comparable(receiver.logs.at(-1)));
      // Log times are the events' own, so those must be identical too.
      assert.deepEqual(
        logRecords(logLines).map((r) => r.timeUnixNano),
        logRecords(receiver.logs).map((r) => r.timeUnixNano),
      );

      const hist = lastMetric(metricLines, 'tcp.connect.duration').histogram;
      assert.equal(hist.dataPoints.length, 4);
      assert.equal(hist.dataPoints.reduce((n: number, dp: any) => n + Number(dp.count), 0), 9);
      assert.equal(typeof hist.dataPoints[0].count, 'string');
      assert.equal(typeof hist.dataPoints[0].bucketCounts[0], 'string');
      assert.equal(typeof hist.dataPoints[0].sum, 'number');
      assert.equal(hist.aggregationTemporality, 2);
      assert.equal(lastMetric(metricLines, 'tcp.connect.failures').sum.dataPoints[0].asInt, '3');
      assert.equal(metricLines[0].resourceMetrics[0].resource.droppedAttributesCount, undefined, 'zero values omitted');
    } finally {
      await telemetry.shutdown();
      await receiver.close();
      file.cleanup();
    }
  });

  it('appends across flushes (cumulative: each line holds the running totals)', async () => {
    const file = tempFile();
    const telemetry = createTelemetry(options({ exports: [{ kind: 'otlp-json', path: file.path }], slowMs: 1e9 }));
    try {
      telemetry.record(NINE_CONNECTS[0]!);
      await telemetry.flush();
      telemetry.record(NINE_CONNECTS[1]!);
      await telemetry.flush();
      const counts = readLines(file.path).map((l) => lastMetric([l], 'tcp.connect.duration').histogram.dataPoints[0].count);
      assert.deepEqual(counts, ['1', '2']);
      const first = telemetry.shutdown();
      assert.equal(telemetry.shutdown(), first, 'shutdown is idempotent');
      await first;
      assert.equal(readLines(file.path).length, 3, 'shutdown flushed once more, then closed the file');
    } finally {
      await telemetry.shutdown();
      file.cleanup();
    }
  });

  it('keeps a whole burst larger than the SDK default log queue (2048), and counts the rest as dropped', async () => {
    const file = tempFile();
    const telemetry = createTelemetry(
      options({ exports: [{ kind: 'otlp-json', path: file.path }], slowLogBurst: 5000, slowLogRatePerSec: 0, now: () => 0 }),
    );
    try {
      for (let i = 0; i < 6000; i++) telemetry.record({ ...NINE_CONNECTS[0]!, pid: i });
      await telemetry.flush();
      const lines = readLines(file.path);
      assert.equal(logRecords(lines).length, 5000);
      const dropped = lastMetric(lines, 'connlat.logs.dropped').sum.dataPoints[0].asInt;
      assert.equal(dropped, '1000');
    } finally {
      await telemetry.shutdown();
      file.cleanup();
    }
  });

  it('leaves complete lines when the process exits right after flush()', () => {
    const file = tempFile();
    const script = `
      import { createTelemetry } from ${JSON.stringify(fileURLToPath(new URL('../../src/telemetry/index.ts', import.meta.url)))};
      import { NINE_CONNECTS, options } from ${JSON.stringify(fileURLToPath(new URL('./helpers.ts', import.meta.url)))};
      const t = createTelemetry(options({ exports: [{ kind: 'otlp-json', path: ${JSON.stringify(file.path)} }], slowLogRatePerSec: 0 }));
      for (let i = 0; i < 2000; i++) for (const e of NINE_CONNECTS) t.record({ ...e, dport: e.dport + (i % 50) });
      await t.flush();
      process.exit(0);
    `;
    try {
      execFileSync(process.execPath, ['--input-type=module', '-e', script], { stdio: 'pipe' });
      const lines = readLines(file.path);
      const hist = lastMetric(lines, 'tcp.connect.duration').histogram;
      assert.equal(hist.dataPoints.reduce((n: number, dp: any) => n + Number(dp.count), 0), 18000);
      assert.equal(logRecords(lines).length, 100, 'burst of 100 slow records, no refill, the rest rate-limited');
    } finally {
      file.cleanup();
    }
  });
});
