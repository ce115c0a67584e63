// Bounds and options, exported over real gRPC: cardinality overflow, allow list, slow-log token bucket, exponential
// histogram, delta temporality, export failures, OTEL_EXPORTER_OTLP_* env.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { ConnectEvent } from '../../src/event.ts';
import { createTelemetry } from '../../src/telemetry/index.ts';
import type { Telemetry, TelemetryOptions } from '../../src/telemetry/types.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp/receiver.ts';
import { attrs, counterBy, lastMetric, logRecords, NINE_CONNECTS, options } from './helpers.ts';

function dest(i: number, extra: Partial<ConnectEvent> = {}): ConnectEvent {
  return { ...NINE_CONNECTS[0]!, daddr: `10.1.${i >> 8}.${i & 255}`, latencyMs: 1, ...extra };
}

describe('telemetry limits and options', () => {
  let receiver: OtlpReceiver;
  const open: Telemetry[] = [];

  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    for (const t of open) await t.shutdown();
    await receiver.close();
  });

  function telemetry(overrides: Partial<TelemetryOptions>): Telemetry {
    receiver.metrics.length = 0;
    receiver.logs.length = 0;
    const t = createTelemetry(options({ exports: [{ kind: 'otlp', endpoint: receiver.endpoint }], ...overrides }));
    open.push(t);
    return t;
  }

  it('records beyond the cardinality limit into the otel.metric.overflow=true series', async () => {
    const t = telemetry({ cardinalityLimit: 5 });
    for (let i = 0; i < 20; i++) t.record(dest(i));
    for (let i = 0; i < 7; i++) t.record(dest(100 + i, { failed: true }));
    await t.flush();
    const points = lastMetric(receiver.metrics, 'tcp.connect.duration').histogram.dataPoints;
    assert.equal(points.length, 5, 'limit 5 = 4 attribute sets + the overflow series');
    const overflow = points.filter((p: any) => attrs(p.attributes)['otel.metric.overflow'] === true);
    assert.equal(overflow.length, 1);
    assert.deepEqual(attrs(overflow[0].attributes), { 'otel.metric.overflow': true });
    assert.equal(overflow[0].count, '16');
    assert.equal(points.reduce((n: number, p: any) => n + Number(p.count), 0), 20, 'no measurement lost');
    const fails = lastMetric(receiver.metrics, 'tcp.connect.failures').sum.dataPoints;
    assert.equal(fails.length, 5);
    assert.equal(fails.find((p: any) => attrs(p.attributes)['otel.metric.overflow'] === true).asInt, '3');
  });

  it('records only allow-listed attribute keys on metrics', async () => {
    const t = telemetry({ metricAttributes: ['network.type', 'server.port', 'k8s.dst.name'] });
    for (const e of NINE_CONNECTS) t.record(e);
    t.record({ ...NINE_CONNECTS[0]!, failed: true });
    await t.flush();
    const points = lastMetric(receiver.metrics, 'tcp.connect.duration').histogram.dataPoints.map((p: any) => ({
      attributes: attrs(p.attributes),
      count: p.count,
    }));
    // the five destinations collapse to three attribute sets under this allow list
    assert.deepEqual(
      points.sort((a: any, b: any) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
      [
        { attributes: { 'network.type': 'ipv4', 'server.port': 443 }, count: '5' },
        { attributes: { 'network.type': 'ipv4', 'server.port': 8080, 'k8s.dst.name': 'cart' }, count: '2' },
        { attributes: { 'network.type': 'ipv6', 'server.port': 443 }, count: '2' },
      ],
    );
    const fail = lastMetric(receiver.metrics, 'tcp.connect.failures').sum.dataPoints;
    assert.deepEqual(attrs(fail[0].attributes), { 'network.type': 'ipv4', 'server.port': 443 });
  });

  it('rate-limits slow log records with a token bucket and counts the dropped ones exactly', async () => {
    let now = 0;
    const t = telemetry({ slowMs: 10, slowLogRatePerSec: 2, slowLogBurst: 3, now: () => now });
    const slow = (i: number) => dest(i, { latencyMs: 50 });
    for (let i = 0; i < 10; i++) t.record(slow(i)); // burst 3 pass, 7 dropped
    now += 1000; // +2 tokens
    for (let i = 10; i < 15; i++) t.record(slow(i)); // 2 pass, 3 dropped
    now += 250; // +0.5 token: not enough
    t.record(slow(15)); // dropped
    now += 250; // +0.5 -> 1 token
    t.record(slow(16)); // passes
    t.record(dest(17, { latencyMs: 5 })); // not slow: neither logged nor dropped
    await t.flush();
    const bodies = logRecords(receiver.logs).map((r) => r.body.stringValue);
    assert.deepEqual(
      bodies.map((b: string) => b.split(' ')[3]),
      ['10.1.0.0:443', '10.1.0.1:443', '10.1.0.2:443', '10.1.0.10:443', '10.1.0.11:443', '10.1.0.16:443'],
    );
    assert.deepEqual(counterBy(receiver.metrics, 'connlat.logs.dropped'), { '': 11 });
  });

  it('uses a base-2 exponential histogram when asked', async () => {
    const t = telemetry({ histogram: 'exponential' });
    const ms = [0.08, 0.5, 1.2, 3.3, 47.8, 260, 1800]; // none on a power of 2 (a bucket boundary at every scale)
    for (const latencyMs of ms) t.record(dest(1, { latencyMs }));
    await t.flush();
    const m = lastMetric(receiver.metrics, 'tcp.connect.duration');
    assert.equal(m.histogram, undefined);
    const dp = m.exponentialHistogram.dataPoints[0];
    assert.equal(m.exponentialHistogram.aggregationTemporality, 2);
    assert.equal(dp.count, String(ms.length));
    assert.equal(dp.sum, ms.reduce((s, v) => s + v / 1000, 0));
    assert.equal(dp.min, 0.00008);
    assert.equal(dp.max, 1.8);
    const scale: number = dp.scale ?? 0;
    const offset: number = dp.positive.offset ?? 0;
    const counts: number[] = dp.positive.bucketCounts.map(Number);
    assert.equal(counts.reduce((a, b) => a + b, 0), ms.length);
    // every value lies in its bucket: (base^(offset+i), base^(offset+i+1)], base = 2^(2^-scale)
    const expected = new Array(counts.length).fill(0);
    for (const v of ms.map((x) => x / 1000)) {
      const index = Math.ceil(Math.log2(v) * 2 ** scale) - 1;
      expected[index - offset]++;
    }
    assert.deepEqual(counts, expected);
  });

  it('exports only the increase since the last export with delta temporality', async () => {
    const t = telemetry({ temporality: 'delta' });
    t.record(NINE_CONNECTS[0]!);
    t.record(NINE_CONNECTS[1]!);
    await t.flush();
    t.record(NINE_CONNECTS[2]!);
    await t.flush();
    const counts = receiver.metrics.map((req) => {
      const m = lastMetric([req], 'tcp.connect.duration');
      assert.equal(m.histogram.aggregationTemporality, 1);
      return m.histogram.dataPoints[0].count;
    });
    assert.deepEqual(counts, ['2', '1']);
  });

  it('counts failed exports by signal in connlat.export.failures (receiver answering UNAVAILABLE)', async () => {
    const warnings: string[] = [];
    const t = telemetry({ slowMs: 10, logger: { warn: (m) => warnings.push(m) } });
    receiver.failWith(grpc.status.UNAVAILABLE, 'collector down');
    t.record(NINE_CONNECTS[0]!); // slow: one log record
    await t.flush(); // logs export fails, then metrics export fails
    assert.equal(receiver.rejected >= 2, true);
    assert.equal(receiver.metrics.length, 0);
    receiver.failWith(null);
    await t.flush();
    assert.deepEqual(counterBy(receiver.metrics, 'connlat.export.failures', 'signal'), { logs: 1, metrics: 1 });
    assert.equal(warnings.length, 2);
    assert.match(warnings.join('\n'), /logs export failed/);
    assert.match(warnings.join('\n'), /metrics export failed/);
    // the log record refused during the outage waits in the OTLP log queue and is retried (test/hardening/delivery.test.ts)
    await receiver.waitFor(() => logRecords(receiver.logs).length === 1, 10_000);
  });
});

describe('telemetry: otlp settings from OTEL_EXPORTER_OTLP_* env', () => {
  const saved = { ...process.env };
  after(() => {
    for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k];
    Object.assign(process.env, saved);
  });

  it('takes the endpoint from OTEL_EXPORTER_OTLP_ENDPOINT and compression from OTEL_EXPORTER_OTLP_COMPRESSION', async () => {
    const receiver = await startOtlpReceiver();
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint;
    process.env.OTEL_EXPORTER_OTLP_COMPRESSION = 'none';
    const t = createTelemetry(options({ exports: [{ kind: 'otlp' }] }));
    try {
      t.record(NINE_CONNECTS[0]!);
      await t.flush();
      assert.equal(lastMetric(receiver.metrics, 'tcp.connect.duration').histogram.dataPoints[0].count, '1');
      assert.equal(receiver.calls.metrics[0]!.encoding, 'identity');
    } finally {
      await t.shutdown();
      await receiver.close();
      delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      delete process.env.OTEL_EXPORTER_OTLP_COMPRESSION;
    }
  });
});
