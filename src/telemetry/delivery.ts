// Delivery of OTLP exports through a gateway that may be down, for every signal (anchor: the Collector's
// exporterhelper: a bounded queue in front of a retrying sender). The SDK's gRPC exporters make one attempt per
// export and hand back the gRPC error; DeliveryQueue decides what is worth retrying (the OTLP spec's retryable
// codes), waits with jittered backoff (src/backoff.ts) so a fleet of agents does not reconnect in lockstep, rebuilds
// the exporter after a connection failure, and at shutdown keeps delivering until the deadline, then counts what is
// left. What a signal adds is small:
//  - QueuedExporter<T>: records (logs; spans take the same class) are accepted into the queue at once, sent in
//    batches in order; what the bound refuses, the gateway rejects or shutdown leaves is counted by reason.
//  - RetryingMetricExporter: each export makes one attempt and reports it to the reader at once; a retryable failure
//    is re-sent in the background until it succeeds or a newer cumulative export supersedes it.
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { LogRecordProcessor, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace';
import { AggregationTemporality, type InstrumentType, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { Backoff, Sleeper, type RetryOptions } from '../backoff.ts';

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

/** What every SDK exporter is (log, metric and span exporters): one export call with a callback. */
export interface Sender<B> {
  export(batch: B, resultCallback: (result: ExportResult) => void): void;
  forceFlush?(): Promise<void>;
  shutdown(): Promise<void>;
}

export function exportOnce<B>(sender: Sender<B>, batch: B): Promise<ExportResult> {
  return new Promise((resolve) => {
    try {
      sender.export(batch, resolve);
    } catch (error) {
      resolve({ code: ExportResultCode.FAILED, error: error as Error });
    }
  });
}

/** Why records were not delivered; export_failed: a file/console export failed (no retry there). */
export type DropReason = 'queue_full' | 'rejected' | 'shutdown' | 'export_failed';

export interface QueueOptions {
  /** Items held while the gateway is unreachable; beyond it they are dropped (see dropWhenFull) and counted. */
  maxQueueSize: number;
  /** Items per export request. */
  maxBatchSize: number;
  /** Which items a full queue drops: what arrives (keep the oldest, logs) or the oldest (delta metrics). */
  dropWhenFull: 'arriving' | 'oldest';
  /** for messages: 'log queue' */
  name?: string;
  /** A batch smaller than maxBatchSize waits this long for more items (default 0: sent at once). */
  lingerMs?: number;
  retry: RetryOptions;
  /** Epoch ms by which shutdown() must be done (read when shutdown starts). */
  deadline: () => number;
  /** Every failed attempt, first or retry (counted in connlat.export.failures and logged, sampled). */
  onAttemptFailure: (error: Error | undefined) => void;
  /** Items given up, with why; called once per batch of them. */
  onDropped: (count: number, reason: DropReason, detail: string) => void;
  /** A queued batch was delivered; `left` items still wait. */
  onDelivered?: (left: number) => void;
}

/** The queue and its sender loop, signal-agnostic: items T, sent as T[] batches through a Sender<B>. */
export class DeliveryQueue<T, B = T[]> {
  #sender: Sender<B>;
  readonly #factory: (() => Sender<B>) | undefined;
  readonly #toBatch: (items: T[]) => B;
  readonly #opts: QueueOptions;
  readonly #backoff: Backoff;
  readonly #sleeper = new Sleeper();
  #queue: T[] = [];
  #pump: Promise<void> | undefined;
  #stopAt = Number.POSITIVE_INFINITY;
  #closed = false;
  /** a flush is waiting: no lingering until the next attempt ends */
  #flushRequested = false;
  /** in a linger sleep (not a backoff: a full batch ends only the linger) */
  #lingering = false;
  /** Resolved whenever an attempt ends (delivered or failed); flushUntilAttempt waits on it. */
  #attemptEnded: Array<(ok: boolean) => void> = [];

  /** `factory` builds a fresh sender (new channel) after a connection failure; without it the sender is kept. */
  constructor(sender: Sender<B>, toBatch: (items: T[]) => B, opts: QueueOptions, factory?: () => Sender<B>) {
    if (!(opts.maxQueueSize >= 1)) throw new Error(`delivery queue: maxQueueSize must be >= 1 (got ${opts.maxQueueSize})`);
    this.#sender = sender;
    this.#toBatch = toBatch;
    this.#opts = opts;
    this.#factory = factory;
    this.#backoff = new Backoff({ initialMs: opts.retry.initialMs, maxMs: opts.retry.maxMs, resetAfterMs: Number.POSITIVE_INFINITY }, opts.retry.random, 'equal');
  }

  get size(): number {
    return this.#queue.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Queues items (bounded) and starts sending; `afterFailure`: the first send waits a backoff delay. */
  add(items: readonly T[], afterFailure = false): void {
    const { maxQueueSize, dropWhenFull } = this.#opts;
    if (dropWhenFull === 'arriving') {
      const room = Math.max(0, maxQueueSize - this.#queue.length);
      for (let i = 0; i < Math.min(room, items.length); i++) this.#queue.push(items[i]!);
      if (items.length > room) this.#opts.onDropped(items.length - room, 'queue_full', `${this.#opts.name ?? 'queue'} full (${maxQueueSize} records)`);
    } else {
      for (const item of items) this.#queue.push(item);
      const excess = this.#queue.length - maxQueueSize;
      if (excess > 0) {
        this.#queue.splice(0, excess);
        this.#opts.onDropped(excess, 'queue_full', `more than ${maxQueueSize} waiting; the oldest given up`);
      }
    }
    if (this.#lingering && this.#queue.length >= this.#opts.maxBatchSize) this.#sleeper.wake(); // a full batch need not linger
    this.#pump ??= this.#run(afterFailure).finally(() => (this.#pump = undefined));
  }

  /** Forgets everything queued (a newer item carries it all: cumulative metrics). */
  clear(): void {
    this.#queue = [];
  }

  /** One attempt with these items, outside the queue: failures counted, the channel rebuilt when it needs to be. */
  async attempt(items: T[]): Promise<ExportResult> {
    const result = await exportOnce(this.#sender, this.#toBatch(items));
    if (result.code === ExportResultCode.SUCCESS) {
      this.#backoff.reset();
      return result;
    }
    this.#opts.onAttemptFailure(result.error);
    if (this.#factory && needsNewChannel(result.error)) {
      const old = this.#sender;
      this.#sender = this.#factory();
      void old.shutdown().catch(() => undefined);
    }
    return result;
  }

  async #run(sleepFirst: boolean): Promise<void> {
    let sleep = sleepFirst;
    while (this.#queue.length > 0 && Date.now() < this.#stopAt) {
      if (sleep) {
        await this.#sleeper.sleep(Math.min(this.#backoff.next(), this.#stopAt - Date.now()));
        if (this.#queue.length === 0 || Date.now() >= this.#stopAt) return;
      } else if (this.#lingers()) {
        this.#lingering = true;
        await this.#sleeper.sleep(this.#opts.lingerMs!);
        this.#lingering = false;
        if (this.#queue.length === 0 || Date.now() >= this.#stopAt) return;
      }
      const batch = this.#queue.slice(0, this.#opts.maxBatchSize);
      const result = await this.attempt(batch);
      const stillHead = this.#queue[0] === batch[0];
      if (result.code === ExportResultCode.SUCCESS) {
        if (stillHead) this.#queue.splice(0, batch.length);
        this.#opts.onDelivered?.(this.#queue.length);
        this.#settle(true);
        sleep = false;
      } else if (!isRetryable(result.error)) {
        if (stillHead) this.#queue.splice(0, batch.length);
        this.#opts.onDropped(batch.length, 'rejected', `the gateway answered ${grpcCodeName(grpcCode(result.error))}, which is final`);
        this.#settle(false);
        sleep = false;
      } else {
        this.#settle(false);
        sleep = true;
      }
    }
  }

  /** Wait for more items before sending: a linger is set, the batch is not full, nobody flushes or shuts down. */
  #lingers(): boolean {
    return (this.#opts.lingerMs ?? 0) > 0 && this.#queue.length < this.#opts.maxBatchSize && !this.#flushRequested && this.#stopAt === Number.POSITIVE_INFINITY;
  }

  #settle(ok: boolean): void {
    this.#flushRequested = false;
    const waiters = this.#attemptEnded;
    this.#attemptEnded = [];
    for (const w of waiters) w(ok);
  }

  /** Waits until the queue is empty or an attempt failed (one delivery attempt, not an outage's worth of retries). */
  async flushUntilAttempt(): Promise<void> {
    while (this.#queue.length > 0 && this.#pump) {
      this.#flushRequested = true;
      this.#sleeper.wake(); // in a backoff or lingering: try now
      const ok = await new Promise<boolean>((r) => this.#attemptEnded.push(r));
      if (!ok) break;
    }
    await this.#sender.forceFlush?.();
  }

  async forceFlush(): Promise<void> {
    await this.#sender.forceFlush?.();
  }

  /** Keeps delivering (retry delays cut short) until the queue is empty or the deadline; counts what is left. */
  async shutdown(): Promise<void> {
    if (this.#closed) return;
    this.#stopAt = this.#opts.deadline();
    this.#backoff.reset();
    this.#sleeper.wake();
    if (this.#pump) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#pump, new Promise((r) => (timer = setTimeout(r, Math.max(0, this.#stopAt - Date.now()))))]);
      clearTimeout(timer);
    }
    this.#closed = true;
    const left = this.#queue.length;
    this.#queue = [];
    this.#sleeper.wake();
    if (left > 0) this.#opts.onDropped(left, 'shutdown', 'not delivered before the shutdown deadline');
    await this.#sender.shutdown();
  }
}

/** The queue's settings that a record exporter passes through unchanged (the queue declares them). */
export type QueuedExporterOptions = Pick<QueueOptions, 'maxQueueSize' | 'lingerMs' | 'retry' | 'deadline' | 'onAttemptFailure' | 'onDropped'> & {
  /** Records per export request (default 512, the SDK's batch size). */
  maxBatchSize?: number;
};

/**
 * An exporter of records (log records; spans have the same shape) in front of the SDK's: export() accepts what fits
 * in the queue and reports SUCCESS at once (the SDK's batch processor would otherwise drop a batch after one failed
 * attempt); every record waits until the gateway takes it, and each one refused by the bound, rejected with a final
 * status or still queued at the shutdown deadline is counted exactly once.
 */
export class QueuedExporter<T> {
  readonly #queue: DeliveryQueue<T>;
  readonly #onDropped: QueuedExporterOptions['onDropped'];
  readonly #signal: string;

  /** `signal` names it in messages ('log', 'span'). */
  constructor(inner: Sender<T[]>, opts: QueuedExporterOptions, factory: (() => Sender<T[]>) | undefined, signal: string) {
    this.#onDropped = opts.onDropped;
    this.#signal = signal;
    const queue = { ...opts, maxBatchSize: opts.maxBatchSize ?? 512, dropWhenFull: 'arriving' as const, name: `${signal} queue` };
    this.#queue = new DeliveryQueue<T>(inner, (items) => items, queue, factory);
  }

  /** Records waiting for delivery (including a batch in flight). */
  get queued(): number {
    return this.#queue.size;
  }

  export(records: T[], resultCallback: (result: ExportResult) => void): void {
    if (this.#queue.closed) {
      this.#onDropped(records.length, 'shutdown', 'exported after shutdown');
      resultCallback({ code: ExportResultCode.FAILED, error: new Error(`${this.#signal} queue is shut down`) });
      return;
    }
    this.#queue.add(records);
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  /** Waits until the queue is empty or an attempt failed (one delivery attempt, not an outage's worth of retries). */
  forceFlush(): Promise<void> {
    return this.#queue.flushUntilAttempt();
  }

  shutdown(): Promise<void> {
    return this.#queue.shutdown();
  }
}

/**
 * OTLP logs without a second queue: the SDK's LogRecordProcessor interface putting each emitted record straight into
 * a QueuedExporter (which batches, lingering like the SDK's batch processor). Records refused by the queue's bound
 * are counted there; the SDK's BatchLogRecordProcessor in front of it dropped a full buffer uncounted.
 */
export class QueuedLogRecordProcessor implements LogRecordProcessor {
  readonly #exporter: QueuedExporter<ReadableLogRecord>;
  constructor(exporter: QueuedExporter<ReadableLogRecord>) {
    this.#exporter = exporter;
  }
  onEmit(record: ReadableLogRecord): void {
    this.#exporter.export([record], () => undefined);
  }
  forceFlush(): Promise<void> {
    return this.#exporter.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.#exporter.shutdown();
  }
}

/** OTLP spans the same way: each ended span straight into a QueuedExporter of spans (no SDK batch processor). */
export class QueuedSpanProcessor implements SpanProcessor {
  readonly #exporter: QueuedExporter<ReadableSpan>;
  constructor(exporter: QueuedExporter<ReadableSpan>) {
    this.#exporter = exporter;
  }
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    this.#exporter.export([span], () => undefined);
  }
  forceFlush(): Promise<void> {
    return this.#exporter.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.#exporter.shutdown();
  }
}

/** The log exporter: a QueuedExporter of log records. */
export class QueuedLogExporter extends QueuedExporter<ReadableLogRecord> {
  constructor(inner: Sender<ReadableLogRecord[]>, opts: QueuedExporterOptions, factory?: () => Sender<ReadableLogRecord[]>) {
    super(inner, opts, factory, 'log');
  }
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
 * The metric exporter: each export makes one attempt and reports its result to the reader at once (so the reader's
 * own timeout never fires); a retryable failure is then re-sent in the background with backoff. Cumulative: only the
 * latest failed export is kept (a newer export supersedes it, and succeeding with it delivers every count). Delta:
 * failed exports are kept in order, up to maxPendingDelta. shutdown() keeps retrying until the deadline.
 */
export class RetryingMetricExporter implements PushMetricExporter {
  readonly #queue: DeliveryQueue<ResourceMetrics, ResourceMetrics>;
  readonly #cumulative: boolean;
  #lastError: Error | undefined;
  /** What reached the gateway in the end (read after shutdown). */
  readonly delivery: MetricDelivery;
  selectAggregationTemporality?: (t: InstrumentType) => AggregationTemporality;
  selectAggregation?: PushMetricExporter['selectAggregation'];

  /** `factory` builds a fresh inner exporter (new channel) after a connection failure; without it the inner is kept. */
  constructor(inner: PushMetricExporter, opts: RetryingMetricOptions, factory?: () => PushMetricExporter) {
    const max = opts.maxPendingDelta ?? 60;
    this.#cumulative = opts.temporality === AggregationTemporality.CUMULATIVE;
    this.delivery = new MetricDelivery(opts.temporality);
    this.#queue = new DeliveryQueue<ResourceMetrics, ResourceMetrics>(
      inner,
      (items) => items[0]!,
      {
        maxQueueSize: max,
        maxBatchSize: 1,
        dropWhenFull: 'oldest',
        retry: opts.retry,
        deadline: opts.deadline,
        onAttemptFailure: (error) => {
          this.#lastError = error ?? this.#lastError;
          opts.onAttemptFailure(error);
        },
        onDropped: (count, reason) => {
          // every export given up is lost for this target (a final status, the delta bound, the shutdown deadline)
          if (reason === 'queue_full') {
            for (let i = 0; i < count; i++) {
              this.delivery.lost(this.#lastError);
              opts.onGiveUp?.(`more than ${max} delta metric exports failed in a row; the oldest is given up`);
            }
          } else if (reason === 'shutdown') {
            opts.onGiveUp?.(`${count} metric export(s) not delivered before the shutdown deadline`);
            this.delivery.lost(this.#lastError, count);
          } else {
            this.delivery.lost(this.#lastError, count);
          }
        },
        onDelivered: (left) => {
          if (left === 0) this.delivery.delivered();
        },
      },
      factory,
    );
    if (inner.selectAggregationTemporality) this.selectAggregationTemporality = inner.selectAggregationTemporality.bind(inner);
    if (inner.selectAggregation) this.selectAggregation = inner.selectAggregation.bind(inner);
  }

  /** Exports waiting for a retry (tests and shutdown messages). */
  get pending(): number {
    return this.#queue.size;
  }

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    // A newer cumulative export carries everything a pending one does: send it instead.
    if (this.#cumulative) this.#queue.clear();
    if (this.#queue.size > 0) {
      // Delta: the older ones go first; this one waits in line (reported to the reader as not delivered yet).
      this.#queue.add([metrics]);
      resultCallback({ code: ExportResultCode.FAILED, error: new Error(`queued behind ${this.#queue.size - 1} failed delta exports`) });
      return;
    }
    void this.#queue.attempt([metrics]).then((result) => {
      if (result.code === ExportResultCode.SUCCESS) this.delivery.delivered();
      else if (isRetryable(result.error)) this.#queue.add([metrics], true);
      else this.delivery.lost(result.error);
      resultCallback(result);
    });
  }

  forceFlush(): Promise<void> {
    return this.#queue.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#queue.shutdown();
  }
}
