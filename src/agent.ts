// Wires the pipeline source -> parse -> enrich -> record -> export and owns start/stop. Everything on the per-line
// path is synchronous: a line is decoded, enriched and recorded before the next one is read, so "nothing read is
// lost" reduces to "flush telemetry after the source has drained".
import type { Config } from './config.ts';
import { createEnricher } from './enrich/index.ts';
import type { Enricher } from './enrich/enricher.ts';
import type { ToolName } from './event.ts';
import { startHealthServer, type HealthServer } from './health/server.ts';
import { SampledLog, type Logger } from './log.ts';
import { LineDecoder } from './parse/decoder.ts';
import { createSource } from './sources/index.ts';
import { isReplay } from './specs.ts';
import type { Source, SourceHooks } from './sources/types.ts';
import { otlpTlsEnvProblems } from './telemetry/exporters.ts';
import { createTelemetry } from './telemetry/index.ts';
import { buildResourceAttributes } from './telemetry/resource.ts';
import { INSTRUMENTS } from './telemetry/schema.ts';
import type { DeliveryReport, ExportTarget, Telemetry } from './telemetry/types.ts';
import type { LiveStats } from './view/stats.ts';
import type { LiveView } from './view/table.ts';

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
  return config.exportSpecs.map((spec): ExportTarget => (spec.kind === 'otlp' && config.otlpEndpoint ? { kind: 'otlp', endpoint: config.otlpEndpoint } : spec));
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
  /** Logs and traces drain side by side until the same deadline; metrics go last. */
  of(signal: 'metrics' | 'logs' | 'traces', now = Date.now()): number {
    this.begin(now);
    const end = this.end!;
    return signal === 'metrics' ? end : end - Math.min(2000, this.budgetMs / 4);
  }
}

/** The stages an agent runs, built before it starts reading. */
interface Pipeline {
  source: Source;
  telemetry: Telemetry;
  enricher: Enricher;
  deadlines: ShutdownDeadlines;
  /** the live view's statistics, when the view runs */
  stats: LiveStats | undefined;
  health: HealthServer | undefined;
}

/** The source, created and checked first: what can stop the run is checked before telemetry creates any output file. */
async function prepareSource(config: Config, deadlines: ShutdownDeadlines, logger: Logger): Promise<Source> {
  const source = createSource(config.sourceSpec, {
    connlatProbePath: config.connlatProbePath,
    tcpconnlatPath: config.tcpconnlatPath,
    tcpstatesPath: config.tcpstatesPath,
    stdbufPath: config.stdbufPath,
    drainTimeoutMs: deadlines.sourceDrainMs,
    logger,
  });
  await source.prepare?.();
  return source;
}

/** The health endpoints, up before telemetry (the port is the other thing that can stop the run); `agent()` is the
 * agent once it exists (until then /readyz says the source is starting). */
async function startHealth(config: Config, source: Source, logger: Logger, agent: () => Agent | undefined): Promise<HealthServer | undefined> {
  if (config.healthAddr === 'off') return undefined;
  try {
    const health = await startHealthServer(config.healthAddr, {
      alive: () => agent()?.alive ?? true,
      notReadyReason: () => {
        const running = agent();
        return running ? running.notReadyReason() : `${source.description} is starting`;
      },
    });
    logger.info(`health endpoints on ${config.healthAddr} (/healthz, /readyz)`);
    return health;
  } catch (err) {
    // A live agent without its probes would be restarted by the kubelet for nothing: fail now. A replay needs none.
    if (!isReplay(config.sourceSpec)) throw err;
    logger.warn(`health endpoints off: ${(err as Error).message}`);
    return undefined;
  }
}

async function assemble(opts: AgentOptions, source: Source, deadlines: ShutdownDeadlines, health: HealthServer | undefined): Promise<Pipeline> {
  const { config, logger } = opts;
  const exportLog = new SampledLog(60_000);
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
    traces: config.traces === 'on',
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
  if (config.exportSpecs.some((e) => e.kind === 'otlp')) for (const problem of otlpTlsEnvProblems(opts.env)) logger.error(problem);
  const enricher = await createEnricher(config, opts.env, logger);
  logger.info(enricher.description);
  const { name, description } = INSTRUMENTS.enrichOperations;
  telemetry.observeTotals(name, description, 'operation', () => enricher.counters);
  await enricher.start();
  const wantView = config.view === 'on' || (config.view === 'auto' && opts.stdout.isTTY === true);
  // the live view's code is loaded only when it runs
  const stats = wantView ? new (await import('./view/stats.ts')).LiveStats({ slowMs: config.slowMs }) : undefined;
  return { source, telemetry, enricher, deadlines, stats, health };
}

export class Agent {
  readonly counters: AgentCounters = { lines: 0, events: 0, rejected: 0, restarts: 0, lostEvents: 0 };
  /** Resolves when the source has ended (replay EOF, or after stop()) and telemetry is flushed, with what telemetry
   * could not deliver. */
  readonly done: Promise<DeliveryReport>;
  readonly #opts: AgentOptions;
  readonly #pipeline: Pipeline;
  #decoder: LineDecoder;
  /** the tool the auto source chose (undefined until it chooses, and for the other sources) */
  #selectedTool: ToolName | undefined;
  #view: LiveView | undefined;
  #stopping: Promise<void> | undefined;
  #shuttingDown = false;
  readonly #rejectLog = new SampledLog(10_000);
  #begin!: () => void;

  private constructor(opts: AgentOptions, pipeline: Pipeline) {
    this.#opts = opts;
    this.#pipeline = pipeline;
    this.#decoder = new LineDecoder(pipeline.source.format());
    // reading starts once start() has everything in place (health endpoints, view)
    this.done = new Promise<void>((resolve) => (this.#begin = resolve)).then(() => this.#run());
  }

  static async start(opts: AgentOptions): Promise<Agent> {
    const { config, logger } = opts;
    const deadlines = new ShutdownDeadlines(config.shutdownTimeoutMs);
    const source = await prepareSource(config, deadlines, logger);
    let created: Agent | undefined;
    const health = await startHealth(config, source, logger, () => created);
    const agent = (created = new Agent(opts, await assemble(opts, source, deadlines, health)));
    if (agent.#pipeline.stats) agent.#view = await agent.#startView(agent.#pipeline.stats);
    logger.info(`reading ${agent.#pipeline.source.description}; exporting to ${config.exports.join(', ')}; slow threshold ${config.slowMs} ms`);
    agent.#begin();
    return agent;
  }

  /** /healthz: alive until shutdown begins. */
  get alive(): boolean {
    return !this.#shuttingDown;
  }

  /** Why /readyz is 503, or undefined when ready. A live tool must print a format the parser knows: otherwise every
   * line it prints is rejected, and the agent is up but measures nothing. */
  notReadyReason(): string | undefined {
    const source = this.#pipeline.source;
    if (!source.ready()) return `${this.#sourceName()} is not attached and reading`;
    if (source.format() !== 'detect' && !this.#decoder.formatKnown) {
      return `${this.#sourceName()} prints no known format (its header is not one of libbpf-tools' or BCC's; see the rejected lines)`;
    }
    return undefined;
  }

  /** What the messages call the source: the tool in use once known, else the source's description. */
  #sourceName(): string {
    return this.#selectedTool ?? this.#pipeline.source.description;
  }

  async #startView(stats: LiveStats): Promise<LiveView> {
    const { LiveView, renderTable } = await import('./view/table.ts');
    const { source, enricher } = this.#pipeline;
    const view = new LiveView(this.#opts.stdout, (w, r) =>
      renderTable(
        stats,
        {
          source: this.#sourceName(),
          ready: source.ready(),
          linesRejected: this.counters.rejected,
          restarts: this.counters.restarts,
          lostEvents: this.counters.lostEvents,
          enrichment: enricher.enabled ? 'k8s: on' : 'k8s: off',
          exports: this.#opts.config.exports.join(','),
        },
        w,
        r,
      ),
    );
    view.start();
    return view;
  }

  #hooks(): SourceHooks {
    const { logger } = this.#opts;
    const { source, telemetry, enricher, stats } = this.#pipeline;
    return {
      line: (text, readAtMs) => {
        // start-up time as an operator (and bench/startup.ts) sees it: performance.now() counts from process start
        if (this.counters.lines++ === 0) logger.debug(`first line read ${Math.round(performance.now())} ms after process start`);
        const result = this.#decoder.decode(text, readAtMs);
        if (result.kind === 'event') {
          const event = result.event;
          enricher.enrich(event);
          telemetry.record(event);
          stats?.observe(event);
          this.counters.events++;
        } else if (result.kind === 'reject') {
          this.counters.rejected++;
          telemetry.self.lineRejected(result.reason);
          const detail = 'detail' in result && result.detail ? `: ${String(result.detail)}` : '';
          const msg = this.#rejectLog.sample('reject', `rejected a ${this.#sourceName()} line (${result.reason}${detail}): ${JSON.stringify(text.slice(0, 200))}`);
          if (msg) logger.warn(msg);
        }
      },
      lostEvents: (count) => {
        this.counters.lostEvents += count;
        telemetry.self.lostEvents(count);
      },
      restart: (exitDescription) => {
        this.counters.restarts++;
        telemetry.self.toolRestarted(source.format() === 'detect' ? 'replay' : String(source.format()));
        logger.warn(`${this.#sourceName()} exited (${exitDescription}); restarting with backoff`);
      },
      diagnostic: (message) => logger.error(message),
      toolSelected: (tool: ToolName, reason: string) => {
        this.#decoder = new LineDecoder(tool);
        this.#selectedTool = tool;
        logger.info(`source auto: using ${tool} (${reason})`);
      },
    };
  }

  async #run(): Promise<DeliveryReport> {
    let report: DeliveryReport | undefined;
    try {
      await this.#pipeline.source.run(this.#hooks());
    } finally {
      report = await this.#finish();
    }
    return report;
  }

  async #finish(): Promise<DeliveryReport> {
    this.#shuttingDown = true;
    this.#view?.stop();
    const { enricher, telemetry, health } = this.#pipeline;
    await enricher.stop();
    const report = await telemetry.shutdown();
    await health?.close();
    const c = this.counters;
    const { logger, config } = this.#opts;
    logger.info(`stopped: ${c.lines} lines read, ${c.events} connect events, ${c.rejected} rejected, ${c.restarts} tool restarts, ${c.lostEvents} events lost in the kernel`);
    if (report.logsRateLimited > 0) {
      logger.warn(`${report.logsRateLimited} slow-connection log records dropped by the rate limit (--slow-log-rate ${config.slowLogRate}/s, --slow-log-burst ${config.slowLogBurst}); counted in connlat.logs.dropped{reason=rate_limit}`);
    }
    if (report.spansRateLimited > 0) {
      logger.warn(`${report.spansRateLimited} connect spans dropped by the rate limit (--slow-log-rate ${config.slowLogRate}/s, --slow-log-burst ${config.slowLogBurst}); counted in connlat.spans.dropped{reason=rate_limit}`);
    }
    if (report.undelivered !== undefined) logger.error(`not delivered: ${report.undelivered}`);
    return report;
  }

  /** SIGINT the tool, drain its remaining lines, flush metrics and logs. Idempotent. `signalAtMs`: when the signal
   * came (the shutdown budget counts from it). */
  stop(signalAtMs?: number): Promise<void> {
    this.#stopping ??= (async () => {
      this.#pipeline.deadlines.begin(signalAtMs);
      this.#shuttingDown = true;
      this.#begin(); // a stop before reading began: the source starts and stops at once
      await this.#pipeline.source.stop();
      await this.done.catch(() => undefined);
    })();
    return this.#stopping;
  }
}
