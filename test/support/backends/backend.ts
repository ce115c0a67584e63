// What the three OTLP backends (VictoriaMetrics, VictoriaLogs, Jaeger v2; built by scripts/build-backends.sh) share
// as test processes: finding the cached binary, and one restartable process on fixed loopback ports with its own
// temporary data directory. stop() keeps the data and the ports, so start() brings the same backend back (an outage
// test stops a backend for a while and restarts it); close() stops it for good and deletes the directory.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagedProcess, REPO_ROOT, freePort, retryOnPortRace, run, untilReady } from '../collector/collector.ts';

export const BUILD_BACKENDS = `${REPO_ROOT}scripts/build-backends.sh`;

/** The backends scripts/build-backends.sh builds (one folder each under tools/backends/). */
export const BACKEND_NAMES = ['victoria-metrics', 'victoria-logs', 'jaeger'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export type BackendBinary = { path: string; skip?: undefined } | { path?: undefined; skip: string };

/** CONNLAT_VICTORIA_METRICS, CONNLAT_VICTORIA_LOGS, CONNLAT_JAEGER: a binary to use instead of the cached build. */
export function overrideVariable(name: BackendName): string {
  return `CONNLAT_${name.toUpperCase().replaceAll('-', '_')}`;
}

/**
 * Where each backend's binary is: the override variable, else the cache path `build-backends.sh --path` reports for
 * the pinned manifests. `skip` says why one cannot run and how to build it.
 */
export async function findBackends(): Promise<Record<BackendName, BackendBinary>> {
  const paths = new Map<string, string>();
  let locateError = '';
  try {
    const r = await run(BUILD_BACKENDS, ['--path'], { env: process.env, timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(r.stderr.trim() || `exit ${r.code}`);
    for (const line of r.stdout.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) paths.set(line.slice(0, eq), line.slice(eq + 1));
    }
  } catch (err) {
    locateError = (err as Error).message.split('\n')[0]!;
  }
  const found = {} as Record<BackendName, BackendBinary>;
  for (const name of BACKEND_NAMES) {
    const variable = overrideVariable(name);
    const override = process.env[variable];
    const path = override ?? paths.get(name);
    found[name] = override
      ? existsSync(override) ? { path: override } : { skip: `${variable}=${override} does not exist` }
      : !path
        ? { skip: `cannot locate ${name} (${locateError || 'build-backends.sh --path did not name it'})` }
        : existsSync(path)
          ? { path }
          : { skip: `${name} not built (${path}); build it with: scripts/build-backends.sh` };
  }
  return found;
}

/** One backend's binary, or why it cannot run. */
export async function findBackend(name: BackendName): Promise<BackendBinary> {
  return (await findBackends())[name];
}

/** A fresh temporary directory for one backend instance (its data, and its config file where it has one). */
export function backendDir(name: BackendName): Promise<string> {
  return mkdtemp(join(tmpdir(), `connlat-${name}-`));
}

export interface BackendProcessOptions {
  name: BackendName;
  binary: string;
  /** Fixed for the instance's life, so a restart listens where clients already send. */
  args: string[];
  /** The instance's temporary directory: kept by stop(), deleted by close(). */
  dir: string;
  /** Resolves true once the backend serves (health endpoint 200). */
  ready: () => Promise<boolean>;
  startTimeoutMs?: number;
}

/** A backend as a real process that can be stopped and started again on the same ports and data directory. */
export class BackendProcess {
  readonly name: BackendName;
  readonly dir: string;
  private readonly opts: BackendProcessOptions;
  /** Every run so far, the current (or last) one last. */
  private readonly runs: ManagedProcess[] = [];

  constructor(opts: BackendProcessOptions) {
    this.opts = opts;
    this.name = opts.name;
    this.dir = opts.dir;
  }

  /** The process of the current (or last) run. */
  get process(): ManagedProcess | undefined {
    return this.runs.at(-1);
  }

  get running(): boolean {
    return this.process?.running ?? false;
  }

  /** Starts the backend (again) and resolves once it is ready; throws with its output when it does not come up. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    const proc = new ManagedProcess(this.name, this.opts.binary, this.opts.args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' },
      cwd: this.dir,
    });
    this.runs.push(proc);
    try {
      await untilReady(proc, `${this.name} to be ready`, this.opts.ready, this.opts.startTimeoutMs ?? 60_000);
    } catch (err) {
      await proc.stop('SIGKILL');
      throw new Error(`${(err as Error).message}\n${this.name} output:\n${proc.tail()}`);
    }
  }

  /**
   * Stops the backend with SIGTERM (all three flush their data on it), keeping its data directory and ports for a
   * later start(). Resolves with how it exited; idempotent.
   */
  async stop(graceMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.process ? this.process.stop('SIGTERM', graceMs) : { code: 0, signal: null };
  }

  /** Stops the backend and deletes its directory. */
  async close(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** The last lines of output across every run. */
  tail(lines = 40): string {
    return this.runs.map((p) => p.output).join('').split('\n').slice(-lines).join('\n');
  }
}

/** Starts a new instance; when it does not come up, deletes its directory before throwing. */
export async function startNew(backend: BackendProcess): Promise<BackendProcess> {
  try {
    await backend.start();
  } catch (err) {
    await backend.close();
    throw err;
  }
  return backend;
}

/**
 * VictoriaMetrics or VictoriaLogs (same command-line conventions) on a free 127.0.0.1 port, data in a fresh
 * directory, ready once /health answers 200.
 */
export async function startVictoria(
  name: 'victoria-metrics' | 'victoria-logs',
  binary: string,
  args: string[],
): Promise<{ backend: BackendProcess; url: string }> {
  return retryOnPortRace(async () => {
    const dir = await backendDir(name);
    const url = `http://127.0.0.1:${await freePort()}`;
    const backend = new BackendProcess({
      name,
      binary,
      dir,
      args: [
        `-httpListenAddr=${url.slice('http://'.length)}`,
        `-storageDataPath=${join(dir, 'data')}`,
        '-retentionPeriod=1d',
        '-loggerLevel=WARN',
        ...args,
      ],
      ready: () => answers200(`${url}/health`),
    });
    return { backend: await startNew(backend), url };
  });
}

/** GET /internal/force_flush: VictoriaMetrics and VictoriaLogs make everything received so far searchable at once. */
export async function forceFlush(url: string, what: string): Promise<void> {
  await okText(await fetch(`${url}/internal/force_flush`, { signal: AbortSignal.timeout(5000) }), `${what} force_flush`);
}

/** GET `url` and report whether it answered 200 (false on any error: not up yet). */
export async function answers200(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** Throws with the status and body unless the response is 2xx; returns the body text. */
export async function okText(res: Response, what: string): Promise<string> {
  const text = await res.text();
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status}: ${text.slice(0, 500)}`);
  return text;
}
