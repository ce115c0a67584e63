// The built connlat-probe (scripts/build-probe.sh) run as a child process: its stdout lines and stderr kept apart,
// stopped with a signal. Tests that need it skip, with the reason, when it is not built or BPF cannot load here.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BUILD_SCRIPT = fileURLToPath(new URL('../../../scripts/build-probe.sh', import.meta.url));

export type ProbeBinary = { path: string; skip?: undefined } | { path?: undefined; skip: string };

/** CONNLAT_PROBE overrides; otherwise the cached build of the current sources (`build-probe.sh --check`). */
export function findProbe(): Promise<ProbeBinary> {
  const override = process.env.CONNLAT_PROBE;
  if (override) return Promise.resolve(existsSync(override) ? { path: override } : { skip: `CONNLAT_PROBE=${override} does not exist` });
  return new Promise((resolve) => {
    execFile(BUILD_SCRIPT, ['--check'], { timeout: 30_000 }, (err, stdout) => {
      const path = /^connlat-probe=(.+)$/m.exec(stdout)?.[1];
      if (err || path === undefined) resolve({ skip: 'connlat-probe is not built for these sources; build it with: scripts/build-probe.sh' });
      else resolve({ path });
    });
  });
}

/** A running connlat-probe. */
export class ProbeRun {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #stdout = '';
  #stderr = '';

  constructor(path: string, args: string[] = []) {
    this.child = spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => (this.#stdout += s));
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.#stderr += s));
    this.exited = new Promise((resolve) => {
      this.child.once('error', () => resolve({ code: null, signal: null }));
      this.child.once('exit', (code, signal) => resolve({ code, signal }));
    });
  }

  /** Complete stdout lines so far (a partial last line is left out). */
  lines(): string[] {
    const text = this.#stdout;
    return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').slice(0, -1);
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /**
   * Resolves once the header is out (the tool attached), rejects when it exits first or after timeoutMs.
   * `header`: how the header line starts (tcpstates, run through this class too, prints "SKADDR").
   */
  async attached(timeoutMs = 15_000, header = 'TIME(s)'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (!this.lines().some((l) => l.startsWith(header))) {
      if (exited) throw new Error(`exited before attaching: ${this.#stderr.trim() || '(no stderr)'}`);
      if (Date.now() > deadline) throw new Error(`did not attach in ${timeoutMs} ms: ${this.#stderr.trim()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends `signal` and waits for the exit (SIGKILL after graceMs). */
  async stop(signal: NodeJS.Signals = 'SIGINT', graceMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
