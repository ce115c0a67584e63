// The pre-aggregation (src/telemetry/aggregate.ts) against the SDK's own aggregation of the same events: exact
// counts, sums, min/max, buckets and attributes; cumulative and delta; cardinality overflow; several readers.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Attributes } from '@opentelemetry/api';
import {
  AggregationTemporality,
  AggregationType,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type MetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import type { ConnectEvent } from '../../src/event.ts';
import { PreAggregator } from '../../src/telemetry/aggregation/storage.ts';
import { allMetricAttributes, MetricAttributeCache, METRIC_ATTRIBUTE_KEYS, seriesKeyCodec } from '../../src/telemetry/attributes.ts';
import { CONNECT_DURATION_BUCKETS, createTelemetry } from '../../src/telemetry/index.ts';
import { mergeScopes } from '../../src/telemetry/reader.ts';
import { attrs, lastMetric, NINE_CONNECTS, options } from './helpers.ts';

const SCOPE = { name: 'connlat', version: '' };
const { CUMULATIVE, DELTA } = AggregationTemporality;

/** Deterministic events: destinations, some with identity, latencies on and around every bucket boundary. */
function events(n: number, destinations: number, seed = 7): ConnectEvent[] {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const onBoundaries = CONNECT_DURATION_BUCKETS.flatMap((b) => [b * 1000, b * 1000 * 1.0001, b * 1000 * 0.9999]);
  const out: ConnectEvent[] = [];
  for (let i = 0; i < n; i++) {
    const d = Math.floor(rand() * destinations);
    const base = NINE_CONNECTS[d % 3 === 0 ? 5 : d % 2 === 0 ? 7 : 0]!;
    const latencyMs = i % 3 === 0 ? onBoundaries[i % onBoundaries.length]! : rand() < 0.01 ? 20_000 + rand() : -Math.log(1 - rand()) * 3;
    out.push({ ...base, daddr: base.ipVersion === 6 ? `2001:db8::${d.toString(16)}` : `10.1.${d >> 8}.${d & 255}`, dport: 443 + (d % 3), latencyMs, failed: rand() < 0.1 });
  }
  return out;
}

/** The SDK's own aggregation: the instruments and views createTelemetry used before the pre-aggregation. */
function sdkReference(temporality: AggregationTemporality, limit: number) {
  const reader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(temporality), exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({
    readers: [reader],
    views: [
      { instrumentName: 'tcp.connect.duration', aggregationCardinalityLimit: limit, aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: CONNECT_DURATION_BUCKETS } } },
      { instrumentName: 'tcp.connect.failures', aggregationCardinalityLimit: limit },
    ],
  });
  const meter = provider.getMeter('connlat');
  const h = meter.createHistogram('tcp.connect.duration', { unit: 's' });
  const c = meter.createCounter('tcp.connect.failures', { unit: '{connection}' });
  return {
    record: (e: ConnectEvent, attrs: Attributes) => (e.failed ? c.add(1, attrs) : h.record(e.latencyMs / 1000, attrs)),
    /** One collection (delta: consumes it), by metric name. */
    collect: async () => {
      const { resourceMetrics } = await reader.collect();
      return new Map(resourceMetrics.scopeMetrics.flatMap((sm) => sm.metrics).map((m) => [m.descriptor.name, m]));
    },
    shutdown: () => provider.shutdown(),
  };
}

function ours(temporality: AggregationTemporality, limit: number, readers = 1, now?: () => number) {
  const options = { cardinalityLimit: limit, temporality, ...(now ? { now } : {}) };
  const duration = new PreAggregator(0, { name: 'tcp.connect.duration', description: '', unit: 's', boundaries: CONNECT_DURATION_BUCKETS }, options);
  const failures = new PreAggregator(1, { name: 'tcp.connect.failures', description: '', unit: '{connection}' }, options);
  const producers = Array.from({ length: readers }, () => ({ duration: duration.producer(temporality, SCOPE), failures: failures.producer(temporality, SCOPE) }));
  return { duration, failures, producers };
}

async function collectOne(p: MetricProducer): Promise<MetricData | undefined> {
  const r = await p.collect();
  return r.resourceMetrics.scopeMetrics[0]?.metrics[0];
}

/** Data points without times, sorted by attributes, for comparing two aggregations. */
function points(m: MetricData | undefined): unknown[] {
  if (m === undefined) return [];
  return m.dataPoints
    .map((p) => ({ attributes: JSON.stringify(p.attributes), value: p.value }))
    .sort((a, b) => (a.attributes < b.attributes ? -1 : a.attributes > b.attributes ? 1 : 0));
}

describe('pre-aggregation vs the SDK', () => {
  for (const temporality of [CUMULATIVE, DELTA]) {
    const name = temporality === CUMULATIVE ? 'cumulative' : 'delta';
    for (const allow of [[...METRIC_ATTRIBUTE_KEYS], ['network.type', 'server.port', 'k8s.dst.name']]) {
      it(`${name}, ${allow.length} allowed keys: the same data points as the SDK over three collections`, async () => {
        const sdk = sdkReference(temporality, 2000);
        const mine = ours(temporality, 2000);
        const cache = new MetricAttributeCache(allow, 64); // small: entries get evicted and rebuilt on the way
        const all = events(6000, 300);
        try {
          for (const batch of [all.slice(0, 3000), all.slice(3000, 3001), all.slice(3001, 6000).filter((_, i) => i % 7 !== 0)]) {
            for (const e of batch) {
              sdk.record(e, cache.get(e));
              if (e.failed) mine.failures.record(cache.ref(e), 1);
              else mine.duration.record(cache.ref(e), e.latencyMs / 1000);
            }
            const collected = await sdk.collect();
            for (const [metric, agg] of [['tcp.connect.duration', 'duration'], ['tcp.connect.failures', 'failures']] as const) {
              const want = collected.get(metric);
              const got = await collectOne(mine.producers[0]![agg]);
              if (batch.length > 100) assert.ok(points(want).length > 1, `${metric}: the SDK reported the batch`);
              assert.deepEqual(points(got), points(want), metric);
              assert.equal(got?.aggregationTemporality, want?.aggregationTemporality);
              assert.equal(got?.dataPointType, want?.dataPointType);
              if (got !== undefined && 'isMonotonic' in want!) assert.equal((got as { isMonotonic: boolean }).isMonotonic, want.isMonotonic);
            }
          }
        } finally {
          await sdk.shutdown();
        }
      });
    }
  }
});

describe('pre-aggregation semantics', () => {
  const e = (i: number, latencyMs = 1): ConnectEvent => ({ ...NINE_CONNECTS[0]!, daddr: `10.2.${i >> 8}.${i & 255}`, latencyMs });

  it('cumulative: start time is the first measurement of the series, end time the collection', async () => {
    let now = 1_000;
    const { duration, producers } = ours(CUMULATIVE, 100, 1, () => now);
    const cache = new MetricAttributeCache([...METRIC_ATTRIBUTE_KEYS]);
    duration.record(cache.ref(e(1)), 0.001);
    now = 2_000;
    duration.record(cache.ref(e(2)), 0.002);
    now = 3_000;
    await collectOne(producers[0]!.duration);
    now = 4_000;
    duration.record(cache.ref(e(1)), 0.003);
    now = 5_000;
    const m = (await collectOne(producers[0]!.duration))!;
    const byAddr = Object.fromEntries(m.dataPoints.map((p) => [p.attributes['server.address'], p]));
    assert.deepEqual(byAddr['10.2.0.1']!.startTime, [1, 0]);
    assert.deepEqual(byAddr['10.2.0.2']!.startTime, [2, 0]);
    assert.deepEqual(byAddr['10.2.0.1']!.endTime, [5, 0]);
    const v = byAddr['10.2.0.1']!.value as { min: number; max: number; sum: number; count: number; buckets: { counts: number[] } };
    assert.deepEqual([v.min, v.max, v.sum, v.count], [0.001, 0.003, 0.001 + 0.003, 2]);
    assert.equal(v.buckets.counts[4], 1, '0.001 is in the bucket (0.0005, 0.001]');
    assert.equal(v.buckets.counts[6], 1, '0.003 is in the bucket (0.0025, 0.005]');
  });

  it('delta: only series measured since the last collection; start = last collection for a series reported then', async () => {
    let now = 1_000;
    const { duration, producers } = ours(DELTA, 100, 1, () => now);
    const cache = new MetricAttributeCache([...METRIC_ATTRIBUTE_KEYS]);
    duration.record(cache.ref(e(1)), 0.001);
    duration.record(cache.ref(e(2)), 0.002);
    now = 2_000;
    assert.equal((await collectOne(producers[0]!.duration))!.dataPoints.length, 2);
    now = 2_500;
    duration.record(cache.ref(e(1)), 0.004);
    duration.record(cache.ref(e(3)), 0.005);
    now = 3_000;
    const m = (await collectOne(producers[0]!.duration))!;
    const byAddr = Object.fromEntries(m.dataPoints.map((p) => [p.attributes['server.address'], p]));
    assert.deepEqual(Object.keys(byAddr).sort(), ['10.2.0.1', '10.2.0.3']);
    assert.deepEqual(byAddr['10.2.0.1']!.startTime, [2, 0], 'reported last time: starts at that collection');
    assert.deepEqual(byAddr['10.2.0.3']!.startTime, [2, 500_000_000], 'new series: starts at its first measurement');
    assert.equal((byAddr['10.2.0.1']!.value as { count: number }).count, 1);
    now = 4_000;
    assert.equal(await collectOne(producers[0]!.duration), undefined, 'nothing measured: nothing reported');
  });

  it('overflow: limit N keeps N-1 attribute sets and records the rest into otel.metric.overflow=true', async () => {
    const { duration, failures, producers } = ours(CUMULATIVE, 5);
    const cache = new MetricAttributeCache([...METRIC_ATTRIBUTE_KEYS]);
    for (let i = 0; i < 20; i++) duration.record(cache.ref(e(i)), 0.001);
    for (let i = 0; i < 3; i++) failures.record(cache.ref(e(i)), 1); // its own table: these three get series
    let m = (await collectOne(producers[0]!.duration))!;
    assert.equal(m.dataPoints.length, 5);
    const overflow = m.dataPoints.filter((p) => p.attributes['otel.metric.overflow'] === true);
    assert.deepEqual(overflow.map((p) => [p.attributes, (p.value as { count: number }).count]), [[{ 'otel.metric.overflow': true }, 16]]);
    // cumulative: the bound holds for the life of the process, not per interval (a new destination still overflows)
    duration.record(cache.ref(e(100)), 0.001);
    duration.record(cache.ref(e(0)), 0.001);
    m = (await collectOne(producers[0]!.duration))!;
    assert.equal(m.dataPoints.length, 5);
    assert.equal((m.dataPoints.find((p) => p.attributes['otel.metric.overflow'] === true)!.value as { count: number }).count, 17);
    assert.equal((m.dataPoints.find((p) => p.attributes['server.address'] === '10.2.0.0')!.value as { count: number }).count, 2);
    assert.equal((await collectOne(producers[0]!.failures))!.dataPoints.length, 3);
    assert.equal(duration.seriesCount, 4);
  });

  it('overflow with delta: the limit is per collection interval (as in the SDK)', async () => {
    const { duration, producers } = ours(DELTA, 3);
    const cache = new MetricAttributeCache([...METRIC_ATTRIBUTE_KEYS]);
    for (let i = 0; i < 5; i++) duration.record(cache.ref(e(i)), 0.001);
    let m = (await collectOne(producers[0]!.duration))!;
    assert.deepEqual(m.dataPoints.map((p) => p.attributes['server.address'] ?? 'overflow').sort(), ['10.2.0.0', '10.2.0.1', 'overflow']);
    for (let i = 3; i < 6; i++) duration.record(cache.ref(e(i)), 0.001);
    m = (await collectOne(producers[0]!.duration))!;
    assert.deepEqual(m.dataPoints.map((p) => p.attributes['server.address'] ?? 'overflow').sort(), ['10.2.0.3', '10.2.0.4', 'overflow']);
  });

  for (const temporality of [CUMULATIVE, DELTA]) {
    it(`two export targets (${temporality === CUMULATIVE ? 'cumulative' : 'delta'}) collecting at different times each get every measurement once`, async () => {
      const { duration, producers } = ours(temporality, 50, 2);
      const [a, b] = [producers[0]!.duration, producers[1]!.duration];
      const cache = new MetricAttributeCache([...METRIC_ATTRIBUTE_KEYS]);
      const all = events(3000, 80).filter((x) => !x.failed);
      const totals = { a: 0, b: 0 };
      const count = (m: MetricData | undefined) => (m?.dataPoints ?? []).reduce((n, p) => n + (p.value as { count: number }).count, 0);
      for (let i = 0; i < all.length; i++) {
        duration.record(cache.ref(all[i]!), all[i]!.latencyMs / 1000);
        if (i % 500 === 499) {
          const m = await collectOne(a); // a collects often, b rarely
          totals.a = temporality === CUMULATIVE ? count(m) : totals.a + count(m);
        }
        if (i % 1400 === 1399) {
          const m = await collectOne(b);
          totals.b = temporality === CUMULATIVE ? count(m) : totals.b + count(m);
        }
      }
      for (const [k, p] of [['a', a], ['b', b]] as const) {
        const m = await collectOne(p);
        totals[k] = temporality === CUMULATIVE ? count(m) : totals[k] + count(m);
      }
      assert.deepEqual(totals, { a: all.length, b: all.length });
    });
  }
});

describe('record() beyond the cardinality limit', () => {
  for (const temporality of ['cumulative', 'delta'] as const) {
    it(`${temporality}: a full table still finds the series of a known destination; a new port to a known address overflows`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'connlat-aggregate-'));
      const t = createTelemetry(options({ exports: [{ kind: 'otlp-json', path: join(dir, 'out.jsonl') }], cardinalityLimit: 3, temporality, slowMs: 1e9 }));
      try {
        const at = (daddr: string, dport: number, failed = false): ConnectEvent => ({ ...NINE_CONNECTS[0]!, daddr, dport, latencyMs: 2, failed });
        for (const e of [at('10.3.0.1', 443), at('10.3.0.2', 443), at('10.3.0.1', 80), at('10.3.0.3', 443), at('10.3.0.1', 443), at('10.3.0.3', 443, true)]) t.record(e);
        await t.flush();
        const requests = readFileSync(join(dir, 'out.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
        const counts = (name: string, value: (p: any) => number) =>
          Object.fromEntries(lastMetric(requests, name)[name === 'tcp.connect.duration' ? 'histogram' : 'sum'].dataPoints.map((p: any) => {
            const a = attrs(p.attributes);
            return [a['otel.metric.overflow'] === true ? 'overflow' : `${a['server.address']}:${a['server.port']}`, value(p)];
          }));
        assert.deepEqual(counts('tcp.connect.duration', (p) => Number(p.count)), { '10.3.0.1:443': 2, '10.3.0.2:443': 1, overflow: 2 });
        assert.deepEqual(counts('tcp.connect.failures', (p) => Number(p.asInt)), { '10.3.0.3:443': 1 }, 'the failure counter has its own table');
        if (temporality === 'delta') {
          t.record(at('10.3.0.4', 443)); // a new interval: room again
          await t.flush();
          const next = readFileSync(join(dir, 'out.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
          assert.deepEqual(lastMetric(next.slice(-1), 'tcp.connect.duration').histogram.dataPoints.map((p: any) => attrs(p.attributes)['server.address']), ['10.3.0.4']);
        }
      } finally {
        await t.shutdown();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('series keys and attributes', () => {
  it('equal attribute sets have equal keys, different ones different keys, and a key decodes to its attributes', () => {
    const tricky = ['a"b\\c\u00e9', '\u0000', '\u0001', '\u0002x', 'x\u0000y', '', '42'];
    const variants: ConnectEvent[] = [
      ...NINE_CONNECTS,
      ...tricky.map((comm) => ({ ...NINE_CONNECTS[0]!, comm })),
      ...tricky.map((name) => ({ ...NINE_CONNECTS[5]!, dst: { ...NINE_CONNECTS[5]!.dst, name } })),
      { ...NINE_CONNECTS[5]!, src: undefined },
      { ...NINE_CONNECTS[5]!, dst: { name: 'cart' } },
    ];
    for (const allow of [[...METRIC_ATTRIBUTE_KEYS], ['server.port', 'network.type'], ['k8s.dst.name', 'process.executable.name'], ['server.address'], []]) {
      const { keyOf, decode } = seriesKeyCodec(allow);
      const cache = new MetricAttributeCache(allow);
      const byKey = new Map<string, string>();
      for (const e of variants) {
        const all = allMetricAttributes(e);
        const want: Record<string, unknown> = {};
        for (const k in all) if (allow.includes(k)) want[k] = all[k];
        const key = keyOf(e);
        const wantText = JSON.stringify(want);
        assert.equal(byKey.get(key) ?? wantText, wantText, `key ${JSON.stringify(key)} stands for one attribute set`);
        byKey.set(key, wantText);
        assert.deepEqual(decode(key), want);
        assert.equal(JSON.stringify(decode(key)), wantText, 'same key order');
        assert.equal(JSON.stringify(cache.get(e)), wantText);
      }
      assert.equal(byKey.size, new Set(byKey.values()).size, 'different attribute sets, different keys');
    }
  });

  it('puts pre-aggregated metrics into the SDK scope of the same name, in instrument order', () => {
    const metric = (name: string) => ({ descriptor: { name } }) as unknown as MetricData;
    const merged = mergeScopes(
      [
        { scope: SCOPE, metrics: [metric('connlat.lines.rejected'), metric('connlat.tool.restarts')] },
        { scope: { name: 'other', version: '' }, metrics: [metric('x')] },
        { scope: SCOPE, metrics: [metric('tcp.connect.failures')] },
        { scope: SCOPE, metrics: [metric('tcp.connect.duration')] },
      ],
      ['tcp.connect.duration', 'tcp.connect.failures'],
    );
    assert.deepEqual(
      merged.map((sm) => [sm.scope.name, sm.metrics.map((m) => m.descriptor.name)]),
      [
        ['connlat', ['tcp.connect.duration', 'tcp.connect.failures', 'connlat.lines.rejected', 'connlat.tool.restarts']],
        ['other', ['x']],
      ],
    );
  });
});
