// record + export: the connect-latency histogram, the failure counter, slow-connection logs and connlat's own
// counters, all through one MeterProvider / LoggerProvider with one reader / processor per export target.
import { SeverityNumber, ValueType, type Histogram } from '@opentelemetry/api';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { LoggerProvider } from '@opentelemetry/sdk-logs';
import { AggregationTemporality, MeterProvider } from '@opentelemetry/sdk-metrics';
import { isSlowConnect, type ConnectEvent } from '../event.ts';
import { seriesAttributes } from './aggregation/series.ts';
import { PreAggregator } from './aggregation/storage.ts';
import { durationPreAggregated, views } from './aggregation/view.ts';
import { logAttributes, MetricAttributeCache } from './attributes.ts';
import { buildLogProcessor, buildMetricExporter, type TrackedMetricExporter } from './exporters.ts';
import { ScopeMergingMetricReader } from './reader.ts';
import { ConnectSpans, contextOf } from './spans.ts';
import { slowConnectBody, TokenBucket } from './slow-log.ts';
import { CONNECT_DURATION_BUCKETS, INSTRUMENTS, SCOPE, SLOW_EVENT_NAME } from './schema.ts';
import { OwnCounters } from './self-metrics.ts';
import type { DeliveryReport, Telemetry, TelemetryOptions } from './types.ts';

export type { DeliveryReport, ExportTarget, SelfMetrics, Telemetry, TelemetryOptions } from './types.ts';

export { CONNECT_DURATION_BUCKETS, SLOW_EVENT_NAME } from './schema.ts';
export const CONNECT_DURATION = INSTRUMENTS.connectDuration.name;
export const CONNECT_FAILURES = INSTRUMENTS.connectFailures.name;
export const SYN_RETRANSMITS = INSTRUMENTS.synRetransmits.name;

/** Entries in the per-destination attribute cache (bounded; the cardinality limit bounds the series). */
const ATTRIBUTE_CACHE_ENTRIES = 4096;

function validate(opts: TelemetryOptions): void {
  if (!(opts.cardinalityLimit >= 2)) throw new Error(`telemetry: cardinalityLimit must be >= 2 (got ${opts.cardinalityLimit})`);
  if (!(opts.exportIntervalMs > 0)) throw new Error(`telemetry: exportIntervalMs must be > 0 (got ${opts.exportIntervalMs})`);
}

/**
 * tcp.connect.duration (explicit buckets), tcp.connect.failures and connlat.tcp.connect.syn_retransmits are aggregated
 * by our storages, not by the SDK:
 * its per-record attribute hashing was most of record()'s cost. Each reader gets its own producer of them.
 */
function connectStorages(opts: TelemetryOptions, temporality: AggregationTemporality): { duration: PreAggregator | undefined; failures: PreAggregator; retransmits: PreAggregator } {
  const aggregation = { cardinalityLimit: opts.cardinalityLimit, temporality };
  return {
    duration: durationPreAggregated(opts.histogram) ? new PreAggregator(0, { ...INSTRUMENTS.connectDuration, boundaries: CONNECT_DURATION_BUCKETS }, aggregation) : undefined,
    failures: new PreAggregator(1, INSTRUMENTS.connectFailures, aggregation),
    retransmits: new PreAggregator(2, INSTRUMENTS.synRetransmits, aggregation),
  };
}

/** One periodic reader per export target; our storages' metrics go into the SDK's `connlat` scope. The exporters
 * are returned too: they know what reached their target in the end. */
function createMeterProvider(
  opts: TelemetryOptions,
  temporality: AggregationTemporality,
  resource: Resource,
  storages: PreAggregator[],
  own: OwnCounters,
): { meterProvider: MeterProvider; exporters: TrackedMetricExporter[] } {
  const scope = { name: SCOPE, version: '' };
  const exporters = opts.exports.map((target) => buildMetricExporter(target, temporality, (error) => own.exportFailed('metrics', error), opts.delivery));
  const readers = exporters.map(
    (exporter) =>
      new ScopeMergingMetricReader({
        exporter,
        exportIntervalMillis: opts.exportIntervalMs,
        metricProducers: storages.map((s) => s.producer(temporality, scope)),
        metricOrder: [CONNECT_DURATION, CONNECT_FAILURES, SYN_RETRANSMITS],
      }),
  );
  return { meterProvider: new MeterProvider({ resource, readers, views: views(opts.histogram, opts.cardinalityLimit) }), exporters };
}

/** The token buckets bound the rate; a batch processor's buffer must hold a full burst or it drops uncounted. */
const batchQueueSizeOf = (opts: TelemetryOptions) => Math.max(2048, 2 * opts.slowLogBurst);

/** One log processor per export target (for OTLP: the delivery queue itself, see exporters.ts). */
function createLoggerProvider(opts: TelemetryOptions, resource: Resource, own: OwnCounters): LoggerProvider {
  const batchQueueSize = batchQueueSizeOf(opts);
  return new LoggerProvider({
    resource,
    processors: opts.exports.map((target) =>
      buildLogProcessor(target, (error) => own.exportFailed('logs', error), (n, reason, detail) => own.logsDropped(n, reason, detail), opts.delivery, batchQueueSize),
    ),
  });
}

export function createTelemetry(opts: TelemetryOptions): Telemetry {
  validate(opts);
  const temporality = opts.temporality === 'delta' ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE;
  const resource = resourceFromAttributes(opts.resource);
  const own = new OwnCounters(opts.logger);
  const { duration, failures, retransmits } = connectStorages(opts, temporality);
  const { meterProvider, exporters: metricExporters } = createMeterProvider(opts, temporality, resource, duration ? [duration, failures, retransmits] : [failures, retransmits], own);
  const loggerProvider = createLoggerProvider(opts, resource, own);
  const spans = opts.traces !== true
    ? undefined
    : new ConnectSpans({
        exports: opts.exports,
        resource,
        delivery: opts.delivery,
        batchQueueSize: batchQueueSizeOf(opts),
        onFailure: (error) => own.exportFailed('traces', error),
        onDropped: (n, reason, detail) => own.spansDropped(n, reason, detail),
      });
  const meter = meterProvider.getMeter(SCOPE);
  // an exponential histogram is aggregated by the SDK (view.ts)
  const sdkDuration: Histogram | undefined = duration
    ? undefined
    : meter.createHistogram(CONNECT_DURATION, { description: INSTRUMENTS.connectDuration.description, unit: INSTRUMENTS.connectDuration.unit, advice: { explicitBucketBoundaries: CONNECT_DURATION_BUCKETS } });
  own.bind(meter);

  const logger = loggerProvider.getLogger(SCOPE);
  const cache = new MetricAttributeCache(opts.metricAttributes, ATTRIBUTE_CACHE_ENTRIES);
  const byAddress = opts.metricAttributes.includes('server.address');
  // a slow connect's log record and span share one token (both or neither: the log record names its span); a fast
  // failure's span takes from a bucket of its own, so a storm of refusals cannot starve the slow-connect records
  const bucket = new TokenBucket(opts.slowLogRatePerSec, opts.slowLogBurst, opts.now);
  const failureBucket = new TokenBucket(opts.slowLogRatePerSec, opts.slowLogBurst, opts.now);
  const slowMs = opts.slowMs;

  function observeTotals(name: string, description: string, attribute: string, read: () => Readonly<Record<string, number>> | undefined): void {
    const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    meter.createObservableCounter(name, { description, unit: '1', valueType: ValueType.INT }).addCallback((result) => {
      for (const [key, value] of Object.entries(read() ?? {})) result.observe(value, { [attribute]: snake(key) });
    });
  }

  function record(event: ConnectEvent): void {
    const agg = event.failed ? failures : duration;
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
    const synRetransmits = event.synRetransmits;
    if (synRetransmits) {
      if (ref !== undefined) retransmits.record(ref, synRetransmits);
      else retransmits.recordOverflow(synRetransmits);
    }
    if (isSlowConnect(event, slowMs)) {
      if (!bucket.take()) {
        own.rateLimited();
        if (spans !== undefined) own.spanRateLimited();
        return;
      }
      const span = spans?.emit(event);
      // the histogram's exemplar points at the span (successes only: failures are not in the histogram)
      if (span !== undefined && agg === duration && ref !== undefined) duration?.offerExemplar(ref, { value, timeMs: event.timeMs, traceId: span.traceId, spanId: span.spanId });
      logger.emit({
        eventName: SLOW_EVENT_NAME,
        timestamp: event.timeMs,
        severityNumber: SeverityNumber.WARN,
        severityText: 'WARN',
        body: slowConnectBody(event),
        attributes: logAttributes(event),
        ...(span !== undefined ? { context: contextOf(span) } : {}),
      });
    } else if (spans !== undefined && event.failed) {
      if (failureBucket.take()) spans.emit(event);
      else own.spanRateLimited();
    }
  }

  async function flush(): Promise<void> {
    // Logs and spans first: a failed export of theirs is then counted in the metrics exported right after.
    await Promise.all([loggerProvider.forceFlush(), spans?.forceFlush()]);
    await meterProvider.forceFlush();
  }

  /** What did not reach the export targets, in one line; undefined when everything did. */
  function undelivered(): string | undefined {
    const parts: string[] = [];
    opts.exports.forEach((target, i) => {
      const lack = metricExporters[i]!.delivery.describe();
      if (lack) parts.push(`metrics: ${lack}${opts.exports.length > 1 ? ` to ${target.kind}` : ''}`);
    });
    const logs = own.undeliveredLogs();
    if (logs) parts.push(logs);
    const traces = own.undeliveredSpans();
    if (traces) parts.push(traces);
    return parts.length > 0 ? parts.join('; ') : undefined;
  }

  let shutdownPromise: Promise<DeliveryReport> | undefined;
  function shutdown(): Promise<DeliveryReport> {
    // Each provider's shutdown flushes first (logs and spans before metrics, as in flush()), then releases its exporters.
    shutdownPromise ??= (async () => {
      await Promise.all([loggerProvider.shutdown(), spans?.shutdown()]);
      await meterProvider.shutdown();
      return { undelivered: undelivered(), logsRateLimited: own.rateLimitedCount, spansRateLimited: own.spansRateLimitedCount };
    })();
    return shutdownPromise;
  }

  return { record, self: own.self, observeTotals, flush, shutdown };
}
