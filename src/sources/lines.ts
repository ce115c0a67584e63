// Splits a byte stream into lines. The stream is decoded as latin1 (one char = one byte) because the parsers rely on
// byte-exact column positions and decode COMM themselves. A line longer than MAX_LINE_CHARS is delivered truncated
// and the rest of it dropped, so a hostile stream without newlines cannot grow our memory.
import type { Readable } from 'node:stream';

export const MAX_LINE_CHARS = 64 * 1024;

export type LineHandler = (text: string, readAtMs: number) => void;

export interface LineSplitter {
  /** Feed one decoded chunk; complete lines are delivered stamped with `readAtMs`. */
  push(chunk: string, readAtMs?: number): void;
  /** End of input: delivers a final unterminated line, if any. */
  end(readAtMs?: number): void;
}

export function createLineSplitter(onLine: LineHandler, maxLineChars = MAX_LINE_CHARS): LineSplitter {
  let pending = '';
  // True after a line hit the cap: everything up to its newline is dropped.
  let discarding = false;

  return {
    push(chunk: string, readAtMs = Date.now()): void {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf('\n', start);
        if (nl === -1) break;
        if (discarding) {
          discarding = false;
        } else if (pending.length === 0) {
          onLine(nl - start > maxLineChars ? chunk.slice(start, start + maxLineChars) : chunk.slice(start, nl), readAtMs);
        } else {
          const line = pending + chunk.slice(start, nl);
          pending = '';
          onLine(line.length > maxLineChars ? line.slice(0, maxLineChars) : line, readAtMs);
        }
        start = nl + 1;
      }
      if (start >= chunk.length || discarding) return;
      pending += start === 0 ? chunk : chunk.slice(start);
      if (pending.length >= maxLineChars) {
        onLine(pending.slice(0, maxLineChars), readAtMs);
        pending = '';
        discarding = true;
      }
    },
    end(readAtMs = Date.now()): void {
      if (pending.length > 0) onLine(pending, readAtMs);
      pending = '';
      discarding = false;
    },
  };
}

/**
 * Reads `stream` (as latin1) to its end, calling onLine for every line, the last one even without a newline when the
 * input really ended. A stream destroyed before its end (a stop) or failing leaves its unterminated tail undelivered:
 * that is a line cut short, not a line. Resolves when the stream ends or is destroyed; rejects if it errors.
 */
export function readLines(stream: Readable, onLine: LineHandler, maxLineChars = MAX_LINE_CHARS): Promise<void> {
  const splitter = createLineSplitter(onLine, maxLineChars);
  stream.setEncoding('latin1');
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve();
    };
    stream.on('data', (chunk: string) => splitter.push(chunk, Date.now()));
    stream.once('end', () => {
      splitter.end();
      finish();
    });
    stream.once('close', () => finish());
    stream.once('error', (err: Error) => finish(err));
  });
}
