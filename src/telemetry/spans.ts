// One span per slow or failed connect (kind CLIENT, `tcp.connect`), through the SDK's TracerProvider with one span
// processor per export target (OTLP: the delivery queue, exporters.ts). Only with traces on, and the trace SDK is
// loaded when the first span is made (lazy.ts): a run without a slow or failed connect does not pay for it.
import { INVALID_SPAN_CONTEXT, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type HrTime, type SpanContext, type Tracer } from '@opentelemetry/api';
import { millisToHrTime } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { SpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
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

/**
 * The spans of a run. The span processors and exporters are made at once (a bad endpoint is an error at start, not
 * at the first slow connect); the TracerProvider, and with it the trace SDK (which the OTLP exporter does not load),
 * when the first span is made: a run without a slow or failed connect does not pay for them. The span is exported
 * with the next batch all the same; flush and shutdown of spans that never made a provider flush and shut down the
 * processors.
 */
export class ConnectSpans {
  readonly #resource: Resource;
  readonly #processors: SpanProcessor[];
  #open: { provider: TracerProvider; tracer: Tracer } | undefined;
  #closed = false;

  constructor(opts: ConnectSpansOptions) {
    this.#resource = opts.resource;
    this.#processors = opts.exports.map((target) => buildSpanProcessor(target, opts.onFailure, opts.onDropped, opts.delivery, opts.batchQueueSize));
  }

  #tracer(): Tracer | undefined {
    if (this.#open === undefined && !this.#closed) {
      const { TracerProvider, AlwaysOnSampler } = sdkTrace();
      const provider = new TracerProvider({
        resource: this.#resource,
        // which connects get a span is decided before (slow or failed, token bucket): a sampler (OTEL_TRACES_SAMPLER)
        // would leave log records and exemplars pointing at spans that were never sent
        sampler: new AlwaysOnSampler(),
        spanProcessors: this.#processors,
      });
      this.#open = { provider, tracer: provider.getTracer(SCOPE) };
    }
    return this.#open?.tracer;
  }

  /**
   * Emits the span of one connect (already ended) and returns its context, for the log record and the exemplar.
   * After shutdown of spans that never made a provider: an invalid context (no trace ids on the log record).
   */
  emit(event: ConnectEvent): SpanContext {
    const tracer = this.#tracer();
    if (tracer === undefined) return INVALID_SPAN_CONTEXT;
    const { start, end } = spanTimes(event);
    const span = tracer.startSpan(SPAN_NAME, { kind: SpanKind.CLIENT, startTime: start, attributes: spanAttributes(event) }, ROOT_CONTEXT);
    if (event.failed) span.setStatus({ code: SpanStatusCode.ERROR, message: failureReason(event) ?? 'connect failed' });
    span.end(end);
    return span.spanContext();
  }

  async forceFlush(): Promise<void> {
    if (this.#open !== undefined) await this.#open.provider.forceFlush();
    else await Promise.all(this.#processors.map((p) => p.forceFlush()));
  }

  async shutdown(): Promise<void> {
    const open = this.#open;
    this.#closed = true;
    if (open !== undefined) await open.provider.shutdown();
    else await Promise.all(this.#processors.map((p) => p.shutdown()));
  }
}

/** A context holding only this span context: a log record emitted with it carries the span's trace and span id. */
export function contextOf(span: SpanContext): Context {
  return trace.setSpanContext(ROOT_CONTEXT, span);
}
