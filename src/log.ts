// The agent's own diagnostics: one line per message on stderr, timestamped, level-tagged. Telemetry about
// connections never goes here; this is for the operator reading `kubectl logs`.
import { scrub } from './scrub.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function createLogger(level: LogLevel, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const min = RANK[level];
  const emit = (lvl: LogLevel, msg: string) => {
    if (RANK[lvl] < min) return;
    // Messages may quote untrusted text (tool stderr, COMM): keep them on one line.
    const clean = scrub(msg, { replacement: ' ' });
    write(`${new Date().toISOString()} ${lvl.toUpperCase().padEnd(5)} ${clean}\n`);
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}

/** Logs at most once per interval per key; counts what it suppressed and says so on the next emit. */
export class SampledLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  private readonly intervalMs: number;
  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }
  /** Returns the message to log (with a suppressed count) or undefined when it must stay quiet. */
  sample(key: string, msg: string, now = Date.now()): string | undefined {
    const entry = this.last.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return undefined;
    }
    const suffix = entry && entry.suppressed > 0 ? ` (${entry.suppressed} more like this since the last report)` : '';
    this.last.set(key, { at: now, suppressed: 0 });
    return msg + suffix;
  }
}
