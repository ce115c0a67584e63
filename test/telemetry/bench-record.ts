// Throughput of Telemetry.record() (run: npx node test/telemetry/bench-record.ts [events] [destinations]).
// Not a test: prints events/s for record() and for the SDK calls it makes, measured in the same run so the ratios
// mean something on a noisy machine.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeterProvider, PeriodicExportingMetricReader, AggregationType } from '@opentelemetry/sdk-metrics';
import type { ConnectEvent } from '../../src/event.ts';
import { allMetricAttributes, MetricAttributeCache, METRIC_ATTRIBUTE_KEYS } from '../../src/telemetry/attributes.ts';
import { OtlpJsonFileMetricExporter } from '../../src/telemetry/otlp-json.ts';
import { createTelemetry, CONNECT_DURATION_BUCKETS } from '../../src/telemetry/index.ts';
import { NINE_CONNECTS, options } from './helpers.ts';

const N = Number(process.argv[2] ?? 1_000_000);
const DESTS = Number(process.argv[3] ?? 1000);
const dir = mkdtempSync(join(tmpdir(), 'connlat-bench-'));

function makeEvents(slowEvery: number): ConnectEvent[] {
  const base = NINE_CONNECTS[0]!;
  return Array.from({ length: N }, (_, i) => {
    const d = i % DESTS;
    return { ...base, pid: 1000 + (i % 97), daddr: `10.${d >> 16}.${(d >> 8) & 255}.${d & 255}`, latencyMs: slowEvery && i % slowEvery === 0 ? 150 : 0.2 + (i % 1000) / 100 };
  });
}

/**
 * Runs fn over all events; returns events per CPU-second of this process (user + system), which is what "events/s on
 * one core" means and is far less disturbed by other processes on a busy machine than wall time (also printed).
 */
function time(label: string, events: ConnectEvent[], fn: (e: ConnectEvent) => void): number {
  for (let i = 0; i < Math.min(events.length, 50_000); i++) fn(events[i]!); // warm up
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < events.length; i++) fn(events[i]!);
  const wallNs = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  const cpuNs = (cpu.user + cpu.system) * 1000;
  const rate = events.length / (cpuNs / 1e9);
  const wallRate = events.length / (wallNs / 1e9);
  console.log(
    `${label.padEnd(58)} ${(rate / 1e3).toFixed(0).padStart(6)} k events/CPU-s ${(cpuNs / events.length).toFixed(0).padStart(6)} ns CPU/event` +
      `  (wall ${(wallRate / 1e3).toFixed(0)} k/s)`,
  );
  return rate;
}

function sdkHistogram() {
  const provider = new MeterProvider({
    readers: [new PeriodicExportingMetricReader({ exporter: new OtlpJsonFileMetricExporter(join(dir, 'sdk.jsonl'), 1), exportIntervalMillis: 3_600_000 })],
    views: [{ instrumentName: 'h', aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: CONNECT_DURATION_BUCKETS } }, aggregationCardinalityLimit: 2000 }],
  });
  return { provider, h: provider.getMeter('bench').createHistogram('h', { unit: 's' }) };
}

const events = makeEvents(0);
const slowEvents = makeEvents(100);
console.log(`${N} events, ${DESTS} distinct destinations, node ${process.version}, load average ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`);

let sink = 0;
const loop = time('baseline: loop reading latencyMs', events, (e) => {
  sink += e.latencyMs;
});

const cache = new MetricAttributeCache([...METRIC_ATTRIBUTE_KEYS]);
const cacheOnly = time('MetricAttributeCache lookup, else ref (cache part of record)', events, (e) => {
  sink += (cache.lookup(e) ?? cache.ref(e)).key.length;
});

const pre = sdkHistogram();
const prebuilt = events.slice(0, DESTS).map((e) => allMetricAttributes(e));
let j = 0;
const sdkOnly = time('SDK histogram.record, attributes prebuilt per destination', events, (e) => {
  pre.h.record(e.latencyMs / 1000, prebuilt[j++ % DESTS]!);
});

const fresh = sdkHistogram();
const sdkFresh = time('SDK histogram.record, fresh attribute object per event', events, (e) => fresh.h.record(e.latencyMs / 1000, allMetricAttributes(e)));

const t = createTelemetry(options({ exports: [{ kind: 'otlp-json', path: join(dir, 'telemetry.jsonl') }], slowMs: 1e9, metricAttributes: [...METRIC_ATTRIBUTE_KEYS] }));
const rec = time('Telemetry.record (cached attributes), no slow logs', events, (e) => t.record(e));

const t2 = createTelemetry(options({ exports: [{ kind: 'otlp-json', path: join(dir, 'telemetry2.jsonl') }], slowMs: 100, slowLogRatePerSec: 100, slowLogBurst: 100 }));
const recSlow = time('Telemetry.record, 1% slow (rate-limited logs)', slowEvents, (e) => t2.record(e));

// --traces on vs off on the same events, interleaved (3 rounds each) so the machine's load falls on both alike
const spansOn = createTelemetry(options({ exports: [{ kind: 'otlp-json', path: join(dir, 'spans-on.jsonl') }], slowMs: 100, slowLogRatePerSec: 100, slowLogBurst: 100, traces: true }));
const spansOff = createTelemetry(options({ exports: [{ kind: 'otlp-json', path: join(dir, 'spans-off.jsonl') }], slowMs: 100, slowLogRatePerSec: 100, slowLogBurst: 100, traces: false }));
const fast: Record<'on' | 'off', number[]> = { on: [], off: [] };
const withSlow: Record<'on' | 'off', number[]> = { on: [], off: [] };
for (let round = 0; round < 3; round++) {
  fast.off.push(time(`Telemetry.record, no slow connect, --traces off (${round})`, events, (e) => spansOff.record(e)));
  fast.on.push(time(`Telemetry.record, no slow connect, --traces on (${round})`, events, (e) => spansOn.record(e)));
  withSlow.off.push(time(`Telemetry.record, 1% slow, --traces off (${round})`, slowEvents, (e) => spansOff.record(e)));
  withSlow.on.push(time(`Telemetry.record, 1% slow, --traces on (${round})`, slowEvents, (e) => spansOn.record(e)));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`--traces on/off (median of 3, events per CPU-s): no slow connect ${(median(fast.on) / median(fast.off)).toFixed(3)}, 1% slow ${(median(withSlow.on) / median(withSlow.off)).toFixed(3)}`);
await spansOn.shutdown();
await spansOff.shutdown();

console.log(`cache-only ${(cacheOnly / 1e3).toFixed(0)} k/s; ratios: record/sdk-prebuilt ${(rec / sdkOnly).toFixed(2)}, record/sdk-fresh ${(rec / sdkFresh).toFixed(2)}, loop/record ${(loop / rec).toFixed(0)}`);
console.log(`rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB (sink ${sink > 0})`);
await t.shutdown();
await t2.shutdown();
await pre.provider.shutdown();
await fresh.provider.shutdown();
void recSlow;
rmSync(dir, { recursive: true, force: true });
