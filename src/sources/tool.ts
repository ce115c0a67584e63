// ToolSource: runs one libbpf-tools program under `stdbuf -oL` (they block-buffer stdout in a pipe), delivers its
// stdout lines, diagnoses its stderr, and supervises it: restart with jittered exponential backoff, graceful stop by
// SIGINT (the tools handle SIGINT only; SIGTERM would lose buffered output), SIGKILL after a timeout.
import { constants, readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { release as osRelease } from 'node:os';
import { delimiter, join } from 'node:path';
import type { ResultPromise } from 'execa';
import type { ToolName } from '../event.ts';
import type { Source, SourceHooks } from './types.ts';
import { Backoff, type BackoffOptions } from '../backoff.ts';
import { readLines } from './lines.ts';
import { scrub } from '../scrub.ts';
import { StderrDiagnoser, type StderrKind } from './stderr.ts';
import { ensureTracefs } from './tracefs.ts';
import { execaModule } from '../lazy.ts';

/** This process's effective capabilities (hex), which the tool inherits; undefined where /proc is not readable. */
function ownCapEff(): string | undefined {
  try {
    return /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'latin1'))?.[1];
  } catch {
    return undefined;
  }
}

export interface EarlyExit {
  /** e.g. "tcpconnlat exited with code 1" */
  exit: string;
  /** Failure kinds seen on stderr during that run, with the first line of each. */
  kinds: ReadonlyMap<StderrKind, string>;
}

export interface ToolSourceOptions {
  tool: ToolName;
  path: string;
  args?: string[];
  stdbufPath?: string;
  backoff?: Partial<BackoffOptions>;
  /** SIGKILL this long after SIGINT (default 5000). */
  stopTimeoutMs?: number;
  /** ready() needs the run to be up this long after its header (default 1000). */
  readyStableMs?: number;
  /** Jitter source in [0, 1] (default Math.random); tests pin it. */
  random?: () => number;
  /** Kernel release for capability advice (default os.release()). */
  kernelRelease?: string;
  /** Called when a run ends before the tool printed its header; return false to stop supervising (run resolves). */
  onEarlyExit?: (info: EarlyExit) => boolean;
  /** Called for each failure kind on stderr before the header (auto stops a tcpconnlat that failed to attach). */
  onFailureBeforeHeader?: (kind: StderrKind, line: string) => void;
  /** Called when a run printed its header (the tool attached). */
  onHeader?: () => void;
  /** Failure kinds the caller explains itself (auto's fallback on 'attach'). */
  silence?: StderrKind[];
}

export const DEFAULT_STOP_TIMEOUT_MS = 5000;

/** Resolves a command name via PATH (or checks a path) to an executable file; undefined when there is none. */
export async function findExecutable(nameOrPath: string): Promise<string | undefined> {
  const candidates = nameOrPath.includes('/')
    ? [nameOrPath]
    : (process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, nameOrPath));
  for (const c of candidates) {
    try {
      await access(c, constants.X_OK);
      return c;
    } catch {
      // next candidate
    }
  }
  return undefined;
}

export class ToolSource implements Source {
  readonly description: string;
  readonly #opts: ToolSourceOptions;
  readonly #backoff: Backoff;
  #child: ResultPromise | undefined;
  #childAlive = false;
  #headerAtMs: number | undefined;
  #stopping = false;
  #done: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #tracefs: Promise<void> | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  /** Times the tool was restarted by supervision. */
  restarts = 0;

  constructor(opts: ToolSourceOptions) {
    this.#opts = opts;
    this.#backoff = new Backoff(opts.backoff, opts.random);
    this.description = `${opts.tool} (${opts.path})`;
  }

  /** pid of the running tool (stdbuf execs it), undefined between runs. */
  get pid(): number | undefined {
    return this.#childAlive ? this.#child?.pid : undefined;
  }

  format(): ToolName {
    return this.#opts.tool;
  }

  ready(): boolean {
    if (!this.#childAlive || this.#stopping || this.#headerAtMs === undefined) return false;
    // The header alone is not enough, on the first run too: a tool that prints it and dies at once is crash-looping,
    // not ready. A run counts once it has stayed up readyStableMs after its header.
    return Date.now() - this.#headerAtMs >= (this.#opts.readyStableMs ?? 1000);
  }

  run(hooks: SourceHooks): Promise<void> {
    if (this.#done) return Promise.reject(new Error(`${this.description} is already running`));
    this.#done = this.#supervise(hooks);
    return this.#done;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    if (this.#child && this.#childAlive) this.#interrupt(this.#child);
    try {
      await this.#done?.catch(() => undefined);
    } finally {
      clearTimeout(this.#killTimer);
    }
  }

  /** SIGINT (the tools flush and exit on it), SIGKILL if it is still running after stopTimeoutMs. */
  #interrupt(child: ResultPromise): void {
    child.kill('SIGINT');
    clearTimeout(this.#killTimer);
    this.#killTimer = setTimeout(() => child.kill('SIGKILL'), this.#opts.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS);
  }

  async #supervise(hooks: SourceHooks): Promise<void> {
    const { tool, path } = this.#opts;
    const stdbuf = await findExecutable(this.#opts.stdbufPath ?? 'stdbuf');
    if (!stdbuf) throw new Error(`${tool}: stdbuf not found (${this.#opts.stdbufPath ?? 'stdbuf'} in PATH); install coreutils`);
    if (!(await findExecutable(path))) throw new Error(`${tool}: no executable at ${path}; install libbpf-tools (apt-get install libbpf-tools) or set --${tool}-path`);
    const release = this.#opts.kernelRelease ?? osRelease();
    const diagnoser = new StderrDiagnoser(tool, release, hooks, ownCapEff());
    diagnoser.silence('tracefs'); // handled below: we mount it when we may
    for (const kind of this.#opts.silence ?? []) diagnoser.silence(kind);

    while (!this.#stopping) {
      const startedMs = Date.now();
      diagnoser.beginRun();
      const exit = await this.#runOnce(stdbuf, hooks, diagnoser);
      if (diagnoser.runKinds.has('tracefs')) await this.#handleTracefs(hooks, diagnoser.runFirstLine.get('tracefs') ?? '');
      if (this.#stopping) break;
      if (this.#headerAtMs === undefined && this.#opts.onEarlyExit) {
        if (!this.#opts.onEarlyExit({ exit, kinds: new Map(diagnoser.runFirstLine) })) break;
      }
      const delay = this.#backoff.next(Date.now() - startedMs);
      this.restarts++;
      hooks.restart(`${exit}; restart ${this.restarts} in ${delay} ms`);
      await this.#sleep(delay);
    }
  }

  async #runOnce(stdbuf: string, hooks: SourceHooks, diagnoser: StderrDiagnoser): Promise<string> {
    const { tool, path, args = [] } = this.#opts;
    this.#headerAtMs = undefined;
    const child = execaModule().execa(stdbuf, ['-oL', path, ...args], {
      reject: false,
      buffer: false,
      stdin: 'ignore',
      killSignal: 'SIGINT',
      forceKillAfterDelay: false,
      cleanup: true,
    });
    this.#child = child;
    this.#childAlive = true;
    if (this.#stopping) this.#interrupt(child); // stop() came while we were starting it
    const out = child.stdout
      ? readLines(child.stdout, (text, readAtMs) => {
          if (this.#headerAtMs === undefined) {
            this.#headerAtMs = readAtMs;
            diagnoser.endOfStartup();
            this.#opts.onHeader?.();
          }
          hooks.line(text, readAtMs);
        })
      : Promise.resolve();
    const err = child.stderr
      ? readLines(child.stderr, (text) => {
          const { kind } = diagnoser.handle(text);
          if (this.#headerAtMs === undefined && kind !== 'other' && kind !== 'lost') this.#opts.onFailureBeforeHeader?.(kind, text);
        })
      : Promise.resolve();
    const result = await child;
    this.#childAlive = false;
    await Promise.allSettled([out, err]);
    diagnoser.endOfStartup();
    if (result.signal) return `${tool} killed by ${result.signal}`;
    if (result.exitCode === undefined) return `${tool} could not be started: ${scrub(result.shortMessage ?? '', { max: 200 })}`;
    const failure = diagnoser.primaryCause();
    return `${tool} exited with code ${result.exitCode}${failure ? ` (${scrub(failure[1], { max: 160 })})` : ''}`;
  }

  #handleTracefs(hooks: SourceHooks, line: string): Promise<void> {
    this.#tracefs ??= ensureTracefs().then(
      (r) => {
        if (r.mountedNow || !r.ok) hooks.diagnostic(`${this.#opts.tool}: ${r.message}`);
        else hooks.diagnostic(`${this.#opts.tool}: tracepoint not found although ${r.message} (${scrub(line, { max: 160 })})`);
      },
      (e: unknown) => hooks.diagnostic(`${this.#opts.tool}: could not check tracefs: ${scrub(String(e), { max: 200 })}`),
    );
    return this.#tracefs;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}
