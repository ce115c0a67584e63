// Restart delays for a supervised tool: exponential with full jitter (delay = random * min(cap, initial * 2^n)),
// so many nodes restarting at once do not retry in lockstep. Reset after a run that stayed up long enough.

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A run that lasted at least this long resets the backoff to initialMs. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, resetAfterMs: 60_000 };

export class Backoff {
  readonly options: BackoffOptions;
  readonly #random: () => number;
  /** Consecutive failures since the last reset. */
  attempt = 0;

  /** `random` returns [0, 1]; injectable so tests can pin the jitter. */
  constructor(options: Partial<BackoffOptions> = {}, random: () => number = Math.random) {
    this.options = { ...DEFAULT_BACKOFF, ...options };
    this.#random = random;
  }

  /** The ceiling of the next delay, before jitter. */
  ceilingMs(): number {
    const { initialMs, maxMs } = this.options;
    return Math.min(maxMs, initialMs * 2 ** Math.min(this.attempt, 30));
  }

  /** Delay before the next start, given how long the run that just ended lasted. */
  next(ranMs: number): number {
    if (ranMs >= this.options.resetAfterMs) this.attempt = 0;
    const ceiling = this.ceilingMs();
    this.attempt++;
    return Math.round(this.#random() * ceiling);
  }

  reset(): void {
    this.attempt = 0;
  }
}
