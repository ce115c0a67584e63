// ReplaySource: recorded tool output from a file (`file:PATH`) or stdin (`-`). Emits every line, the last one even
// without a newline, and resolves at end of input. The format is detected by the parser from the header.
//
// stop() (a signal) differs by input. A file stops at once. Stdin is read on until EOF, within a drain bound: in
// `tool | connlat --source -` a terminal's Ctrl-C reaches both, and the tool prints its last lines after it. Either
// way a line cut by the stop is not delivered (see readLines).
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Source, SourceHooks } from './types.ts';
import { readLines } from './lines.ts';

export type ReplayInput = { path: string } | { stdin: Readable };

export interface ReplayOptions {
  /** After stop(), how long stdin may still be read while waiting for its EOF (default 5000 ms). */
  drainTimeoutMs?: number;
}

export const DEFAULT_DRAIN_TIMEOUT_MS = 5000;

export class ReplaySource implements Source {
  readonly description: string;
  readonly #input: ReplayInput;
  readonly #drainTimeoutMs: number;
  #file: Promise<FileHandle> | undefined;
  #stream: Readable | undefined;
  #reading = false;
  #ended: Promise<void> | undefined;
  #stopped = false;

  constructor(input: ReplayInput, options: ReplayOptions = {}) {
    this.#input = input;
    this.#drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    this.description = 'path' in input ? `file:${input.path}` : 'stdin';
  }

  format(): 'detect' {
    return 'detect';
  }

  ready(): boolean {
    return this.#reading;
  }

  /** Opens the file (no-op for stdin): a file that cannot be read fails here, before anything else is set up. */
  prepare(): Promise<void> {
    if (!('path' in this.#input)) return Promise.resolve();
    const name = this.#input.path;
    this.#file ??= open(name, 'r').catch((e: NodeJS.ErrnoException) => {
      throw new Error(`cannot read ${name}: ${e.code ?? e.message}`);
    });
    return this.#file.then(() => undefined);
  }

  async run(hooks: SourceHooks): Promise<void> {
    let stream: Readable;
    let name: string;
    if ('path' in this.#input) {
      name = this.#input.path;
      await this.prepare();
      if (this.#stopped) return; // stopped while the file was being opened
      stream = (await this.#file!).createReadStream({ highWaterMark: 64 * 1024 });
    } else {
      name = 'stdin';
      stream = this.#input.stdin;
    }
    this.#stream = stream;
    this.#reading = true;
    this.#ended = readLines(stream, (text, readAtMs) => hooks.line(text, readAtMs));
    try {
      await this.#ended;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new Error(`cannot read ${name}: ${err.code ?? err.message}`);
    } finally {
      this.#reading = false;
    }
  }

  /** Stops reading: a file at once, stdin at its EOF or after the drain bound (lines read were delivered). */
  async stop(): Promise<void> {
    this.#stopped = true;
    const stream = this.#stream;
    if (stream === undefined || this.#ended === undefined) return;
    if ('stdin' in this.#input) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#drainTimeoutMs)));
      await Promise.race([this.#ended.catch(() => undefined), bound]);
      clearTimeout(timer);
    }
    stream.destroy();
    await this.#ended.catch(() => undefined);
  }
}
