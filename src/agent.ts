// Wires the pipeline source -> parse -> enrich -> record -> export and owns start/stop. Everything on the per-line
// path is synchronous: a line is decoded, enriched and recorded before the next one is read, so "nothing read is
// lost" reduces to "flush telemetry after the source has drained".
import type { Config } from './config.ts';
import { createEnricher } from './enrich/index.ts';
import { buildResourceAttributes } from './enrich/resource.ts';
import type { Enricher } from './enrich/enricher.ts';
import type { ToolName } from './event.ts';
import { startHealthServer, type HealthServer } from './health/server.ts';
import { SampledLog, type Logger } from './log.ts';
import { LineDecoder } from './parse/decoder.ts';
import { createSource, isReplaySpec } from './sources/index.ts';
import type { Source, SourceHooks } from './sources/types.ts';
import { otlpTlsEnvProblems } from './telemetry/exporters.ts';
import { createTelemetry } from './telemetry/index.ts';
import { INSTRUMENTS } from './telemetry/schema.ts';
import type { DeliveryReport, ExportTarget, Telemetry } from './telemetry/types.ts';
import { LiveStats } from './view/stats.ts';
import { LiveView, renderTable } from './view/table.ts';

export interface AgentOptions {
  config: Config;
  version: string;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  /** The terminal for the live view; the view runs when --view on, or auto and this is a TTY. */
  stdout: NodeJS.WriteStream;
}

/** Counters the view and tests read; the same numbers go out as connlat.* self-metrics. */
export interface AgentCounters {
  lines: number;
  events: number;
  rejected: number;
  restarts: number;
  lostEvents: number;
}

export function exportTargets(config: Config): ExportTarget[] {
  return config.exports.map((spec): ExportTarget => {
    if (spec === 'console') return { kind: 'console' };
    if (spec.startsWith('otlp-json:')) return { kind: 'otlp-json', path: spec.slice('otlp-json:'.length) };
    return config.otlpEndpoint ? { kind: 'otlp', endpoint: config.otlpEndpoint } : { kind: 'otlp' };
  });
}

/**
 * When the exporters must give up at shutdown. The CLI exits hard shutdownTimeoutMs after the signal; telemetry has
 * until 500 ms before that. Logs drain first and leave metrics a quarter of the budget (at most 2 s) for the last
 * export, which carries the count of what logs could not deliver. Without a signal (replay EOF) the budget starts
 * when telemetry shuts down.
 */
export class ShutdownDeadlines {
  private readonly budgetMs: number;
  private end: number | undefined;
  constructor(shutdownTimeoutMs: number) {
    this.budgetMs = Math.max(100, shutdownTimeoutMs - 500);
  }
  begin(now = Date.now()): void {
    this.end ??= now + this.budgetMs;
  }
  /** How long a stdin replay may still be read after the signal, waiting for its EOF: half the budget, the rest
   * is for the flush. */
  get sourceDrainMs(): number {
    return Math.round(this.budgetMs / 2);
  }
  of(signal: 'metrics' | 'logs', now = Date.now()): number {
    this.begin(now);
    const end = this.end!;
    return signal === 'metrics' ? end : end - Math.min(2000, this.budgetMs / 4);
  }
}

export class Agent {
  readonly counters: AgentCounters = { lines: 0, events: 0, rejected: 0, restarts: 0, lostEvents: 0 };
  /** Resolves when the source has ended (replay EOF, or after stop()) and telemetry is flushed, with what telemetry
   * could not deliver. */
  readonly done: Promise<DeliveryReport>;
  private readonly opts: AgentOptions;
  private readonly source: Source;
  private readonly telemetry: Telemetry;
  private readonly enricher: Enricher;
  private readonly stats: LiveStats | undefined;
  private decoder: LineDecoder;
  private health: HealthServer | undefined;
  private view: LiveView | undefined;
  private stopping: Promise<void> | undefined;
  private shuttingDown = false;
  private toolInUse: string;
  private readonly rejectLog = new SampledLog(10_000);
  private deadlines: ShutdownDeadlines | undefined;

  private constructor(opts: AgentOptions, source: Source, telemetry: Telemetry, enricher: Enricher) {
    this.opts = opts;
    this.source = source;
    this.telemetry = telemetry;
    this.enricher = enricher;
    this.decoder = new LineDecoder(source.format());
    this.toolInUse = source.description;
    const wantView = opts.config.view === 'on' || (opts.config.view === 'auto' && opts.stdout.isTTY === true);
    this.stats = wantView ? new LiveStats({ slowMs: opts.config.slowMs }) : undefined;
    this.done = this.run();
  }

  static async start(opts: AgentOptions): Promise<Agent> {
    const { config, logger } = opts;
    const exportLog = new SampledLog(60_000);
    const deadlines = new ShutdownDeadlines(config.shutdownTimeoutMs);
    const source = createSource(config.source, {
      tcpconnlatPath: config.tcpconnlatPath,
      tcpstatesPath: config.tcpstatesPath,
      stdbufPath: config.stdbufPath,
      drainTimeoutMs: deadlines.sourceDrainMs,
      logger,
    });
    // What can stop the run is checked before telemetry creates any output file: the input, then the health port.
    await source.prepare?.();
    let agent: Agent | undefined;
    let health: HealthServer | undefined;
    if (config.healthAddr !== 'off') {
      try {
        health = await startHealthServer(config.healthAddr, {
          alive: () => !agent?.shuttingDown,
          notReadyReason: () => (agent ? agent.notReadyReason() : `${source.description} is starting`),
        });
        logger.info(`health endpoints on ${config.healthAddr} (/healthz, /readyz)`);
      } catch (err) {
        // A live agent without its probes would be restarted by the kubelet for nothing: fail now. A replay needs none.
        if (!isReplaySpec(config.source)) throw err;
        logger.warn(`health endpoints off: ${(err as Error).message}`);
      }
    }
    const telemetry = createTelemetry({
      exports: exportTargets(config),
      resource: buildResourceAttributes({ version: opts.version, clusterName: config.clusterName, env: opts.env }),
      histogram: config.histogram,
      metricAttributes: config.metricAttributes,
      cardinalityLimit: config.cardinalityLimit,
      exportIntervalMs: config.exportIntervalMs,
      slowMs: config.slowMs,
      slowLogRatePerSec: config.slowLogRate,
      slowLogBurst: config.slowLogBurst,
      temporality: config.temporality,
      delivery: {
        logQueueSize: config.logQueueSize,
        retry: { initialMs: Math.min(1000, config.exportRetryMaxMs), maxMs: config.exportRetryMaxMs },
        deadline: (signal) => deadlines.of(signal),
        onGiveUp: (why) => logger.warn(`telemetry: ${why}`),
      },
      // Without a reachable backend every export fails: say so once a minute per kind of message, not every interval.
      logger: {
        warn: (msg: string) => {
          const sampled = exportLog.sample(msg.split(':').slice(0, 2).join(':'), msg);
          if (sampled) logger.warn(sampled);
        },
      },
    });
    if (config.exports.includes('otlp')) for (const problem of otlpTlsEnvProblems(opts.env)) logger.error(problem);
    const enricher = await createEnricher(config, opts.env, logger);
    logger.info(enricher.description);
    const { name, description } = INSTRUMENTS.enrichOperations;
    telemetry.observeTotals(name, description, 'operation', () => enricher.counters);
    await enricher.start();
    agent = new Agent(opts, source, telemetry, enricher);
    agent.deadlines = deadlines;
    agent.health = health;
    if (agent.stats) {
      const stats = agent.stats;
      agent.view = new LiveView(opts.stdout, (w, r) =>
        renderTable(
          stats,
          {
            source: agent.toolInUse,
            ready: agent.source.ready(),
            linesRejected: agent.counters.rejected,
            restarts: agent.counters.restarts,
            lostEvents: agent.counters.lostEvents,
            enrichment: agent.enricher.description.startsWith('Kubernetes enrichment off') ? 'k8s: off' : 'k8s: on',
            exports: config.exports.join(','),
          },
          w,
          r,
        ),
      );
      agent.view.start();
    }
    logger.info(`reading ${source.description}; exporting to ${config.exports.join(', ')}; slow threshold ${config.slowMs} ms`);
    return agent;
  }

  /** Why /readyz is 503, or undefined when ready. A live tool must print a format the parser knows: otherwise every
   * line it prints is rejected, and the agent is up but measures nothing. */
  notReadyReason(): string | undefined {
    if (!this.source.ready()) return `${this.toolInUse} is not attached and reading`;
    if (this.source.format() !== 'detect' && !this.decoder.formatKnown) {
      return `${this.toolInUse} prints no known format (its header is not one of libbpf-tools' or BCC's; see the rejected lines)`;
    }
    return undefined;
  }

  private hooks(): SourceHooks {
    const { logger } = this.opts;
    return {
      line: (text, readAtMs) => {
        // start-up time as an operator (and bench/startup.ts) sees it: performance.now() counts from process start
        if (this.counters.lines++ === 0) logger.debug(`first line read ${Math.round(performance.now())} ms after process start`);
        const result = this.decoder.decode(text, readAtMs);
        if (result.kind === 'event') {
          const event = result.event;
          this.enricher.enrich(event);
          this.telemetry.record(event);
          this.stats?.observe(event);
          this.counters.events++;
        } else if (result.kind === 'reject') {
          this.counters.rejected++;
          this.telemetry.self.lineRejected(result.reason);
          const detail = 'detail' in result && result.detail ? `: ${String(result.detail)}` : '';
          const msg = this.rejectLog.sample('reject', `rejected a ${this.toolInUse} line (${result.reason}${detail}): ${JSON.stringify(text.slice(0, 200))}`);
          if (msg) logger.warn(msg);
        }
      },
      lostEvents: (count) => {
        this.counters.lostEvents += count;
        this.telemetry.self.lostEvents(count);
      },
      restart: (exitDescription) => {
        this.counters.restarts++;
        this.telemetry.self.toolRestarted(this.source.format() === 'detect' ? 'replay' : String(this.source.format()));
        logger.warn(`${this.toolInUse} exited (${exitDescription}); restarting with backoff`);
      },
      diagnostic: (message) => logger.error(message),
      toolSelected: (tool: ToolName, reason: string) => {
        this.decoder = new LineDecoder(tool);
        this.toolInUse = tool;
        logger.info(`source auto: using ${tool} (${reason})`);
      },
    };
  }

  private async run(): Promise<DeliveryReport> {
    let report: DeliveryReport | undefined;
    try {
      await this.source.run(this.hooks());
    } finally {
      report = await this.finish();
    }
    return report;
  }

  private async finish(): Promise<DeliveryReport> {
    this.shuttingDown = true;
    this.view?.stop();
    await this.enricher.stop();
    const report = await this.telemetry.shutdown();
    await this.health?.close();
    const c = this.counters;
    const { logger, config } = this.opts;
    logger.info(`stopped: ${c.lines} lines read, ${c.events} connect events, ${c.rejected} rejected, ${c.restarts} tool restarts, ${c.lostEvents} events lost in the kernel`);
    if (report.logsRateLimited > 0) {
      logger.warn(`${report.logsRateLimited} slow-connection log records dropped by the rate limit (--slow-log-rate ${config.slowLogRate}/s, --slow-log-burst ${config.slowLogBurst}); counted in connlat.logs.dropped{reason=rate_limit}`);
    }
    if (report.undelivered !== undefined) logger.error(`not delivered: ${report.undelivered}`);
    return report;
  }

  /** SIGINT the tool, drain its remaining lines, flush metrics and logs. Idempotent. `signalAtMs`: when the signal
   * came (the shutdown budget counts from it). */
  stop(signalAtMs?: number): Promise<void> {
    this.stopping ??= (async () => {
      this.deadlines?.begin(signalAtMs);
      this.shuttingDown = true;
      await this.source.stop();
      await this.done.catch(() => undefined);
    })();
    return this.stopping;
  }
}
