// One span per slow or failed connect (kind CLIENT, `tcp.connect`), through the SDK's TracerProvider with one span
// processor per export target (OTLP: the delivery queue, exporters.ts). Only built with traces on, and the trace SDK
// is loaded then (lazy.ts): a run without spans does not pay for it.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type HrTime, type SpanContext, type Tracer } from '@opentelemetry/api';
import { millisToHrTime } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { TracerProvider } from '@opentelemetry/sdk-trace';
import { failureReason, type ConnectEvent } from '../event.ts';
import { sdkTrace } from '../lazy.ts';
import { logAttributes } from './attributes.ts';
import { buildSpanProcessor, type DropReason, type FailureHandler } from './exporters.ts';
import { SCOPE, SPAN_NAME } from './schema.ts';
import type { DeliveryOptions, ExportTarget } from './types.ts';

/** error.type of a failure no tool explained (tcpstates, tcpconnlat): the semantic conventions' fallback value. */
export const UNKNOWN_ERROR_TYPE = '_OTHER';

/** The span's attributes: the log record's, and error.type on every failure (the conventions require it there). */
export function spanAttributes(event: ConnectEvent): Attributes {
  const attributes = logAttributes(event);
  if (event.failed && attributes['error.type'] === undefined) attributes['error.type'] = UNKNOWN_ERROR_TYPE;
  return attributes;
}

/**
 * Start and end of a connect's span: the SYN went out `latencyMs` before the outcome was seen. The start is the end
 * minus the latency in whole nanoseconds (epoch ms minus ms in floating point would be off by a fraction of a
 * microsecond, so the span's duration would not be the measured latency).
 */
export function spanTimes(event: ConnectEvent): { start: HrTime; end: HrTime } {
  const end = millisToHrTime(event.timeMs);
  const latencyNs = Math.round(event.latencyMs * 1e6);
  let seconds = end[0] - Math.floor(latencyNs / 1e9);
  let nanos = end[1] - (latencyNs % 1e9);
  if (nanos < 0) {
    nanos += 1e9;
    seconds -= 1;
  }
  return { start: [seconds, nanos], end };
}

export interface ConnectSpansOptions {
  exports: ExportTarget[];
  resource: Resource;
  delivery: DeliveryOptions | undefined;
  /** the batch processor's buffer (file and console targets) */
  batchQueueSize: number;
  onFailure: FailureHandler;
  onDropped: (count: number, reason: DropReason, detail: string) => void;
}

export class ConnectSpans {
  readonly #provider: TracerProvider;
  readonly #tracer: Tracer;

  constructor(opts: ConnectSpansOptions) {
    const { TracerProvider, AlwaysOnSampler } = sdkTrace();
    this.#provider = new TracerProvider({
      resource: opts.resource,
      // which connects get a span is decided before (slow or failed, token bucket): a sampler (OTEL_TRACES_SAMPLER)
      // would leave log records and exemplars pointing at spans that were never sent
      sampler: new AlwaysOnSampler(),
      spanProcessors: opts.exports.map((target) => buildSpanProcessor(target, opts.onFailure, opts.onDropped, opts.delivery, opts.batchQueueSize)),
    });
    this.#tracer = this.#provider.getTracer(SCOPE);
  }

  /** Emits the span of one connect (already ended) and returns its context, for the log record and the exemplar. */
  emit(event: ConnectEvent): SpanContext {
    const { start, end } = spanTimes(event);
    const span = this.#tracer.startSpan(SPAN_NAME, { kind: SpanKind.CLIENT, startTime: start, attributes: spanAttributes(event) }, ROOT_CONTEXT);
    if (event.failed) span.setStatus({ code: SpanStatusCode.ERROR, message: failureReason(event) ?? 'connect failed' });
    span.end(end);
    return span.spanContext();
  }

  forceFlush(): Promise<void> {
    return this.#provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#provider.shutdown();
  }
}

/** A context holding only this span context: a log record emitted with it carries the span's trace and span id. */
export function contextOf(span: SpanContext): Context {
  return trace.setSpanContext(ROOT_CONTEXT, span);
}
