// A real Prometheus (Debian's /usr/bin/prometheus) on a loopback port with a temporary TSDB, accepting remote
// write: the stand-in for Mimir in the gateway e2e test. Queried with PromQL over its HTTP API; with exemplar storage
// on, exemplars sent by remote write are queried back too.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess, freePort, waitFor } from './collector.ts';

export const PROMETHEUS_BIN = process.env.CONNLAT_PROMETHEUS ?? '/usr/bin/prometheus';

export interface PromSample {
  metric: Record<string, string>;
  /** The sample value as a number (NaN stays NaN). */
  value: number;
}

/** An instant-query client of a Prometheus HTTP API (Prometheus, VictoriaMetrics). */
export interface PromQueryApi {
  /** Instant PromQL query; throws on an API error (with the server's message). */
  query(promql: string): Promise<PromSample[]>;
  /** Sum of an instant query's values (0 when it returns no series). */
  queryScalar(promql: string): Promise<number>;
}

export interface RunningPrometheus extends PromQueryApi {
  process: ManagedProcess;
  url: string;
  /** Where remote-write clients send: http://HOST:PORT/api/v1/write */
  remoteWriteUrl: string;
  /** /api/v1/query_exemplars over the last `sinceMs` (needs startPrometheus({ exemplars: true })). */
  queryExemplars(promql: string, sinceMs: number): Promise<PromExemplarSeries[]>;
  stop(): Promise<void>;
}

export interface PromExemplarSeries {
  seriesLabels: Record<string, string>;
  exemplars: Array<{ labels: Record<string, string>; value: number; timestamp: number }>;
}

/**
 * An instant query against the Prometheus HTTP API at `baseUrl` (Prometheus, VictoriaMetrics); throws on an API error
 * with the server's message. `params` are extra query-string parameters (VictoriaMetrics' nocache=1).
 */
export async function queryPromApi(baseUrl: string, promql: string, params: Record<string, string> = {}): Promise<PromSample[]> {
  const qs = new URLSearchParams({ query: promql, ...params });
  const res = await fetch(`${baseUrl}/api/v1/query?${qs}`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let body: {
    status?: string;
    error?: string;
    data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
  };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error(`PromQL ${promql}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  }
  if (body.status !== 'success' || !body.data) throw new Error(`PromQL ${promql}: ${body.error ?? `HTTP ${res.status}`}`);
  if (body.data.resultType !== 'vector') throw new Error(`PromQL ${promql}: expected a vector, got ${body.data.resultType}`);
  return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

/** Sum of samples' values (0 for none): an instant query as one number. */
export function sumOf(samples: PromSample[]): number {
  return samples.reduce((sum, s) => sum + s.value, 0);
}

/** Why Prometheus cannot run here, or undefined when it can. */
export function prometheusSkipReason(): string | undefined {
  return existsSync(PROMETHEUS_BIN) ? undefined : `${PROMETHEUS_BIN} not found (apt-get install prometheus)`;
}

/**
 * `host`: the address to listen on (default 127.0.0.1); a cluster test binds the one its pods reach the host at.
 * `exemplars`: keep the exemplars remote write carries (--enable-feature=exemplar-storage).
 */
export async function startPrometheus(opts: { host?: string; exemplars?: boolean } = {}): Promise<RunningPrometheus> {
  const host = opts.host ?? '127.0.0.1';
  const dir = await mkdtemp(join(tmpdir(), 'connlat-prom-'));
  const port = await freePort();
  const config = join(dir, 'prometheus.yml');
  // No scrape jobs: every sample comes through remote write.
  await writeFile(config, 'global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\n');
  const proc = new ManagedProcess(
    'prometheus',
    PROMETHEUS_BIN,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=${host}:${port}`,
      '--web.enable-remote-write-receiver', // the flag in Prometheus 2.33+ (replaces --enable-feature=remote-write-receiver)
      '--storage.tsdb.retention.time=1d',
      '--log.level=warn',
      ...(opts.exemplars ? ['--enable-feature=exemplar-storage'] : []),
    ],
    { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: dir },
  );
  const url = `http://${host}:${port}`;
  const cleanup = async () => {
    await proc.stop('SIGTERM', 10_000);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      'Prometheus /-/ready',
      async () => {
        if (!proc.running) throw new Error(`prometheus exited early:\n${proc.tail()}`);
        const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
        return res.status === 200 ? true : undefined;
      },
      30_000,
    );
  } catch (err) {
    await cleanup();
    throw err;
  }

  const queryExemplars = async (promql: string, sinceMs: number): Promise<PromExemplarSeries[]> => {
    const end = Date.now() / 1000;
    const params = new URLSearchParams({ query: promql, start: String(end - sinceMs / 1000), end: String(end) });
    const res = await fetch(`${url}/api/v1/query_exemplars?${params}`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: Array<{ seriesLabels: Record<string, string>; exemplars: Array<{ labels: Record<string, string>; value: string; timestamp: number }> }>;
    };
    if (body.status !== 'success' || !body.data) throw new Error(`exemplars of ${promql}: ${body.error ?? res.status}`);
    return body.data.map((s) => ({ seriesLabels: s.seriesLabels, exemplars: s.exemplars.map((e) => ({ ...e, value: Number(e.value) })) }));
  };

  return {
    process: proc,
    url,
    queryExemplars,
    remoteWriteUrl: `${url}/api/v1/write`,
    query: (promql) => queryPromApi(url, promql),
    queryScalar: async (promql) => sumOf(await queryPromApi(url, promql)),
    stop: cleanup,
  };
}
