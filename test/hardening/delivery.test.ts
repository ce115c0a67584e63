// The OTLP delivery layer on its own, against the real gRPC receiver and the SDK's real gRPC exporters: the bounded
// log queue holds records through an outage and delivers them in order, counts exactly what it refuses, drops a batch
// the gateway answers with a final status, gives up at the shutdown deadline counting what is left; the metric
// exporter re-sends a failed export in the background; a gateway restarted on the same port is reached again at once
// (the exporter is rebuilt on a new channel instead of waiting out grpc-js's reconnect backoff).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { AggregationTemporality, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { isRetryable, QueuedLogExporter, RetryingMetricExporter, type DropReason as LogDropReason } from '../../src/telemetry/delivery.ts';
import { retryDelay } from '../../src/backoff.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp/receiver.ts';
import { lastMetric, logRecords } from '../telemetry/helpers.ts';
import { waitUntil } from './helpers.ts';

const FAST = { initialMs: 50, maxMs: 200 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Harness {
  queue: QueuedLogExporter;
  provider: LoggerProvider;
  dropped: Array<[number, LogDropReason]>;
  failures: number;
  emit(from: number, to: number): void;
}

function logHarness(receiver: OtlpReceiver, opts: { maxQueueSize: number; deadlineMs?: number }): Harness {
  const h = { dropped: [], failures: 0 } as unknown as Harness;
  const make = () => new OTLPLogExporter({ url: receiver.endpoint });
  h.queue = new QueuedLogExporter(
    make(),
    {
      maxQueueSize: opts.maxQueueSize,
      maxBatchSize: 40,
      retry: FAST,
      deadline: () => Date.now() + (opts.deadlineMs ?? 5000),
      onAttemptFailure: () => h.failures++,
      onDropped: (n, reason) => h.dropped.push([n, reason]),
    },
    make,
  );
  h.provider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': 'delivery-test' }),
    processors: [new BatchLogRecordProcessor({ exporter: h.queue, maxExportBatchSize: 50, maxQueueSize: 10_000, scheduledDelayMillis: 20 })],
  });
  const logger = h.provider.getLogger('t');
  h.emit = (from, to) => {
    for (let i = from; i < to; i++) logger.emit({ body: `r${i}` });
  };
  return h;
}

const bodies = (r: OtlpReceiver) => logRecords(r.logs).map((x) => x.body.stringValue as string);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `r${from + i}`);

describe('retry policy', () => {
  it('retries the OTLP retryable codes and errors without a status, not final ones', () => {
    for (const code of [1, 4, 8, 10, 11, 14, 15]) assert.equal(isRetryable({ code }), true, `code ${code}`);
    for (const code of [2, 3, 5, 6, 7, 9, 12, 13, 16]) assert.equal(isRetryable({ code }), false, `code ${code}`);
    assert.equal(isRetryable(new Error('Concurrent export limit reached')), true);
  });
  it('backs off exponentially with equal jitter, capped', () => {
    const lo = { initialMs: 1000, maxMs: 30_000, random: () => 0 };
    const hi = { ...lo, random: () => 0.999999 };
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((a) => retryDelay(a, lo)), [500, 1000, 2000, 4000, 8000, 15000, 15000]);
    assert.deepEqual([0, 1, 5, 40].map((a) => retryDelay(a, hi)), [1000, 2000, 30000, 30000]);
  });
});

describe('bounded log queue with retry (real gRPC)', () => {
  it('holds records through an outage and delivers all of them, in order, once the gateway answers', async () => {
    const receiver = await startOtlpReceiver();
    const h = logHarness(receiver, { maxQueueSize: 1000 });
    try {
      receiver.failWith(grpc.status.UNAVAILABLE, 'gateway down');
      h.emit(0, 300);
      await h.provider.forceFlush(); // one attempt: fails, records stay queued
      assert.ok(receiver.rejected >= 1);
      assert.equal(h.queue.queued, 300);
      await sleep(500); // a few retries, all refused
      receiver.failWith(null);
      await receiver.waitFor(() => logRecords(receiver.logs).length >= 300, 10_000);
      assert.deepEqual(bodies(receiver), range(0, 300));
      assert.deepEqual(h.dropped, []);
      assert.ok(h.failures >= 2, `failures counted per attempt (${h.failures})`);
    } finally {
      await h.provider.shutdown();
      await receiver.close();
    }
  });

  it('beyond the bound drops exactly the excess and counts it as queue_full', async () => {
    const receiver = await startOtlpReceiver();
    const h = logHarness(receiver, { maxQueueSize: 100 });
    try {
      receiver.failWith(grpc.status.UNAVAILABLE, 'gateway down');
      h.emit(0, 250);
      await h.provider.forceFlush();
      assert.equal(h.queue.queued, 100);
      receiver.failWith(null);
      await receiver.waitFor(() => logRecords(receiver.logs).length >= 100, 10_000);
      await sleep(200);
      assert.deepEqual(bodies(receiver), range(0, 100), 'the first 100 (the queue keeps the oldest)');
      const total = h.dropped.reduce((a, [n, r]) => (r === 'queue_full' ? a + n : a), 0);
      assert.equal(total, 150);
    } finally {
      await h.provider.shutdown();
      await receiver.close();
    }
  });

  it('drops a batch answered with a final status (UNAUTHENTICATED) as rejected, without retrying it', async () => {
    const receiver = await startOtlpReceiver();
    const h = logHarness(receiver, { maxQueueSize: 1000 });
    try {
      receiver.failWith(grpc.status.UNAUTHENTICATED, 'bad token');
      h.emit(0, 30);
      await h.provider.forceFlush();
      await sleep(300);
      assert.equal(receiver.rejected, 1, 'one attempt, no retry');
      assert.deepEqual(h.dropped, [[30, 'rejected']]);
      receiver.failWith(null);
      h.emit(30, 40);
      await h.provider.forceFlush();
      assert.deepEqual(bodies(receiver), range(30, 40));
    } finally {
      await h.provider.shutdown();
      await receiver.close();
    }
  });

  it('shutdown keeps trying until its deadline, then counts what is left as shutdown', async () => {
    const receiver = await startOtlpReceiver();
    const h = logHarness(receiver, { maxQueueSize: 1000, deadlineMs: 1500 });
    receiver.failWith(grpc.status.UNAVAILABLE, 'gateway down');
    h.emit(0, 120);
    await h.provider.forceFlush();
    const began = Date.now();
    await h.provider.shutdown();
    const took = Date.now() - began;
    await receiver.close();
    assert.deepEqual(h.dropped, [[120, 'shutdown']]);
    assert.ok(took >= 1400 && took < 6000, `shutdown took ${took} ms for a 1500 ms deadline`);
    assert.ok(receiver.rejected >= 3, `kept retrying until the deadline (${receiver.rejected} attempts)`);
  });

  it('reaches a gateway restarted on the same port without waiting out the gRPC reconnect backoff', { timeout: 60_000 }, async () => {
    let receiver = await startOtlpReceiver();
    const port = receiver.port;
    const h = logHarness(receiver, { maxQueueSize: 1000 });
    try {
      h.emit(0, 10);
      await h.provider.forceFlush();
      await receiver.waitFor(() => logRecords(receiver.logs).length === 10);
      await receiver.close();
      h.emit(10, 20);
      await sleep(20_000); // grpc-js's own backoff (1 s x1.6 per failure) is then at several seconds
      receiver = await startOtlpReceiver({ port });
      const back = Date.now();
      const r = receiver;
      await r.waitFor(() => logRecords(r.logs).length >= 10, 10_000);
      const took = Date.now() - back;
      assert.deepEqual(bodies(r), range(10, 20));
      assert.ok(took < 2000, `delivered ${took} ms after the gateway came back (retry ceiling 200 ms)`);
    } finally {
      await h.provider.shutdown();
      await receiver.close();
    }
  });
});

describe('metric retry (real gRPC)', () => {
  it('re-sends a failed cumulative export in the background; the totals arrive without waiting for the next interval', async () => {
    const receiver = await startOtlpReceiver();
    const failures: unknown[] = [];
    const make = () => new OTLPMetricExporter({ url: receiver.endpoint, temporalityPreference: AggregationTemporality.CUMULATIVE });
    const exporter = new RetryingMetricExporter(
      make(),
      { retry: FAST, temporality: AggregationTemporality.CUMULATIVE, deadline: () => Date.now() + 3000, onAttemptFailure: (e) => failures.push(e) },
      make,
    );
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 600_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const counter = provider.getMeter('t').createCounter('events');
    try {
      receiver.failWith(grpc.status.UNAVAILABLE, 'gateway down');
      counter.add(5);
      await provider.forceFlush(); // the reader sees one failure at once
      assert.ok(failures.length >= 1, 'counted at once');
      assert.equal(exporter.pending, 1);
      counter.add(7);
      await sleep(300);
      receiver.failWith(null);
      await receiver.waitFor(() => receiver.metrics.length > 0, 5000);
      assert.equal(lastMetric(receiver.metrics, 'events').sum.dataPoints[0].asDouble, 5, 'the export that failed');
      await provider.forceFlush();
      assert.equal(lastMetric(receiver.metrics, 'events').sum.dataPoints[0].asDouble, 12, 'cumulative totals');
      assert.equal(exporter.pending, 0);
    } finally {
      await provider.shutdown();
      await receiver.close();
    }
  });

  it('delta: failed exports are kept and re-sent oldest first, so no interval is lost', async () => {
    const receiver = await startOtlpReceiver();
    const make = () => new OTLPMetricExporter({ url: receiver.endpoint, temporalityPreference: AggregationTemporality.DELTA });
    const exporter = new RetryingMetricExporter(
      make(),
      { retry: FAST, temporality: AggregationTemporality.DELTA, deadline: () => Date.now() + 3000, onAttemptFailure: () => undefined },
      make,
    );
    const provider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 600_000 })] });
    const counter = provider.getMeter('t').createCounter('events');
    try {
      receiver.failWith(grpc.status.UNAVAILABLE, 'gateway down');
      for (const n of [1, 2, 3]) {
        counter.add(n);
        await provider.forceFlush();
      }
      assert.equal(exporter.pending, 3);
      receiver.failWith(null);
      await receiver.waitFor(() => receiver.metrics.length >= 3, 5000);
      const values = receiver.metrics.map((m) => m.resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints[0].asDouble);
      assert.deepEqual(values, [1, 2, 3]);
      await waitUntil('the last retry acknowledged', () => exporter.pending === 0, 5000); // the reply may trail the receiver
    } finally {
      await provider.shutdown();
      await receiver.close();
    }
  });

  it('shutdown retries the last export until the deadline and says what it gave up', async () => {
    const receiver = await startOtlpReceiver();
    const gaveUp: string[] = [];
    const inner = new OTLPMetricExporter({ url: receiver.endpoint });
    const exporter = new RetryingMetricExporter(inner, {
      retry: FAST,
      temporality: AggregationTemporality.CUMULATIVE,
      deadline: () => Date.now() + 1000,
      onAttemptFailure: () => undefined,
      onGiveUp: (why) => gaveUp.push(why),
    });
    const provider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 600_000 })] });
    provider.getMeter('t').createCounter('events').add(1);
    receiver.failWith(grpc.status.UNAVAILABLE, 'gateway down');
    const began = Date.now();
    await provider.shutdown();
    const took = Date.now() - began;
    await receiver.close();
    assert.ok(took >= 900 && took < 5000, `took ${took} ms`);
    assert.ok(receiver.rejected >= 3, `${receiver.rejected} attempts`);
    assert.match(gaveUp.join('\n'), /1 metric export\(s\) not delivered before the shutdown deadline/);
  });

  it('passes a successful export straight through', async () => {
    const receiver = await startOtlpReceiver();
    const exporter = new RetryingMetricExporter(new OTLPMetricExporter({ url: receiver.endpoint }), {
      retry: FAST,
      temporality: AggregationTemporality.CUMULATIVE,
      deadline: () => Date.now() + 1000,
      onAttemptFailure: () => assert.fail('no failure expected'),
    });
    const provider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 600_000 })] });
    provider.getMeter('t').createCounter('events').add(3);
    await provider.forceFlush();
    await provider.shutdown();
    await receiver.close();
    assert.equal(lastMetric(receiver.metrics, 'events').sum.dataPoints[0].asDouble, 3);
  });
});
