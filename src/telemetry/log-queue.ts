// A bounded queue with retry in front of the OTLP log exporter. The SDK's BatchLogRecordProcessor hands us a batch and
// would otherwise drop it after one failed attempt; here every slow-connection record waits in a queue of at most
// `maxQueueSize` records until the gateway takes it. Nothing is lost below the bound, and each record refused by it,
// rejected by the gateway with a final status, or still queued when the shutdown deadline passes is counted exactly
// once (connlat.logs.dropped{reason}).
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { LogRecordExporter, ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { retryDelay, Sleeper, type RetryOptions } from '../backoff.ts';
import { exportOnce, grpcCode, grpcCodeName, isRetryable, needsNewChannel } from './retry.ts';

/** Why slow-connection log records were not delivered; export_failed: a file/console export failed (no retry there). */
export type LogDropReason = 'queue_full' | 'rejected' | 'shutdown' | 'export_failed';

export interface LogQueueOptions {
  /** Records held while the gateway is unreachable; beyond it new records are dropped and counted. */
  maxQueueSize: number;
  /** Records per export request (default 512, the SDK's batch size). */
  maxBatchSize?: number;
  retry: RetryOptions;
  /** Epoch ms by which shutdown() must be done (read when shutdown starts). */
  deadline: () => number;
  /** Every failed attempt (counted in connlat.export.failures and logged, sampled). */
  onAttemptFailure: (error: Error | undefined) => void;
  /** Records given up, with why; called once per batch of them. */
  onDropped: (count: number, reason: LogDropReason, detail: string) => void;
}

export class QueuedLogExporter implements LogRecordExporter {
  #inner: LogRecordExporter;
  readonly #factory: (() => LogRecordExporter) | undefined;
  readonly #opts: LogQueueOptions;
  readonly #sleeper = new Sleeper();
  #queue: ReadableLogRecord[] = [];
  #attempt = 0;
  #pump: Promise<void> | undefined;
  #stopAt = Number.POSITIVE_INFINITY;
  #closed = false;
  /** Resolved whenever an attempt ends (delivered or failed); forceFlush waits on it. */
  #attemptEnded: Array<(ok: boolean) => void> = [];

  /** `factory` builds a fresh inner exporter (new channel) after a connection failure; without it the inner is kept. */
  constructor(inner: LogRecordExporter, opts: LogQueueOptions, factory?: () => LogRecordExporter) {
    if (!(opts.maxQueueSize >= 1)) throw new Error(`log queue: maxQueueSize must be >= 1 (got ${opts.maxQueueSize})`);
    this.#inner = inner;
    this.#factory = factory;
    this.#opts = opts;
  }

  /** Records waiting for delivery (including a batch in flight). */
  get queued(): number {
    return this.#queue.length;
  }

  /** Accepts what fits in the queue (always reporting SUCCESS: what does not fit is counted as dropped here). */
  export(logs: ReadableLogRecord[], resultCallback: (result: ExportResult) => void): void {
    if (this.#closed) {
      this.#opts.onDropped(logs.length, 'shutdown', 'exported after shutdown');
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('log queue is shut down') });
      return;
    }
    const room = Math.max(0, this.#opts.maxQueueSize - this.#queue.length);
    if (logs.length <= room) {
      for (const r of logs) this.#queue.push(r);
    } else {
      for (let i = 0; i < room; i++) this.#queue.push(logs[i]!);
      this.#opts.onDropped(logs.length - room, 'queue_full', `log queue full (${this.#opts.maxQueueSize} records)`);
    }
    this.#pump ??= this.#run().finally(() => (this.#pump = undefined));
    resultCallback({ code: ExportResultCode.SUCCESS });
  }

  async #run(): Promise<void> {
    const batchSize = this.#opts.maxBatchSize ?? 512;
    while (this.#queue.length > 0 && Date.now() < this.#stopAt) {
      const batch = this.#queue.slice(0, batchSize);
      const result = await exportOnce((b, cb) => this.#inner.export(b, cb), batch);
      if (result.code === ExportResultCode.SUCCESS) {
        this.#queue.splice(0, batch.length);
        this.#attempt = 0;
        this.#settle(true);
        continue;
      }
      this.#opts.onAttemptFailure(result.error);
      if (this.#factory && needsNewChannel(result.error)) {
        const old = this.#inner;
        this.#inner = this.#factory();
        void old.shutdown().catch(() => undefined);
      }
      if (!isRetryable(result.error)) {
        this.#queue.splice(0, batch.length);
        const code = grpcCode(result.error);
        this.#opts.onDropped(batch.length, 'rejected', `the gateway answered ${grpcCodeName(code)}, which is final`);
        this.#settle(false);
        continue;
      }
      this.#settle(false);
      const delay = retryDelay(this.#attempt++, this.#opts.retry);
      await this.#sleeper.sleep(Math.min(delay, this.#stopAt - Date.now()));
    }
  }

  #settle(ok: boolean): void {
    const waiters = this.#attemptEnded;
    this.#attemptEnded = [];
    for (const w of waiters) w(ok);
  }

  /** Waits until the queue is empty or an attempt failed (one delivery attempt, not an outage's worth of retries). */
  async forceFlush(): Promise<void> {
    while (this.#queue.length > 0 && this.#pump) {
      this.#sleeper.wake(); // in a backoff: try now
      const ok = await new Promise<boolean>((r) => this.#attemptEnded.push(r));
      if (!ok) break;
    }
    await this.#inner.forceFlush();
  }

  /** Keeps delivering (retry delays cut short) until the queue is empty or the deadline; counts what is left. */
  async shutdown(): Promise<void> {
    if (this.#closed) return;
    this.#stopAt = this.#opts.deadline();
    this.#attempt = 0;
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
    await this.#inner.shutdown();
  }
}
