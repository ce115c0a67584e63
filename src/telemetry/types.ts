import type { ConnectEvent } from '../event.ts';
import type { RetryOptions } from '../backoff.ts';

/** Where telemetry goes. Repeatable on the command line (--export). */
export type ExportTarget =
  | { kind: 'otlp'; endpoint?: string } // gRPC; endpoint/headers/TLS/compression also from OTEL_EXPORTER_OTLP_* env
  | { kind: 'otlp-json'; path: string } // one ExportMetricsServiceRequest / ExportLogsServiceRequest / ExportTraceServiceRequest per line
  | { kind: 'console' };

/** How OTLP exports survive a gateway outage (see exporters.ts, delivery.ts). */
export interface DeliveryOptions {
  /** Slow-connection log records held while the gateway is unreachable (default 8192); beyond it they are dropped and
   * counted. Connect spans get a queue of their own of the same size. */
  logQueueSize?: number;
  /** Backoff between attempts (default 1 s doubling to 30 s, jittered). */
  retry?: RetryOptions;
  /** Epoch ms by which shutdown must have delivered what it can, per signal (logs go first and should leave
   * metrics time for the last export, which counts what logs dropped). Default: 8 s after shutdown starts. */
  deadline?: (signal: 'metrics' | 'logs' | 'traces') => number;
  /** A metric export given up (delta backlog bound, shutdown deadline). */
  onGiveUp?: (why: string) => void;
}

export interface TelemetryOptions {
  exports: ExportTarget[];
  /** Resource attributes (service.name, host.name, k8s.* ...), already merged with OTEL_RESOURCE_ATTRIBUTES. */
  resource: Record<string, string>;
  /** 'explicit' buckets from 50 us to 10 s, or a base-2 exponential histogram. */
  histogram: 'explicit' | 'exponential';
  /** Metric attribute allow list (keys). Attributes not listed are not recorded on metrics. */
  metricAttributes: string[];
  /** Max distinct attribute sets per metric; beyond it the SDK records into otel.metric.overflow=true. */
  cardinalityLimit: number;
  /** Export interval for metrics in ms. */
  exportIntervalMs: number;
  /** A connect slower than this (ms) gets a log record (and a span). */
  slowMs: number;
  /** One span per slow connect and per failed connect (default false here; the CLI default is on). */
  traces?: boolean;
  /** Token bucket for slow-connection log records. */
  slowLogRatePerSec: number;
  slowLogBurst: number;
  /** 'cumulative' (default: remote-write backends drop delta histograms) or 'delta'. */
  temporality: 'cumulative' | 'delta';
  /** Monotonic clock in ms for the slow-log token bucket; default performance.now (tests drive it by hand). */
  now?: () => number;
  /** Retry and queueing of OTLP exports; defaults when absent. */
  delivery?: DeliveryOptions;
  /** Where a failed export is reported (one warning per failed export); default: not reported, only counted. */
  logger?: { warn(msg: string): void };
}

/** What a run's telemetry could not deliver, once shut down. */
export interface DeliveryReport {
  /** One line of what did not reach an export target (metrics, log records by reason), or undefined: all delivered. */
  readonly undelivered: string | undefined;
  /** Slow-connection log records the token bucket dropped: policy (--slow-log-rate/-burst), not a delivery failure. */
  readonly logsRateLimited: number;
  /** Connect spans the token buckets dropped (policy, as logsRateLimited). */
  readonly spansRateLimited: number;
}

/** Self-observability counters, recorded through the same pipeline as connect metrics. */
export interface SelfMetrics {
  lineRejected(reason: string): void;
  toolRestarted(tool: string): void;
  lostEvents(count: number): void;
}

export interface Telemetry {
  /** Histogram (+ failure counter) and, when slow, a rate-limited log record and span (a span too when failed).
   * Synchronous and cheap. */
  record(event: ConnectEvent): void;
  readonly self: SelfMetrics;
  /**
   * Exports a stage's own running totals (e.g. the enricher's lookups, watch errors) as one observable counter,
   * read at each collection: `name{<attribute>=<key in snake_case>}`. The keys must be a fixed set.
   */
  observeTotals(name: string, description: string, attribute: string, read: () => Readonly<Record<string, number>> | undefined): void;
  /** Export everything recorded so far (metrics, logs and spans) and wait for it. */
  flush(): Promise<void>;
  /** flush, then release exporters; says what could not be delivered. Idempotent. */
  shutdown(): Promise<DeliveryReport>;
}
