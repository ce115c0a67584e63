// Exemplars on the wire. @opentelemetry/otlp-transformer 0.301's protobuf serializer writes no exemplars (the JS SDK
// has none; its HistogramDataPoint writer skips field 8), so the OTLP gRPC metric exporter here is the SDK's own,
// built from the same parts (OTLPMetricExporterBase + createOtlpGrpcExportDelegate), with a serializer that takes
// the SDK's bytes and adds to each histogram data point the exemplars our aggregation attached to it (aggregator.ts).
// The proto walk copies every other byte unchanged; an export without exemplars is the SDK's bytes as they are.
import type { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { DataPointType, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { otlpGrpcBase, otlpMetricsBase, otlpTransformer } from '../lazy.ts';
import type { WithExemplars } from './aggregation/aggregator.ts';
import type { Exemplar } from './aggregation/exemplars.ts';

export type { Exemplar };

const LEN = 2;

function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let mul = 1;
  for (;;) {
    if (pos >= buf.length) throw new Error('exemplars: truncated varint');
    const b = buf[pos++]!;
    value += (b & 0x7f) * mul;
    if (b < 0x80) return [value, pos];
    mul *= 128;
  }
}

function varint(value: number): number[] {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}

/** The end of the field whose value starts at `pos` (after its tag). */
function skip(buf: Uint8Array, wireType: number, pos: number): number {
  switch (wireType) {
    case 0:
      return readVarint(buf, pos)[1];
    case 1:
      return pos + 8;
    case 2: {
      const [len, start] = readVarint(buf, pos);
      return start + len;
    }
    case 5:
      return pos + 4;
    default:
      throw new Error(`exemplars: unexpected wire type ${wireType}`);
  }
}

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** One Exemplar message: time_unix_nano (2, fixed64), as_double (3), span_id (4), trace_id (5). */
export function encodeExemplar(e: Exemplar): Uint8Array {
  const span = hexBytes(e.spanId);
  const trace = hexBytes(e.traceId);
  const out = new Uint8Array(9 + 9 + 2 + span.length + 2 + trace.length);
  const view = new DataView(out.buffer);
  out[0] = (2 << 3) | 1;
  view.setBigUint64(1, BigInt(Math.round(e.timeMs * 1000)) * 1000n, true);
  out[9] = (3 << 3) | 1;
  view.setFloat64(10, e.value, true);
  out[18] = (4 << 3) | LEN;
  out[19] = span.length;
  out.set(span, 20);
  out[20 + span.length] = (5 << 3) | LEN;
  out[21 + span.length] = trace.length;
  out.set(trace, 22 + span.length);
  return out;
}

/** The exemplars of every histogram data point, in the order the serializer writes the points. */
export function histogramExemplars(metrics: ResourceMetrics): Array<Exemplar[] | undefined> {
  const out: Array<Exemplar[] | undefined> = [];
  for (const scope of metrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.dataPointType !== DataPointType.HISTOGRAM) continue;
      for (const point of metric.dataPoints) out.push((point as WithExemplars).exemplars);
    }
  }
  return out;
}

/** Path from ExportMetricsServiceRequest to HistogramDataPoint: resource_metrics 1, scope_metrics 2, metrics 2,
 * histogram 9, data_points 1. */
const PATH = [1, 2, 2, 9, 1];

/**
 * The request `bytes` (one ResourceMetrics, as serializeRequest writes it) with each histogram data point's
 * exemplars appended to it (HistogramDataPoint field 8), the enclosing lengths rewritten.
 */
export function addExemplars(bytes: Uint8Array, metrics: ResourceMetrics): Uint8Array {
  const perPoint = histogramExemplars(metrics);
  if (!perPoint.some((e) => e !== undefined && e.length > 0)) return bytes;
  let point = 0;
  // chunks: unchanged runs of the input (subarrays, not copies) and the new bytes between them
  const rewrite = (start: number, end: number, depth: number): Uint8Array[] => {
    if (depth === PATH.length) {
      const chunks = [bytes.subarray(start, end)];
      for (const e of perPoint[point++] ?? []) {
        const enc = encodeExemplar(e);
        chunks.push(Uint8Array.from([(8 << 3) | LEN, ...varint(enc.length)]), enc);
      }
      return chunks;
    }
    const chunks: Uint8Array[] = [];
    let pos = start;
    let copyFrom = start;
    while (pos < end) {
      const [tag, valueStart] = readVarint(bytes, pos);
      const wireType = tag & 7;
      const fieldEnd = skip(bytes, wireType, valueStart);
      if (wireType === LEN && Math.floor(tag / 8) === PATH[depth]) {
        if (copyFrom < pos) chunks.push(bytes.subarray(copyFrom, pos));
        const [len, bodyStart] = readVarint(bytes, valueStart);
        const body = rewrite(bodyStart, bodyStart + len, depth + 1);
        chunks.push(Uint8Array.from([...varint(tag), ...varint(body.reduce((n, c) => n + c.length, 0))]), ...body);
        copyFrom = fieldEnd;
      }
      pos = fieldEnd;
    }
    if (copyFrom < end) chunks.push(bytes.subarray(copyFrom, end));
    return chunks;
  };
  const chunks = rewrite(0, bytes.length, 0);
  if (point !== perPoint.length) throw new Error(`exemplars: ${perPoint.length} histogram points expected, ${point} found in the serialized request`);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * The SDK's OTLP gRPC metric exporter (same options, env variables, channel and self-observability), whose
 * serializer adds our exemplars to the protobuf the SDK writes.
 */
export function createExemplarOtlpMetricExporter(config: ConstructorParameters<typeof OTLPMetricExporter>[0]): PushMetricExporter {
  const { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate } = otlpGrpcBase();
  const { ProtobufMetricsSerializer, MetricsExporterMetricsHelper } = otlpTransformer();
  const serializer: typeof ProtobufMetricsSerializer = {
    serializeRequest: (metrics) => {
      const bytes = ProtobufMetricsSerializer.serializeRequest(metrics);
      return bytes === undefined ? undefined : addExemplars(bytes, metrics as unknown as ResourceMetrics);
    },
    deserializeResponse: (data) => ProtobufMetricsSerializer.deserializeResponse(data),
  };
  const delegate = createOtlpGrpcExportDelegate(
    convertLegacyOtlpGrpcOptions(config ?? {}, 'METRICS'),
    serializer,
    'otlp_grpc_metric_exporter',
    MetricsExporterMetricsHelper,
    undefined,
    'MetricsExportService',
    '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
  );
  return new (otlpMetricsBase().OTLPMetricExporterBase)(delegate, config) as unknown as PushMetricExporter;
}
