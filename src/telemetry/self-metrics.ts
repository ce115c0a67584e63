// connlat's own counters (lines rejected, tool restarts, lost events, log records dropped, export failures). They
// exist before the MeterProvider does: the exporters the provider is built from report their failures here, and the
// counts start once bind() has created the instruments (nothing is exported before that anyway).
import { ValueType, type Counter, type Meter } from '@opentelemetry/api';
import { INSTRUMENTS, type InstrumentSpec } from './schema.ts';
import type { SelfMetrics } from './types.ts';

const RATE_LIMITED = { reason: 'rate_limit' };

export type Signal = 'metrics' | 'logs' | 'traces';

/** Records of one per-connect signal (log records, spans) not delivered, by reason, for the report at shutdown. */
class Losses {
  readonly #what: string;
  readonly #byReason = new Map<string, { count: number; detail: string }>();
  constructor(what: string) {
    this.#what = what;
  }
  add(count: number, reason: string, detail: string): void {
    this.#byReason.set(reason, { count: (this.#byReason.get(reason)?.count ?? 0) + count, detail });
  }
  /** `50 slow-connection log records (shutdown: 50 [...])`, or undefined when none was lost. */
  describe(): string | undefined {
    const lost = [...this.#byReason.values()].reduce((a, b) => a + b.count, 0);
    if (lost === 0) return undefined;
    const why = [...this.#byReason].map(([reason, { count, detail }]) => `${reason}: ${count} [${detail}]`);
    return `${lost} ${this.#what} (${why.join(', ')})`;
  }
}

export class OwnCounters {
  readonly #logger: { warn(msg: string): void } | undefined;
  #linesRejected: Counter | undefined;
  #toolRestarts: Counter | undefined;
  #lostEvents: Counter | undefined;
  #logsDropped: Counter | undefined;
  #spansDropped: Counter | undefined;
  #exportFailures: Counter | undefined;
  readonly #lostLogs = new Losses('slow-connection log records');
  readonly #lostSpans = new Losses('connect spans');
  #rateLimited = 0;
  #spansRateLimited = 0;

  constructor(logger: { warn(msg: string): void } | undefined) {
    this.#logger = logger;
  }

  bind(meter: Meter): void {
    const counter = (spec: InstrumentSpec): Counter => meter.createCounter(spec.name, { description: spec.description, unit: spec.unit, valueType: ValueType.INT });
    this.#linesRejected = counter(INSTRUMENTS.linesRejected);
    this.#toolRestarts = counter(INSTRUMENTS.toolRestarts);
    this.#lostEvents = counter(INSTRUMENTS.lostEvents);
    this.#logsDropped = counter(INSTRUMENTS.logsDropped);
    this.#spansDropped = counter(INSTRUMENTS.spansDropped);
    this.#exportFailures = counter(INSTRUMENTS.exportFailures);
  }

  /** One failed export attempt: counted, and said (the agent's logger samples it). */
  exportFailed(signal: Signal, error: Error | undefined): void {
    this.#exportFailures?.add(1, { signal });
    this.#logger?.warn(`telemetry: ${signal} export failed: ${error?.message ?? 'unknown error'}`);
  }

  /** Log records not delivered (the OTLP queue's queue_full, rejected, shutdown; a file export's export_failed):
   * counted by reason, said (sampled), and summed for the report at shutdown. */
  logsDropped(count: number, reason: string, detail: string): void {
    this.#logsDropped?.add(count, { reason });
    this.#lostLogs.add(count, reason, detail);
    this.#logger?.warn(`telemetry: slow-connection log records dropped (${reason}): ${count}, ${detail}`);
  }

  /** Connect spans not delivered (as logsDropped). */
  spansDropped(count: number, reason: string, detail: string): void {
    this.#spansDropped?.add(count, { reason });
    this.#lostSpans.add(count, reason, detail);
    this.#logger?.warn(`telemetry: connect spans dropped (${reason}): ${count}, ${detail}`);
  }

  /** A connect span the token bucket refused (not logged). */
  spanRateLimited(): void {
    this.#spansDropped?.add(1, RATE_LIMITED);
    this.#spansRateLimited++;
  }

  get spansRateLimitedCount(): number {
    return this.#spansRateLimited;
  }

  /** A slow-connection log record the token bucket refused (the hot path: not logged). */
  rateLimited(): void {
    this.#logsDropped?.add(1, RATE_LIMITED);
    this.#rateLimited++;
  }

  /** Records the token bucket dropped: policy (--slow-log-rate/-burst), not a delivery failure. */
  get rateLimitedCount(): number {
    return this.#rateLimited;
  }

  /** The log records not delivered, in words, or undefined. */
  undeliveredLogs(): string | undefined {
    return this.#lostLogs.describe();
  }

  /** The connect spans not delivered, in words, or undefined. */
  undeliveredSpans(): string | undefined {
    const lost = this.#lostSpans.describe();
    return lost === undefined ? undefined : `traces: ${lost}`;
  }

  readonly self: SelfMetrics = {
    lineRejected: (reason) => this.#linesRejected?.add(1, { reason }),
    toolRestarted: (tool) => this.#toolRestarts?.add(1, { tool }),
    lostEvents: (count) => {
      if (count > 0) this.#lostEvents?.add(count);
    },
  };
}
