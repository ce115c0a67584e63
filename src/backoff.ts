// Backoff for everything that retries: tool restarts (sources/), OTLP export retries (telemetry/) and Kubernetes
// watch restarts (enrich/). One formula: a ceiling of initialMs * 2^attempt up to maxMs, and jitter so that many
// nodes retrying at once do not do it in lockstep. Full jitter (random * ceiling) for tool restarts; equal jitter
// (half the ceiling + a random half) where a retry must never come back at once (a gateway, the API server).

export type Jitter = 'full' | 'equal';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A run that lasted at least this long resets the backoff to initialMs (see Backoff.next). */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, resetAfterMs: 60_000 };

/** initialMs * 2^attempt, at most maxMs. */
export function backoffCeiling(attempt: number, opts: { initialMs: number; maxMs: number }): number {
  return Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(attempt, 30));
}

/** A delay under `ceiling`: full jitter [0, ceiling], equal jitter [ceiling/2, ceiling]. `random` returns [0, 1]. */
export function jittered(ceiling: number, jitter: Jitter, random: () => number = Math.random): number {
  return Math.round(jitter === 'full' ? random() * ceiling : ceiling / 2 + random() * (ceiling / 2));
}

export interface RetryOptions {
  /** First delay ceiling (default 1000 ms); doubles per consecutive failure. */
  initialMs: number;
  /** Largest delay ceiling (default 30000 ms). */
  maxMs: number;
  /** Jitter source in [0, 1) (default Math.random). */
  random?: () => number;
}

export const DEFAULT_RETRY: RetryOptions = { initialMs: 1000, maxMs: 30_000 };

/** Equal-jitter delay before retry number `attempt` (0 = the first retry). */
export function retryDelay(attempt: number, opts: RetryOptions): number {
  return jittered(backoffCeiling(attempt, opts), 'equal', opts.random);
}

/** Consecutive failures and the delay before the next attempt. */
export class Backoff {
  readonly options: BackoffOptions;
  readonly #random: () => number;
  readonly #jitter: Jitter;
  /** Consecutive failures since the last reset. */
  attempt = 0;

  /** `random` returns [0, 1]; injectable so tests can pin the jitter. */
  constructor(options: Partial<BackoffOptions> = {}, random: () => number = Math.random, jitter: Jitter = 'full') {
    this.options = { ...DEFAULT_BACKOFF, ...options };
    this.#random = random;
    this.#jitter = jitter;
  }

  /** The ceiling of the next delay, before jitter. */
  ceilingMs(): number {
    return backoffCeiling(this.attempt, this.options);
  }

  /** Delay before the next attempt, given how long the run that just ended lasted (a long run resets). */
  next(ranMs = 0): number {
    if (ranMs >= this.options.resetAfterMs) this.attempt = 0;
    const ceiling = this.ceilingMs();
    this.attempt++;
    return jittered(ceiling, this.#jitter, this.#random);
  }

  /** A success: the next failure starts from initialMs again. */
  reset(): void {
    this.attempt = 0;
  }
}

/** A sleep that wake() ends early (shutdown must not wait out a 30 s backoff). */
export class Sleeper {
  #wake: (() => void) | undefined;
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      timer.unref?.();
      const self = this;
      function done(): void {
        clearTimeout(timer);
        if (self.#wake === done) self.#wake = undefined;
        resolve();
      }
      this.#wake = done;
    });
  }
  wake(): void {
    this.#wake?.();
  }
}
