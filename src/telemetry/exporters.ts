// Exporter construction, in one place so a later stage (retry + bounded queue around OTLP) can wrap it.
//
// `otlp` uses the SDK's gRPC exporters. They read OTEL_EXPORTER_OTLP_[METRICS_|LOGS_]ENDPOINT, _HEADERS, _TIMEOUT,
// _COMPRESSION, _INSECURE, _CERTIFICATE, _CLIENT_KEY and _CLIENT_CERTIFICATE themselves (signal-specific first).
// What we pass wins over the environment, so we pass only: `url` when the target names an endpoint, and gzip
// compression unless OTEL_EXPORTER_OTLP_[SIGNAL_]COMPRESSION says otherwise. With neither an endpoint nor the env, the
// SDK default http://localhost:4317 (insecure) is used. An endpoint without a scheme uses TLS unless
// OTEL_EXPORTER_OTLP_INSECURE=true; http:// is plaintext, https:// is TLS.
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { ConsoleLogRecordExporter, type LogRecordExporter, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import {
  AggregationTemporality,
  ConsoleMetricExporter,
  type InstrumentType,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { OtlpJsonFileLogExporter, OtlpJsonFileMetricExporter } from './otlp-json.ts';
import type { ExportTarget } from './types.ts';

export type Signal = 'metrics' | 'logs';

function compressionFor(signal: Signal): 'gzip' | undefined {
  const specific = process.env[`OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_COMPRESSION`]?.trim();
  const general = process.env.OTEL_EXPORTER_OTLP_COMPRESSION?.trim();
  return specific || general ? undefined : 'gzip';
}

export function createMetricExporter(target: ExportTarget, temporality: AggregationTemporality): PushMetricExporter {
  switch (target.kind) {
    case 'otlp':
      return new OTLPMetricExporter({
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
      return new OTLPLogExporter({
        ...(target.endpoint !== undefined ? { url: target.endpoint } : {}),
        compression: compressionFor('logs'),
      } as ConstructorParameters<typeof OTLPLogExporter>[0]);
    case 'otlp-json':
      return new OtlpJsonFileLogExporter(target.path);
    case 'console':
      return new ConsoleLogRecordExporter();
  }
}

export type FailureHandler = (error: Error | undefined) => void;

function counting(onFailure: FailureHandler, resultCallback: (result: ExportResult) => void): (result: ExportResult) => void {
  return (result) => {
    if (result.code !== ExportResultCode.SUCCESS) onFailure(result.error);
    resultCallback(result);
  };
}

/** Calls onFailure once per export whose result is not SUCCESS; everything else passes through. */
export function countMetricExportFailures(inner: PushMetricExporter, onFailure: FailureHandler): PushMetricExporter {
  const wrapped: PushMetricExporter = {
    export: (metrics: ResourceMetrics, cb: (result: ExportResult) => void) => inner.export(metrics, counting(onFailure, cb)),
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

export function countLogExportFailures(inner: LogRecordExporter, onFailure: FailureHandler): LogRecordExporter {
  return {
    export: (logs: ReadableLogRecord[], cb: (result: ExportResult) => void) => inner.export(logs, counting(onFailure, cb)),
    forceFlush: () => inner.forceFlush(),
    shutdown: () => inner.shutdown(),
  };
}

export { AggregationTemporality };
