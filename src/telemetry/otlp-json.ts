// OTLP/JSON file exporters: one ExportMetricsServiceRequest / ExportLogsServiceRequest / ExportTraceServiceRequest per line, in the encoding
// the OpenTelemetry Collector's file exporter writes (the OTLP/JSON rules: lowerCamelCase names, 64-bit integers as
// decimal strings, enums as integers, trace/span ids as hex, fields holding their default value left out).
// @opentelemetry/otlp-transformer builds the request tree; its JSON differs in those details, so it is normalized.
import { closeSync, fstatSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { otlpTransformer as transformer } from '../lazy.ts';
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { histogramExemplars } from './exemplars.ts';
import type { AggregationTemporality, InstrumentType, PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';

/** int64/uint64/fixed64 fields in the metrics and logs protos: strings in OTLP/JSON. */
const INT64_FIELDS = new Set([
  'intValue',
  'asInt',
  'count',
  'bucketCounts',
  'zeroCount',
  'timeUnixNano',
  'startTimeUnixNano',
  'endTimeUnixNano',
  'observedTimeUnixNano',
]);

/** Fields with presence (oneof members, proto3 `optional`): written even when they hold a zero value. */
const PRESENCE_FIELDS = new Set([
  'stringValue',
  'boolValue',
  'intValue',
  'doubleValue',
  'bytesValue',
  'asInt',
  'asDouble',
  'sum',
  'min',
  'max',
]);

function toInt64String(value: unknown): string {
  return typeof value === 'bigint' ? value.toString() : String(value);
}

const DATA_POINT = ['attributes', 'startTimeUnixNano', 'timeUnixNano', 'count', 'sum', 'asDouble', 'asInt', 'scale', 'zeroCount', 'positive', 'negative', 'bucketCounts', 'explicitBounds', 'exemplars', 'flags', 'min', 'max', 'zeroThreshold'];
const AGGREGATION = ['dataPoints', 'aggregationTemporality', 'isMonotonic'];

/**
 * Field order per message, as the Collector writes it (proto declaration order), keyed by the field that holds the
 * message. Number, histogram and exponential-histogram points share one list (they agree except for exemplars vs
 * flags, which connlat never sets).
 */
const FIELD_ORDER: Record<string, string[]> = {
  '': ['resourceMetrics', 'resourceLogs', 'resourceSpans'],
  resourceMetrics: ['resource', 'scopeMetrics', 'schemaUrl'],
  resourceLogs: ['resource', 'scopeLogs', 'schemaUrl'],
  resourceSpans: ['resource', 'scopeSpans', 'schemaUrl'],
  resource: ['attributes', 'droppedAttributesCount', 'entityRefs'],
  scopeMetrics: ['scope', 'metrics', 'schemaUrl'],
  scopeLogs: ['scope', 'logRecords', 'schemaUrl'],
  scopeSpans: ['scope', 'spans', 'schemaUrl'],
  spans: ['traceId', 'spanId', 'traceState', 'parentSpanId', 'flags', 'name', 'kind', 'startTimeUnixNano', 'endTimeUnixNano', 'attributes', 'droppedAttributesCount', 'events', 'droppedEventsCount', 'links', 'droppedLinksCount', 'status'],
  status: ['message', 'code'],
  exemplars: ['filteredAttributes', 'timeUnixNano', 'asDouble', 'asInt', 'traceId', 'spanId'], // as the Collector writes them (not declaration order)
  scope: ['name', 'version', 'attributes', 'droppedAttributesCount'],
  metrics: ['name', 'description', 'unit', 'gauge', 'sum', 'histogram', 'exponentialHistogram', 'summary', 'metadata'],
  gauge: AGGREGATION,
  sum: AGGREGATION,
  histogram: AGGREGATION,
  exponentialHistogram: AGGREGATION,
  dataPoints: DATA_POINT,
  positive: ['offset', 'bucketCounts'],
  negative: ['offset', 'bucketCounts'],
  attributes: ['key', 'value'],
  logRecords: ['timeUnixNano', 'observedTimeUnixNano', 'severityNumber', 'severityText', 'body', 'attributes', 'droppedAttributesCount', 'flags', 'traceId', 'spanId', 'eventName'],
};

function ordered(entries: [string, unknown][], parentKey: string): [string, unknown][] {
  const order = FIELD_ORDER[parentKey];
  if (order === undefined) return entries;
  const rank = (k: string) => {
    const i = order.indexOf(k);
    return i === -1 ? order.length : i;
  };
  return entries.sort((a, b) => rank(a[0]) - rank(b[0])); // stable: unknown fields keep their order, at the end
}

/** Rewrite otlp-transformer's JSON tree into the Collector's OTLP/JSON form (values, omissions and field order). */
export function normalizeOtlpJson(node: unknown, parentKey = ''): unknown {
  if (Array.isArray(node)) return node.map((item) => normalizeOtlpJson(item, parentKey));
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of ordered(Object.entries(node as Record<string, unknown>), parentKey)) {
    if (value === undefined || value === null) continue;
    const keep = PRESENCE_FIELDS.has(key);
    if (INT64_FIELDS.has(key)) {
      if (Array.isArray(value)) {
        if (value.length > 0) out[key] = value.map(toInt64String);
      } else if (keep || (value !== 0 && value !== '0')) {
        out[key] = toInt64String(value);
      }
      continue;
    }
    if (!keep) {
      if (value === 0 || value === false || value === '') continue;
      if (Array.isArray(value) && value.length === 0) continue;
    }
    out[key] = normalizeOtlpJson(value, key);
  }
  return out;
}

/** Serialize one request with otlp-transformer and normalize it to one OTLP/JSON line. */
export function metricsRequestLine(metrics: ResourceMetrics): string {
  const bytes = transformer().JsonMetricsSerializer.serializeRequest(metrics);
  if (bytes === undefined) throw new Error('otlp-json: metrics serializer returned nothing');
  const tree = JSON.parse(new TextDecoder().decode(bytes));
  addJsonExemplars(tree, metrics);
  return JSON.stringify(normalizeOtlpJson(tree)) + '\n';
}

/** The exemplars our aggregation attached (the serializer writes none, as in exemplars.ts), in OTLP/JSON. */
function addJsonExemplars(tree: any, metrics: ResourceMetrics): void {
  const perPoint = histogramExemplars(metrics);
  if (!perPoint.some((e) => e !== undefined && e.length > 0)) return;
  let i = 0;
  for (const rm of tree.resourceMetrics ?? []) {
    for (const sm of rm.scopeMetrics ?? []) {
      for (const m of sm.metrics ?? []) {
        for (const point of m.histogram?.dataPoints ?? []) {
          const own = perPoint[i++];
          if (own?.length) {
            point.exemplars = own.map((e) => ({ timeUnixNano: (BigInt(Math.round(e.timeMs * 1000)) * 1000n).toString(), asDouble: e.value, spanId: e.spanId, traceId: e.traceId }));
          }
        }
      }
    }
  }
}

export function spansRequestLine(spans: ReadableSpan[]): string {
  const bytes = transformer().JsonTraceSerializer.serializeRequest(spans);
  if (bytes === undefined) throw new Error('otlp-json: trace serializer returned nothing');
  return JSON.stringify(normalizeOtlpJson(JSON.parse(new TextDecoder().decode(bytes)))) + '\n';
}

export function logsRequestLine(logs: ReadableLogRecord[]): string {
  const bytes = transformer().JsonLogsSerializer.serializeRequest(logs);
  if (bytes === undefined) throw new Error('otlp-json: logs serializer returned nothing');
  return JSON.stringify(normalizeOtlpJson(JSON.parse(new TextDecoder().decode(bytes)))) + '\n';
}

/**
 * Appends whole lines to a file with one synchronous write each (O_APPEND), so a flush() followed by process exit
 * leaves only complete lines, and a metrics and a logs writer can share one file. A write that fails part way (ENOSPC,
 * EIO) is cut back off, so a reader can parse every line of the file after any failure.
 */
class LineAppender {
  readonly #path: string;
  #fd: number | undefined;

  constructor(path: string) {
    this.#path = path;
    try {
      this.#fd = openSync(path, 'a');
    } catch (err) {
      throw new Error(`otlp-json export: cannot open ${path} for appending: ${(err as Error).message}`);
    }
  }

  append(line: string): void {
    if (this.#fd === undefined) throw new Error(`otlp-json: ${this.#path} is closed`);
    const buf = Buffer.from(line, 'utf8');
    const before = fstatSync(this.#fd).size;
    let off = 0;
    try {
      while (off < buf.length) off += writeSync(this.#fd, buf, off, buf.length - off);
    } catch (err) {
      if (off > 0) {
        try {
          ftruncateSync(this.#fd, before); // the writers are synchronous: nothing else was appended since `before`
        } catch {
          // not a regular file (a pipe, /dev/full): nothing to cut back
        }
      }
      throw err;
    }
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

function run(write: () => void, resultCallback: (result: ExportResult) => void): void {
  try {
    write();
    resultCallback({ code: ExportResultCode.SUCCESS });
  } catch (err) {
    resultCallback({ code: ExportResultCode.FAILED, error: err instanceof Error ? err : new Error(String(err)) });
  }
}

export class OtlpJsonFileMetricExporter implements PushMetricExporter {
  readonly #out: LineAppender;
  readonly #temporality: AggregationTemporality;

  constructor(path: string, temporality: AggregationTemporality) {
    this.#out = new LineAppender(path);
    this.#temporality = temporality;
  }

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    run(() => this.#out.append(metricsRequestLine(metrics)), resultCallback);
  }

  selectAggregationTemporality(_instrumentType: InstrumentType): AggregationTemporality {
    return this.#temporality;
  }

  async forceFlush(): Promise<void> {}

  async shutdown(): Promise<void> {
    this.#out.close();
  }
}

/** Log records or spans: one request line per export. */
class OtlpJsonFileRecordExporter<T> {
  readonly #out: LineAppender;
  readonly #line: (records: T[]) => string;

  constructor(path: string, line: (records: T[]) => string) {
    this.#out = new LineAppender(path);
    this.#line = line;
  }

  export(records: T[], resultCallback: (result: ExportResult) => void): void {
    run(() => this.#out.append(this.#line(records)), resultCallback);
  }

  async forceFlush(): Promise<void> {}

  async shutdown(): Promise<void> {
    this.#out.close();
  }
}

export class OtlpJsonFileLogExporter extends OtlpJsonFileRecordExporter<ReadableLogRecord> implements LogRecordExporter {
  constructor(path: string) {
    super(path, logsRequestLine);
  }
}

export class OtlpJsonFileSpanExporter extends OtlpJsonFileRecordExporter<ReadableSpan> implements SpanExporter {
  constructor(path: string) {
    super(path, spansRequestLine);
  }
}
