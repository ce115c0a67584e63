// The stop signals, caught from the first moment: loading the agent's modules takes seconds, and a SIGTERM (a
// rollout), SIGINT (Ctrl-C) or SIGHUP (the terminal closed) in that window would otherwise kill it with nothing
// drained or flushed. Signals that arrive before the CLI is ready to act are held and handed over, with their time.
// Deliberately free of imports: it must be loaded, and its handlers installed, before anything heavy.

export const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];
export type StopHandler = (signal: StopSignal, atMs: number) => void;

export class StopSignals {
  #handler: StopHandler | undefined;
  readonly #held: { signal: StopSignal; atMs: number }[] = [];
  readonly #listener = (signal: NodeJS.Signals): void => {
    const atMs = Date.now();
    if (this.#handler) this.#handler(signal as StopSignal, atMs);
    else this.#held.push({ signal: signal as StopSignal, atMs });
  };

  constructor() {
    for (const s of STOP_SIGNALS) process.on(s, this.#listener);
  }

  /** From now on signals go to `handler`; those held so far are handed to it first, in order. */
  handle(handler: StopHandler): void {
    this.#handler = handler;
    for (const { signal, atMs } of this.#held.splice(0)) handler(signal, atMs);
  }

  /** Gives the signals back their default action (commands with nothing to drain); a held one takes effect now. */
  release(): void {
    for (const s of STOP_SIGNALS) process.off(s, this.#listener);
    const first = this.#held[0];
    if (first) process.kill(process.pid, first.signal);
  }
}
