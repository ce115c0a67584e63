// Exporter construction, in one place: the SDK exporter for each target, wrapped for OTLP in retry (metrics) and a
// bounded queue with retry (logs), and in failure counting.
//
// `otlp` uses the SDK's gRPC exporters. They read OTEL_EXPORTER_OTLP_[METRICS_|LOGS_]ENDPOINT, _HEADERS, _TIMEOUT,
// _COMPRESSION, _INSECURE, _CERTIFICATE, _CLIENT_KEY and _CLIENT_CERTIFICATE themselves (signal-specific first).
// What we pass wins over the environment, so we pass only: `url` when the target names an endpoint, and gzip
// compression unless OTEL_EXPORTER_OTLP_[SIGNAL_]COMPRESSION says otherwise. With neither an endpoint nor the env, the
// SDK default http://localhost:4317 (insecure) is used. An endpoint without a scheme uses TLS unless
// OTEL_EXPORTER_OTLP_INSECURE=true; http:// is plaintext, https:// is TLS.
import { readFileSync } from 'node:fs';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import type { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import type { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import { BatchLogRecordProcessor, ConsoleLogRecordExporter, type LogRecordExporter, type LogRecordProcessor, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import {
  AggregationTemporality,
  ConsoleMetricExporter,
  type InstrumentType,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { otlpLogsGrpc, otlpTracesGrpc, sdkTrace } from '../lazy.ts';
import { MetricDelivery, QueuedExporter, QueuedLogExporter, QueuedLogRecordProcessor, QueuedSpanProcessor, RetryingMetricExporter, type DropReason } from './delivery.ts';
import { createExemplarOtlpMetricExporter } from './exemplars.ts';
import { OtlpJsonFileLogExporter, OtlpJsonFileMetricExporter, OtlpJsonFileSpanExporter } from './otlp-json.ts';
import { DEFAULT_RETRY } from '../backoff.ts';
import type { DeliveryOptions, ExportTarget } from './types.ts';

export type Signal = 'metrics' | 'logs' | 'traces';

function compressionFor(signal: Signal): 'gzip' | undefined {
  const specific = process.env[`OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_COMPRESSION`]?.trim();
  const general = process.env.OTEL_EXPORTER_OTLP_COMPRESSION?.trim();
  return specific || general ? undefined : 'gzip';
}

export function createMetricExporter(target: ExportTarget, temporality: AggregationTemporality): PushMetricExporter {
  switch (target.kind) {
    case 'otlp':
      // the SDK's OTLP gRPC metric exporter, with a serializer that puts our histogram exemplars on the wire
      return createExemplarOtlpMetricExporter({
        ...(target.endpoint !== undefined ? { url: target.endpoint } : {}),
        compression: compressionFor('metrics'),
        temporalityPreference: temporality,
      } as ConstructorParameters<typeof OTLPMetricExporter>[0]);
    case 'otlp-json':
      return new OtlpJsonFileMetricExporter(target.path, temporality);
    case 'console':
      return new ConsoleMetricExporter({ temporalitySelector: () => temporality });
  }
}

export function createLogExporter(target: ExportTarget): LogRecordExporter {
  switch (target.kind) {
    case 'otlp':
      return new (otlpLogsGrpc().OTLPLogExporter)({
        ...(target.endpoint !== undefined ? { url: target.endpoint } : {}),
        compression: compressionFor('logs'),
      } as ConstructorParameters<typeof OTLPLogExporter>[0]);
    case 'otlp-json':
      return new OtlpJsonFileLogExporter(target.path);
    case 'console':
      return new ConsoleLogRecordExporter();
  }
}

export function createSpanExporter(target: ExportTarget): SpanExporter {
  switch (target.kind) {
    case 'otlp':
      return new (otlpTracesGrpc().OTLPTraceExporter)({
        ...(target.endpoint !== undefined ? { url: target.endpoint } : {}),
        compression: compressionFor('traces'),
      } as ConstructorParameters<typeof OTLPTraceExporter>[0]);
    case 'otlp-json':
      return new OtlpJsonFileSpanExporter(target.path);
    case 'console':
      return new (sdkTrace().ConsoleSpanExporter)();
  }
}

export type FailureHandler = (error: Error | undefined) => void;

function counting(onFailure: FailureHandler, resultCallback: (result: ExportResult) => void): (result: ExportResult) => void {
  return (result) => {
    if (result.code !== ExportResultCode.SUCCESS) onFailure(result.error);
    resultCallback(result);
  };
}

/** A metric exporter as the reader uses it, with what reached its target in the end (read after shutdown). */
export type TrackedMetricExporter = PushMetricExporter & { readonly delivery: MetricDelivery };

/** Calls onFailure once per export whose result is not SUCCESS (and tracks delivery); everything else passes through. */
export function countMetricExportFailures(inner: PushMetricExporter, onFailure: FailureHandler, temporality: AggregationTemporality): TrackedMetricExporter {
  const delivery = new MetricDelivery(temporality);
  const track = (result: ExportResult) => (result.code === ExportResultCode.SUCCESS ? delivery.delivered() : delivery.lost(result.error));
  const wrapped: TrackedMetricExporter = {
    delivery,
    export: (metrics: ResourceMetrics, cb: (result: ExportResult) => void) =>
      inner.export(metrics, counting(onFailure, (result) => {
        track(result);
        cb(result);
      })),
    forceFlush: () => inner.forceFlush(),
    shutdown: () => inner.shutdown(),
  };
  if (inner.selectAggregationTemporality) {
    const select = inner.selectAggregationTemporality.bind(inner);
    wrapped.selectAggregationTemporality = (t: InstrumentType) => select(t);
  }
  if (inner.selectAggregation) {
    const select = inner.selectAggregation.bind(inner);
    wrapped.selectAggregation = (t: InstrumentType) => select(t);
  }
  return wrapped;
}

/** Calls onFailure once per failed export, and onLost with the records of it (a file or console export has no retry). */
export function countLogExportFailures(inner: LogRecordExporter, onFailure: FailureHandler, onLost?: (count: number, error: Error | undefined) => void): LogRecordExporter {
  return {
    export: (logs: ReadableLogRecord[], cb: (result: ExportResult) => void) =>
      inner.export(logs, counting(onFailure, (result) => {
        if (result.code !== ExportResultCode.SUCCESS) onLost?.(logs.length, result.error);
        cb(result);
      })),
    forceFlush: () => inner.forceFlush(),
    shutdown: () => inner.shutdown(),
  };
}

/**
 * As countLogExportFailures, for spans; a failed batch is counted as lost here and answered SUCCESS to the SDK's
 * BatchSpanProcessor, whose forceFlush and shutdown otherwise reject at the first failed batch: the spans still
 * buffered would be neither sent nor counted, and the file never closed.
 */
export function countSpanExportFailures(inner: SpanExporter, onFailure: FailureHandler, onLost: (count: number, error: Error | undefined) => void): SpanExporter {
  return {
    export: (spans: ReadableSpan[], cb: (result: ExportResult) => void) =>
      inner.export(spans, counting(onFailure, (result) => {
        if (result.code !== ExportResultCode.SUCCESS) onLost(spans.length, result.error);
        cb({ code: ExportResultCode.SUCCESS });
      })),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
    shutdown: () => inner.shutdown(),
  };
}

/**
 * The SDK reads OTEL_EXPORTER_OTLP_[METRICS_|LOGS_]CERTIFICATE, _CLIENT_KEY and _CLIENT_CERTIFICATE itself, and when
 * a file cannot be read it goes on silently without it (system CAs, no client certificate): every export then fails
 * with a TLS error that names no file. Checked at startup instead, one line per problem.
 */
export function otlpTlsEnvProblems(env: NodeJS.ProcessEnv = process.env): string[] {
  const problems: string[] = [];
  for (const signal of ['METRICS', 'LOGS', 'TRACES']) {
    const pick = (what: string) => {
      const specific = `OTEL_EXPORTER_OTLP_${signal}_${what}`;
      if (env[specific]?.trim()) return { name: specific, path: env[specific]!.trim() };
      const general = `OTEL_EXPORTER_OTLP_${what}`;
      return env[general]?.trim() ? { name: general, path: env[general]!.trim() } : undefined;
    };
    const files = { CERTIFICATE: pick('CERTIFICATE'), CLIENT_KEY: pick('CLIENT_KEY'), CLIENT_CERTIFICATE: pick('CLIENT_CERTIFICATE') };
    for (const file of Object.values(files)) {
      if (!file) continue;
      try {
        readFileSync(file.path);
      } catch (err) {
        problems.push(`${file.name}=${file.path} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): OTLP ${signal.toLowerCase()} exports would go on without it and fail the TLS handshake`);
      }
    }
    if ((files.CLIENT_KEY === undefined) !== (files.CLIENT_CERTIFICATE === undefined)) {
      problems.push(`OTLP ${signal.toLowerCase()}: a client key and a client certificate must be set together (OTEL_EXPORTER_OTLP_CLIENT_KEY and OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE); without both no client certificate is sent`);
    }
  }
  return [...new Set(problems)];
}

export const DEFAULT_LOG_QUEUE_SIZE = 8192;
export const DEFAULT_SHUTDOWN_BUDGET_MS = 8000;

function deadlineOf(delivery: DeliveryOptions | undefined, signal: Signal): () => number {
  const deadline = delivery?.deadline;
  return deadline ? () => deadline(signal) : () => Date.now() + DEFAULT_SHUTDOWN_BUDGET_MS;
}

/**
 * The metric exporter for a target as the reader uses it: OTLP retries retryable failures in the background (see
 * delivery.ts) and counts every failed attempt; the file and console exporters count failures only.
 */
export function buildMetricExporter(
  target: ExportTarget,
  temporality: AggregationTemporality,
  onFailure: FailureHandler,
  delivery?: DeliveryOptions,
): TrackedMetricExporter {
  const inner = createMetricExporter(target, temporality);
  if (target.kind !== 'otlp') return countMetricExportFailures(inner, onFailure, temporality);
  return new RetryingMetricExporter(
    inner,
    {
      retry: delivery?.retry ?? DEFAULT_RETRY,
      temporality,
      deadline: deadlineOf(delivery, 'metrics'),
      onAttemptFailure: onFailure,
      ...(delivery?.onGiveUp ? { onGiveUp: delivery.onGiveUp } : {}),
    },
    () => createMetricExporter(target, temporality),
  );
}

/** The SDK batch processor's default delay before a batch smaller than 512 records goes out. */
const LOG_LINGER_MS = 1000;

/**
 * The log processor for a target: for OTLP, records go straight into the delivery queue (bounded, retrying, batching
 * like the SDK's batch processor; what it gives up goes to onDropped with a reason); the file and console exporters
 * sit behind the SDK's batch processor and count failures only.
 */
export function buildLogProcessor(
  target: ExportTarget,
  onFailure: FailureHandler,
  onDropped: (count: number, reason: DropReason, detail: string) => void,
  delivery: DeliveryOptions | undefined,
  batchQueueSize: number,
): LogRecordProcessor {
  const inner = createLogExporter(target);
  if (target.kind !== 'otlp') {
    const exporter = countLogExportFailures(inner, onFailure, (n, error) => onDropped(n, 'export_failed', error?.message.split('\n')[0] ?? 'export failed'));
    return new BatchLogRecordProcessor({ exporter, maxQueueSize: batchQueueSize });
  }
  const queue = new QueuedLogExporter(
    inner,
    {
      maxQueueSize: delivery?.logQueueSize ?? DEFAULT_LOG_QUEUE_SIZE,
      lingerMs: LOG_LINGER_MS,
      retry: delivery?.retry ?? DEFAULT_RETRY,
      deadline: deadlineOf(delivery, 'logs'),
      onAttemptFailure: onFailure,
      onDropped,
    },
    () => createLogExporter(target),
  );
  return new QueuedLogRecordProcessor(queue);
}

export type { DropReason };
export { AggregationTemporality };

/**
 * The span processor for a target, as buildLogProcessor: for OTLP each ended span goes into its own delivery queue
 * (same bound as the log queue, same retry, channel rebuild and shutdown deadline); file and console exporters sit
 * behind the SDK's batch processor and count failures.
 */
export function buildSpanProcessor(
  target: ExportTarget,
  onFailure: FailureHandler,
  onDropped: (count: number, reason: DropReason, detail: string) => void,
  delivery: DeliveryOptions | undefined,
  batchQueueSize: number,
): SpanProcessor {
  const inner = createSpanExporter(target);
  if (target.kind !== 'otlp') {
    const exporter = countSpanExportFailures(inner, onFailure, (n, error) => onDropped(n, 'export_failed', error?.message.split('\n')[0] ?? 'export failed'));
    return new (sdkTrace().BatchSpanProcessor)({ exporter, maxQueueSize: batchQueueSize });
  }
  const queue = new QueuedExporter<ReadableSpan>(
    inner,
    {
      maxQueueSize: delivery?.logQueueSize ?? DEFAULT_LOG_QUEUE_SIZE,
      lingerMs: LOG_LINGER_MS,
      retry: delivery?.retry ?? DEFAULT_RETRY,
      deadline: deadlineOf(delivery, 'traces'),
      onAttemptFailure: onFailure,
      onDropped,
    },
    () => createSpanExporter(target),
    'span',
  );
  return new QueuedSpanProcessor(queue);
}
