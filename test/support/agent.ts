// Runs the real agent (bin/connlat.js) as a child process, the way an operator would, and reads what it exported.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CONNLAT_BIN = fileURLToPath(new URL('../../bin/connlat.js', import.meta.url));

export interface AgentRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the agent to completion (replay sources end at EOF). */
export function runAgent(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<AgentRun> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CONNLAT_BIN, ...args], { env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input, 'latin1');
    else child.stdin!.end();
  });
}

export interface LiveAgent {
  child: ChildProcess;
  stderr(): string;
  /** Sends the signal and waits for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<void>;
}

/** Starts a long-running agent (tool sources). Killed with SIGKILL by stop()'s timeout if it hangs. */
export function startAgent(args: string[], env: NodeJS.ProcessEnv = {}): LiveAgent {
  const child = spawn(process.execPath, [CONNLAT_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.resume();
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    stderr: () => err,
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async waitForStderr(re, timeoutMs = 15_000) {
      const start = Date.now();
      while (!re.test(err)) {
        if (child.exitCode !== null) throw new Error(`agent exited (${child.exitCode}) before ${re}: ${err}`);
        if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${re} in agent stderr: ${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** OTLP/JSON lines file -> { metrics requests, logs requests, traces requests }. */
export function readOtlpJson(path: string): { metrics: any[]; logs: any[]; traces: any[] } {
  const metrics: any[] = [];
  const logs: any[] = [];
  const traces: any[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const req = JSON.parse(line);
    if (req.resourceMetrics) metrics.push(req);
    if (req.resourceLogs) logs.push(req);
    if (req.resourceSpans) traces.push(req);
  }
  return { metrics, logs, traces };
}
