// record + export: the connect-latency histogram, the failure counter, slow-connection logs and connlat's own
// counters, all through one MeterProvider / LoggerProvider with one reader / processor per export target.
import { SeverityNumber, ValueType, type Counter, type Histogram } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { AggregationTemporality, MeterProvider } from '@opentelemetry/sdk-metrics';
import { isSlowConnect, type ConnectEvent } from '../event.ts';
import { seriesAttributes } from './aggregation/series.ts';
import { PreAggregator } from './aggregation/storage.ts';
import { durationPreAggregated, views } from './aggregation/view.ts';
import { logAttributes, MetricAttributeCache } from './attributes.ts';
import { buildLogExporter, buildMetricExporter } from './exporters.ts';
import { ScopeMergingMetricReader } from './reader.ts';
import { slowConnectBody, TokenBucket } from './slow-log.ts';
import { CONNECT_DURATION_BUCKETS, INSTRUMENTS, SCOPE, SLOW_EVENT_NAME, type InstrumentSpec } from './schema.ts';
import type { DeliveryReport, SelfMetrics, Telemetry, TelemetryOptions } from './types.ts';

export type { DeliveryReport, ExportTarget, SelfMetrics, Telemetry, TelemetryOptions } from './types.ts';

export { CONNECT_DURATION_BUCKETS, SLOW_EVENT_NAME } from './schema.ts';
export const CONNECT_DURATION = INSTRUMENTS.connectDuration.name;
export const CONNECT_FAILURES = INSTRUMENTS.connectFailures.name;

/** Entries in the per-destination attribute cache (bounded; the SDK's cardinality limit bounds the series). */
const ATTRIBUTE_CACHE_ENTRIES = 4096;
const RATE_LIMITED = { reason: 'rate_limit' };


export function createTelemetry(opts: TelemetryOptions): Telemetry {
  if (!(opts.cardinalityLimit >= 2)) throw new Error(`telemetry: cardinalityLimit must be >= 2 (got ${opts.cardinalityLimit})`);
  if (!(opts.exportIntervalMs > 0)) throw new Error(`telemetry: exportIntervalMs must be > 0 (got ${opts.exportIntervalMs})`);
  const temporality = opts.temporality === 'delta' ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE;
  const resource = resourceFromAttributes(opts.resource);

  // Export failures are counted by wrapping each exporter; the counter exists before the exporters report.
  let exportFailures: Counter | undefined;
  const failed = (signal: 'metrics' | 'logs') => (error: Error | undefined) => {
    exportFailures?.add(1, { signal });
    opts.logger?.warn(`telemetry: ${signal} export failed: ${error?.message ?? 'unknown error'}`);
  };

  // Records not delivered (the OTLP queue's queue_full, rejected, shutdown; a file export's export_failed): counted by
  // reason, said (sampled), and summed for the report at shutdown.
  const lostLogs = new Map<string, { count: number; detail: string }>();
  const droppedLogs = (n: number, reason: string, detail: string) => {
    logsDropped.add(n, { reason });
    lostLogs.set(reason, { count: (lostLogs.get(reason)?.count ?? 0) + n, detail });
    opts.logger?.warn(`telemetry: slow-connection log records dropped (${reason}): ${n}, ${detail}`);
  };
  // tcp.connect.duration (explicit buckets) and tcp.connect.failures are aggregated here, not by the SDK: its
  // per-record attribute hashing was most of record()'s cost. Each reader gets its own producer of them.
  const explicit = durationPreAggregated(opts.histogram);
  const aggregation = { cardinalityLimit: opts.cardinalityLimit, temporality };
  const durationAgg = explicit
    ? new PreAggregator(0, { ...INSTRUMENTS.connectDuration, boundaries: CONNECT_DURATION_BUCKETS }, aggregation)
    : undefined;
  const failuresAgg = new PreAggregator(1, INSTRUMENTS.connectFailures, aggregation);
  const scope = { name: SCOPE, version: '' };
  const metricExporters = opts.exports.map((target) => buildMetricExporter(target, temporality, failed('metrics'), opts.delivery));
  const readers = metricExporters.map(
    (exporter) =>
      new ScopeMergingMetricReader({
        exporter,
        exportIntervalMillis: opts.exportIntervalMs,
        metricProducers: [durationAgg, failuresAgg].flatMap((a) => (a ? [a.producer(temporality, scope)] : [])),
        metricOrder: [CONNECT_DURATION, CONNECT_FAILURES],
      }),
  );
  const meterProvider = new MeterProvider({ resource, readers, views: views(opts.histogram, opts.cardinalityLimit) });
  const loggerProvider = new LoggerProvider({
    resource,
    processors: opts.exports.map(
      (target) =>
        new BatchLogRecordProcessor({
          exporter: buildLogExporter(target, failed('logs'), droppedLogs, opts.delivery),
          // the token bucket bounds the rate; the queue must hold a full burst or the processor drops uncounted
          maxQueueSize: Math.max(2048, 2 * opts.slowLogBurst),
        }),
    ),
  });

  const meter = meterProvider.getMeter(SCOPE);
  const sdkDuration: Histogram | undefined = explicit
    ? undefined
    : meter.createHistogram(CONNECT_DURATION, { description: INSTRUMENTS.connectDuration.description, unit: INSTRUMENTS.connectDuration.unit, advice: { explicitBucketBoundaries: CONNECT_DURATION_BUCKETS } });
  const counter = (spec: InstrumentSpec): Counter =>
    meter.createCounter(spec.name, { description: spec.description, unit: spec.unit, valueType: ValueType.INT });
  const linesRejected = counter(INSTRUMENTS.linesRejected);
  const toolRestarts = counter(INSTRUMENTS.toolRestarts);
  const lostEvents = counter(INSTRUMENTS.lostEvents);
  const logsDropped = counter(INSTRUMENTS.logsDropped);
  exportFailures = counter(INSTRUMENTS.exportFailures);

  const logger = loggerProvider.getLogger(SCOPE);
  const cache = new MetricAttributeCache(opts.metricAttributes, ATTRIBUTE_CACHE_ENTRIES);
  const byAddress = opts.metricAttributes.includes('server.address');
  const bucket = new TokenBucket(opts.slowLogRatePerSec, opts.slowLogBurst, opts.now);
  const slowMs = opts.slowMs;
  let rateLimited = 0;

  const self: SelfMetrics = {
    lineRejected: (reason) => linesRejected.add(1, { reason }),
    toolRestarted: (tool) => toolRestarts.add(1, { tool }),
    lostEvents: (count) => {
      if (count > 0) lostEvents.add(count);
    },
  };

  function observeTotals(name: string, description: string, attribute: string, read: () => Readonly<Record<string, number>> | undefined): void {
    const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    meter.createObservableCounter(name, { description, unit: '1', valueType: ValueType.INT }).addCallback((result) => {
      for (const [key, value] of Object.entries(read() ?? {})) result.observe(value, { [attribute]: snake(key) });
    });
  }

  function record(event: ConnectEvent): void {
    const agg = event.failed ? failuresAgg : durationAgg;
    const value = event.failed ? 1 : event.latencyMs / 1000;
    let ref = cache.lookup(event);
    if (ref === undefined) {
      // A destination beyond the cardinality limit gets no SeriesRef and is not cached: with many more destinations
      // than the limit it would push out the ones that have a series, and allocating refs that mostly die young at
      // the same site as the cached ones that live long makes V8 pretenure that site (old-space garbage, peak RSS
      // twice as high in the 100k-destination benchmark).
      if (agg !== undefined && byAddress && agg.full && !agg.knownAddress(event.daddr)) {
        agg.recordOverflow(value); // no series has this address: no need to build the key
      } else {
        const key = cache.keyOf(event);
        if (agg !== undefined && !agg.hasRoomFor(key)) agg.recordOverflow(value);
        else cache.insert(event, (ref = cache.create(event, key)));
      }
    }
    if (ref !== undefined) {
      if (agg !== undefined) agg.record(ref, value);
      else sdkDuration!.record(value, seriesAttributes(ref));
    }
    if (isSlowConnect(event, slowMs)) {
      if (!bucket.take()) {
        logsDropped.add(1, RATE_LIMITED);
        rateLimited++;
        return;
      }
      logger.emit({
        eventName: SLOW_EVENT_NAME,
        timestamp: event.timeMs,
        severityNumber: SeverityNumber.WARN,
        severityText: 'WARN',
        body: slowConnectBody(event),
        attributes: logAttributes(event),
      });
    }
  }

  async function flush(): Promise<void> {
    // Logs first: a failed log export is then counted in the metrics exported right after.
    await loggerProvider.forceFlush();
    await meterProvider.forceFlush();
  }

  /** What did not reach the export targets, in one line; undefined when everything did. */
  function undelivered(): string | undefined {
    const parts: string[] = [];
    opts.exports.forEach((target, i) => {
      const lack = metricExporters[i]!.delivery.describe();
      if (lack) parts.push(`metrics: ${lack}${opts.exports.length > 1 ? ` to ${target.kind}` : ''}`);
    });
    const lost = [...lostLogs.values()].reduce((a, b) => a + b.count, 0);
    const why = [...lostLogs].map(([reason, { count, detail }]) => `${reason}: ${count} [${detail}]`);
    if (lost > 0) parts.push(`${lost} slow-connection log records (${why.join(', ')})`);
    return parts.length > 0 ? parts.join('; ') : undefined;
  }

  let shutdownPromise: Promise<DeliveryReport> | undefined;
  function shutdown(): Promise<DeliveryReport> {
    // Each provider's shutdown flushes first (logs before metrics, as in flush()), then releases its exporters.
    shutdownPromise ??= (async () => {
      await loggerProvider.shutdown();
      await meterProvider.shutdown();
      return { undelivered: undelivered(), logsRateLimited: rateLimited };
    })();
    return shutdownPromise;
  }

  return { record, self, observeTotals, flush, shutdown };
}
