// Retry for OTLP exports. The SDK's gRPC exporters make one attempt per export and hand back the gRPC error; this
// module decides what is worth retrying (the OTLP spec's retryable codes), how long to wait (exponential backoff with
// jitter, so a fleet of agents does not reconnect to a restarted gateway in lockstep), and keeps metrics flowing
// after an outage: a failed metric export is re-sent in the background until it succeeds or a newer one supersedes it
// (cumulative temporality: the newer export holds every count of the older one).
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import {
  AggregationTemporality,
  type InstrumentType,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { retryDelay, Sleeper, type RetryOptions } from '../backoff.ts';

/** gRPC status codes the OTLP spec lists as retryable (CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED,
 * OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS). UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT ... are final. */
export const RETRYABLE_GRPC_CODES: ReadonlySet<number> = new Set([1, 4, 8, 10, 11, 14, 15]);

/** Names of the gRPC status codes, for messages and the `reason` of dropped records. */
const GRPC_CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED',
  'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

export function grpcCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' && Number.isInteger(code) ? code : undefined;
}

export function grpcCodeName(code: number | undefined): string {
  return code === undefined ? 'no status' : (GRPC_CODE_NAMES[code] ?? `code ${code}`);
}

/**
 * True when another attempt may succeed: a retryable gRPC status, or an error without a gRPC status (the exporter's
 * own failures before a call: "Concurrent export limit reached", a channel that could not be created ...).
 */
export function isRetryable(error: unknown): boolean {
  const code = grpcCode(error);
  return code === undefined || RETRYABLE_GRPC_CODES.has(code);
}

/**
 * After UNAVAILABLE or DEADLINE_EXCEEDED the exporter is rebuilt (a new gRPC channel). grpc-js keeps a channel that
 * failed to connect in its own reconnect backoff (x1.6 per failure, up to 120 s) and fails every call at once until
 * it ends: after a 60 s outage the old channel reached the restarted gateway 19.5 s after it came back, a new one
 * 0.25 s after (measured with the test receiver, see RELIABILITY.md).
 */
export function needsNewChannel(error: unknown): boolean {
  const code = grpcCode(error);
  return code === 14 || code === 4;
}

export function exportOnce<T>(send: (items: T, cb: (r: ExportResult) => void) => void, items: T): Promise<ExportResult> {
  return new Promise((resolve) => {
    try {
      send(items, resolve);
    } catch (error) {
      resolve({ code: ExportResultCode.FAILED, error: error as Error });
    }
  });
}

/**
 * Whether a metric target ended up with every measurement. With cumulative temporality the newest export holds every
 * count, so only its fate matters (an older failure is made good by a later success); with delta each export given up
 * is lost for good.
 */
export class MetricDelivery {
  readonly #cumulative: boolean;
  #newestLost = false;
  #lost = 0;
  #lastError: Error | undefined;

  constructor(temporality: AggregationTemporality) {
    this.#cumulative = temporality === AggregationTemporality.CUMULATIVE;
  }

  delivered(): void {
    this.#newestLost = false;
  }

  lost(error: Error | undefined, exports = 1): void {
    if (exports <= 0) return;
    this.#newestLost = true;
    this.#lost += exports;
    this.#lastError = error ?? this.#lastError;
  }

  /** undefined when the target has everything; otherwise what it lacks, in words. */
  describe(): string | undefined {
    const why = this.#lastError ? ` (${this.#lastError.message.split('\n')[0]})` : '';
    if (this.#cumulative) return this.#newestLost ? `the last export (which holds every count) failed${why}` : undefined;
    return this.#lost > 0 ? `${this.#lost} delta export(s) failed${why}` : undefined;
  }
}

export interface RetryingMetricOptions {
  retry: RetryOptions;
  temporality: AggregationTemporality;
  /** Epoch ms by which shutdown() must be done (checked when shutdown starts). */
  deadline: () => number;
  /** Every failed attempt, first or retry (counted in connlat.export.failures and logged, sampled). */
  onAttemptFailure: (error: Error | undefined) => void;
  /** Delta only: failed exports kept for retry; beyond it the oldest is given up (and reported). Default 60. */
  maxPendingDelta?: number;
  /** A delta export given up (pending bound or shutdown deadline). */
  onGiveUp?: (why: string) => void;
}

/**
 * Wraps a metric exporter: each export makes one attempt and reports its result to the reader at once (so the
 * reader's own timeout never fires); a retryable failure is then re-sent in the background with backoff. Cumulative:
 * only the latest failed export is kept (a newer export supersedes it, and succeeding with it delivers every count).
 * Delta: failed exports are kept in order, up to maxPendingDelta. shutdown() keeps retrying until the deadline.
 */
export class RetryingMetricExporter implements PushMetricExporter {
  #inner: PushMetricExporter;
  readonly #factory: (() => PushMetricExporter) | undefined;
  readonly #opts: RetryingMetricOptions;
  readonly #sleeper = new Sleeper();
  #pending: ResourceMetrics[] = [];
  #attempt = 0;
  #loop: Promise<void> | undefined;
  #stopAt = Number.POSITIVE_INFINITY;
  #lastError: Error | undefined;
  /** What reached the gateway in the end (read after shutdown). */
  readonly delivery: MetricDelivery;
  selectAggregationTemporality?: (t: InstrumentType) => AggregationTemporality;
  selectAggregation?: PushMetricExporter['selectAggregation'];

  /** `factory` builds a fresh inner exporter (new channel) after a connection failure; without it the inner is kept. */
  constructor(inner: PushMetricExporter, opts: RetryingMetricOptions, factory?: () => PushMetricExporter) {
    this.#inner = inner;
    this.#factory = factory;
    this.#opts = opts;
    this.delivery = new MetricDelivery(opts.temporality);
    if (inner.selectAggregationTemporality) this.selectAggregationTemporality = inner.selectAggregationTemporality.bind(inner);
    if (inner.selectAggregation) this.selectAggregation = inner.selectAggregation.bind(inner);
  }

  /** Exports waiting for a retry (tests and shutdown messages). */
  get pending(): number {
    return this.#pending.length;
  }

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    const cumulative = this.#opts.temporality === AggregationTemporality.CUMULATIVE;
    // A newer cumulative export carries everything a pending one does: send it instead.
    if (cumulative) this.#pending = [];
    if (this.#pending.length > 0) {
      // Delta: the older ones go first; this one waits in line (reported to the reader as not delivered yet).
      this.#enqueue(metrics);
      resultCallback({ code: ExportResultCode.FAILED, error: new Error(`queued behind ${this.#pending.length - 1} failed delta exports`) });
      return;
    }
    void exportOnce((m, cb) => this.#inner.export(m, cb), metrics).then((result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        this.#failed(result.error);
        if (isRetryable(result.error)) this.#enqueue(metrics);
        else this.delivery.lost(result.error);
      } else {
        this.#attempt = 0;
        this.delivery.delivered();
      }
      resultCallback(result);
    });
  }

  #enqueue(metrics: ResourceMetrics): void {
    this.#pending.push(metrics);
    const max = this.#opts.maxPendingDelta ?? 60;
    while (this.#pending.length > max) {
      this.#pending.shift();
      this.delivery.lost(this.#lastError);
      this.#opts.onGiveUp?.(`more than ${max} delta metric exports failed in a row; the oldest is given up`);
    }
    this.#loop ??= this.#retryLoop().finally(() => (this.#loop = undefined));
  }

  async #retryLoop(): Promise<void> {
    while (this.#pending.length > 0) {
      const delay = retryDelay(this.#attempt, this.#opts.retry);
      const remaining = this.#stopAt - Date.now();
      if (remaining <= 0) return;
      await this.#sleeper.sleep(Math.min(delay, remaining));
      if (this.#pending.length === 0 || Date.now() >= this.#stopAt) return;
      const metrics = this.#pending[0]!;
      const result = await exportOnce((m, cb) => this.#inner.export(m, cb), metrics);
      if (result.code === ExportResultCode.SUCCESS) {
        this.#attempt = 0;
        if (this.#pending[0] === metrics) this.#pending.shift();
        if (this.#pending.length === 0) this.delivery.delivered();
        continue;
      }
      this.#failed(result.error);
      this.#attempt++;
      if (!isRetryable(result.error) && this.#pending[0] === metrics) {
        this.#pending.shift();
        this.delivery.lost(result.error);
      }
    }
  }

  #failed(error: Error | undefined): void {
    this.#lastError = error ?? this.#lastError;
    this.#opts.onAttemptFailure(error);
    if (this.#factory && needsNewChannel(error)) {
      const old = this.#inner;
      this.#inner = this.#factory();
      void old.shutdown().catch(() => undefined);
    }
  }

  async forceFlush(): Promise<void> {
    await this.#inner.forceFlush();
  }

  async shutdown(): Promise<void> {
    this.#stopAt = this.#opts.deadline();
    // Retry the last export right away and then on the usual backoff, until it is delivered or the deadline passes.
    this.#attempt = 0;
    this.#sleeper.wake();
    if (this.#loop) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#loop, new Promise((r) => (timer = setTimeout(r, Math.max(0, this.#stopAt - Date.now()))))]);
      clearTimeout(timer);
    }
    if (this.#pending.length > 0) {
      this.#opts.onGiveUp?.(`${this.#pending.length} metric export(s) not delivered before the shutdown deadline`);
      this.delivery.lost(this.#lastError, this.#pending.length);
      this.#pending = [];
      this.#sleeper.wake();
    }
    await this.#inner.shutdown();
  }
}
