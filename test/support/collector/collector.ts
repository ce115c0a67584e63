// Our gateway collector (otelcol-connlat, built by scripts/build-collector.sh) as a real process for tests:
// find the binary, validate configs, start it on free loopback ports and wait for its health_check.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../net.ts';
import { goPanicBlock } from '../go-panic.ts';

export { freePort };

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const OTEL_CONFIG_DIR = `${REPO_ROOT}otel-config`;
export const BUILD_SCRIPT = `${REPO_ROOT}scripts/build-collector.sh`;
/** The test variant: merged over otel-config/gateway.yaml, swaps backends for local stand-ins. */
export const E2E_OVERLAY = fileURLToPath(new URL('./e2e-overlay.yaml', import.meta.url));

export type CollectorBinary = { path: string; skip?: undefined } | { path?: undefined; skip: string };

/**
 * Where the built collector is. CONNLAT_OTELCOL overrides; otherwise the cache path scripts/build-collector.sh
 * reports for the current manifest. `skip` says why it cannot run and how to build it.
 */
export async function findCollector(): Promise<CollectorBinary> {
  const override = process.env.CONNLAT_OTELCOL;
  if (override) {
    return existsSync(override) ? { path: override } : { skip: `CONNLAT_OTELCOL=${override} does not exist` };
  }
  let path: string;
  try {
    path = (await run(BUILD_SCRIPT, ['--path'], { env: process.env, timeoutMs: 10_000 })).stdout.trim();
  } catch (err) {
    return { skip: `cannot locate the collector (${(err as Error).message.split('\n')[0]})` };
  }
  if (!existsSync(path)) {
    return { skip: `collector not built (${path}); build it with: scripts/build-collector.sh` };
  }
  return { path };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion (never rejects on a non-zero exit; rejects only if it cannot start or times out). */
export function run(
  file: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; timeoutMs: number; cwd?: string },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env: opts.env, timeout: opts.timeoutMs, cwd: opts.cwd ?? REPO_ROOT, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { killed?: boolean; code?: unknown; signal?: NodeJS.Signals }) | null;
        if (e && (typeof e.code === 'string' || e.killed)) {
          reject(new Error(`${file} ${args.join(' ')}: ${e.killed ? `timed out after ${opts.timeoutMs} ms` : e.message}`));
          return;
        }
        resolve({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        });
      },
    );
  });
}

/** `otelcol-connlat validate --config A --config B ...` with exactly `env` (plus PATH/HOME). */
export function validateConfigs(binary: string, configs: string[], env: Record<string, string>): Promise<RunResult> {
  const args = ['validate', ...configs.map((c) => `--config=${c}`)];
  return run(binary, args, { env: baseEnv(env), timeoutMs: 30_000 });
}

/** A minimal environment: nothing from the developer's shell leaks into what a config sees. */
export function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...extra };
}

/** A TCP port free on 127.0.0.1 right now (the kernel picks it; tiny race with other processes, fine for tests). */

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `probe` until it returns a value (not undefined) or the deadline passes; then throws with `what`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      const why = lastErr instanceof Error ? `: ${lastErr.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(everyMs);
  }
}

/**
 * A long-running child process with its output kept for diagnostics, stopped by signal with a kill fallback.
 * With `logFile`, its whole stdout and stderr also go to that file (the in-memory copy is bounded).
 */
export class ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string | undefined;
  /** Resolves once the process has exited and its output has been read to the end (or 2 s after exit). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = '';
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private stopRequested = false;

  constructor(name: string, file: string, args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; logFile?: string }) {
    this.name = name;
    this.logFile = opts.logFile;
    this.child = spawn(file, args, { env: opts.env, cwd: opts.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
    const keep = (chunk: Buffer) => {
      log?.write(chunk);
      this.out += chunk.toString('utf8');
      if (this.out.length > 4 << 20) this.out = this.out.slice(-(2 << 20)); // bounded: keep the recent half
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    // 'close' comes after 'exit' once stdout and stderr are drained: a crash report is written just before the exit,
    // so waiting for it keeps the report whole. A grandchild holding the pipes open must not hang us: 2 s at most.
    const closed = new Promise<void>((resolve) => this.child.on('close', () => resolve()));
    this.exited = new Promise((resolve) => {
      const done = (info: { code: number | null; signal: NodeJS.Signals | null }) => {
        this.exitInfo ??= info;
        let timer: NodeJS.Timeout | undefined;
        void Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, 2000)))]).then(() => {
          clearTimeout(timer);
          log?.end();
          resolve(this.exitInfo!);
        });
      };
      this.child.on('error', (err) => {
        this.out += `\n[spawn error] ${err.message}\n`;
        done({ code: null, signal: null });
      });
      this.child.on('exit', (code, signal) => done({ code, signal }));
    });
    liveProcesses.add(this);
    void this.exited.then(() => liveProcesses.delete(this));
  }

  get output(): string {
    return this.out;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** True once it has exited without stop() having been called (a crash, or it quit by itself). */
  get exitedUnexpectedly(): boolean {
    return !this.running && !this.stopRequested;
  }

  /** Sends `signal`, waits up to graceMs, then SIGKILL. Resolves with how it exited. Idempotent. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) {
      this.stopRequested = true;
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }

  /** The last `lines` lines of output, for assertion messages. */
  tail(lines = 40): string {
    return this.out.split('\n').slice(-lines).join('\n');
  }

  /**
   * For a failure message: how it exited, the Go crash report if its output holds one (else the tail), and the file
   * with its whole output.
   */
  report(): string {
    const how = this.exitInfo ? `exited (${this.exitInfo.signal ?? `status ${this.exitInfo.code}`})` : 'running';
    const crash = goPanicBlock(this.out);
    const where = this.logFile ? `; whole output: ${this.logFile}` : '';
    return crash ? `${this.name} ${how}${where}; its crash:\n${crash}` : `${this.name} ${how}${where}; last lines:\n${this.tail()}`;
  }
}

/**
 * Runs a test body while `procs()` (collectors, backends ...) run; if one of them exited unexpectedly (a crash), the
 * failure says so first, with its crash report, instead of only the symptom the body ran into next (a refused
 * fetch, a missing record). A body that passed still fails if one crashed.
 */
export async function reportingCrashes<T>(procs: () => ManagedProcess[], body: () => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await body();
  } catch (err) {
    await sleep(100); // a crash the body ran into: its 'exit' may be a moment behind the refused connection
    const crashed = await crashReports(procs());
    if (crashed) throw new Error(`${crashed}\n(the test then failed: ${(err as Error).message})`, { cause: err });
    throw err;
  }
  const crashed = await crashReports(procs());
  if (crashed) throw new Error(crashed);
  return result;
}

async function crashReports(procs: ManagedProcess[]): Promise<string | undefined> {
  const crashed = procs.filter((p) => p.exitedUnexpectedly);
  for (const p of crashed) await p.exited; // its output read to the end
  return crashed.length ? crashed.map((p) => p.report()).join('\n\n') : undefined;
}

// Last resort: if the test runner exits with children still up (a crash between start and teardown), kill them
// so no collector/Prometheus/agent outlives the test run.
const liveProcesses = new Set<ManagedProcess>();
process.on('exit', () => {
  for (const p of liveProcesses) p.child.kill('SIGKILL');
});

/**
 * Polls `ready` until it says true; rejects as soon as `proc` exits instead (a probe that threw on exit would only
 * be retried by waitFor until its deadline).
 */
export async function untilReady(proc: ManagedProcess, what: string, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const up = await waitFor(what, async () => (!proc.running ? false : (await ready()) ? true : undefined), timeoutMs);
  if (!up) {
    const { code, signal } = await proc.exited;
    throw new Error(`${proc.name} exited early (${signal ?? `status ${code}`}) while waiting for ${what}`);
  }
}

/**
 * Runs `attempt` again, up to 3 times in all, when it failed because a port picked by freePort() was taken by
 * another process before the program bound it (other tests run at the same time).
 */
export async function retryOnPortRace<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (i >= 3 || !/address already in use/i.test((err as Error).message)) throw err;
    }
  }
}

export interface StartCollectorOptions {
  binary: string;
  /** --config files, merged in order. Default: gateway.yaml + the e2e test overlay. */
  configs?: string[];
  /**
   * Extra env for the configs (CONNLAT_TEST_OUT_DIR, CONNLAT_TEST_REMOTE_WRITE_URL, tenant settings ...). Without
   * CONNLAT_GATEWAY_STORAGE_DIR the persistent queues go to a fresh temporary folder, removed by stop(); a test that
   * restarts the gateway over the same queues passes its own.
   */
  env?: Record<string, string>;
  startTimeoutMs?: number;
  /** A file that gets the process's whole stdout and stderr (appended to), for a crash's full report. */
  logFile?: string;
}

export interface RunningCollector {
  process: ManagedProcess;
  /** host:port of the OTLP gRPC receiver; agents use http://<grpc> as OTEL_EXPORTER_OTLP_ENDPOINT. */
  grpc: string;
  http: string;
  healthUrl: string;
  selfMetricsUrl: string;
  stop(): Promise<void>;
}

/** Env that puts every listener of gateway.yaml on a free 127.0.0.1 port (receivers, health_check, self metrics). */
export async function loopbackEnv(): Promise<Record<string, string> & { grpc: string; http: string; health: string; selfMetrics: string }> {
  const [grpcPort, httpPort, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  return {
    grpc: `127.0.0.1:${grpcPort}`,
    http: `127.0.0.1:${httpPort}`,
    health: `127.0.0.1:${healthPort}`,
    selfMetrics: `127.0.0.1:${metricsPort}`,
    CONNLAT_GATEWAY_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpcPort}`,
    CONNLAT_GATEWAY_OTLP_HTTP_ENDPOINT: `127.0.0.1:${httpPort}`,
    CONNLAT_GATEWAY_HEALTH_ENDPOINT: `127.0.0.1:${healthPort}`,
    CONNLAT_GATEWAY_SELF_METRICS_HOST: '127.0.0.1',
    CONNLAT_GATEWAY_SELF_METRICS_PORT: String(metricsPort),
  };
}

/**
 * Starts the collector on free loopback ports and resolves once its health_check reports ready (a port taken by
 * another process meanwhile: tried again on new ports).
 */
export function startCollector(opts: StartCollectorOptions): Promise<RunningCollector> {
  return retryOnPortRace(() => startCollectorOnce(opts));
}

async function startCollectorOnce(opts: StartCollectorOptions): Promise<RunningCollector> {
  const configs = opts.configs ?? [`${OTEL_CONFIG_DIR}/gateway.yaml`, E2E_OVERLAY];
  const { grpc: _g, http: _h, health: _he, selfMetrics: _s, ...ports } = await loopbackEnv();
  const ownStorage = opts.env?.CONNLAT_GATEWAY_STORAGE_DIR ? undefined : await mkdtemp(join(tmpdir(), 'connlat-gateway-queue-'));
  const removeOwnStorage = () => (ownStorage ? rm(ownStorage, { recursive: true, force: true }) : Promise.resolve());
  const env = baseEnv({ ...ports, ...(ownStorage ? { CONNLAT_GATEWAY_STORAGE_DIR: ownStorage } : {}), ...opts.env });
  // Listeners from env: free ports by default; a caller's env may pin them (a restart on the same ports).
  const grpc = env.CONNLAT_GATEWAY_OTLP_GRPC_ENDPOINT!;
  const http = env.CONNLAT_GATEWAY_OTLP_HTTP_ENDPOINT!;
  const health = env.CONNLAT_GATEWAY_HEALTH_ENDPOINT!;
  const selfMetrics = `${env.CONNLAT_GATEWAY_SELF_METRICS_HOST}:${env.CONNLAT_GATEWAY_SELF_METRICS_PORT}`;
  const proc = new ManagedProcess('otelcol-connlat', opts.binary, configs.map((c) => `--config=${c}`), { env, logFile: opts.logFile });
  const healthUrl = `http://${health}/`;
  try {
    await untilReady(
      proc,
      'the collector health_check',
      async () => (await fetch(healthUrl, { signal: AbortSignal.timeout(1000) })).status === 200,
      opts.startTimeoutMs ?? 30_000,
    );
  } catch (err) {
    await proc.stop('SIGKILL');
    await removeOwnStorage();
    throw new Error(`${(err as Error).message}\n${proc.report()}`);
  }
  return {
    process: proc,
    grpc,
    http,
    healthUrl,
    selfMetricsUrl: `http://${selfMetrics}/metrics`,
    async stop() {
      await proc.stop('SIGTERM', 15_000);
      await removeOwnStorage();
    },
  };
}

/** PIDs of every live descendant of `pid` (children, grandchildren ...), from /proc. */
export function descendantPids(pid: number): number[] {
  const parentOf = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses, so split after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const kids = parentOf.get(ppid) ?? [];
      kids.push(Number(entry));
      parentOf.set(ppid, kids);
    } catch {
      // exited while we looked
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const k of parentOf.get(p) ?? []) {
      out.push(k);
      walk(k);
    }
  };
  walk(pid);
  return out;
}
