// ReplaySource: recorded tool output from a file (`file:PATH`) or stdin (`-`). Emits every line, the last one even
// without a newline, and resolves at end of input. The format is detected by the parser from the header.
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Source, SourceHooks } from './types.ts';
import { readLines } from './lines.ts';

export type ReplayInput = { path: string } | { stdin: Readable };

export class ReplaySource implements Source {
  readonly description: string;
  readonly #input: ReplayInput;
  #stream: Readable | undefined;
  #reading = false;

  constructor(input: ReplayInput) {
    this.#input = input;
    this.description = 'path' in input ? `file:${input.path}` : 'stdin';
  }

  format(): 'detect' {
    return 'detect';
  }

  ready(): boolean {
    return this.#reading;
  }

  async run(hooks: SourceHooks): Promise<void> {
    let stream: Readable;
    let name: string;
    if ('path' in this.#input) {
      name = this.#input.path;
      const handle = await open(name, 'r').catch((e: NodeJS.ErrnoException) => {
        throw new Error(`cannot read ${name}: ${e.code ?? e.message}`);
      });
      stream = handle.createReadStream({ highWaterMark: 64 * 1024 });
    } else {
      name = 'stdin';
      stream = this.#input.stdin;
    }
    this.#stream = stream;
    this.#reading = true;
    try {
      await readLines(stream, (text, readAtMs) => hooks.line(text, readAtMs));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new Error(`cannot read ${name}: ${err.code ?? err.message}`);
    } finally {
      this.#reading = false;
    }
  }

  /** Stops reading early (lines already read were delivered). */
  async stop(): Promise<void> {
    this.#stream?.destroy();
  }
}
