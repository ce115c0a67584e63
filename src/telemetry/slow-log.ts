// Slow-connection log records: the readable body and the token bucket that bounds how many are emitted.
import { describeConnect, type ConnectEvent } from '../event.ts';

/** `curl[21168] 10.0.2.15 -> 76.76.21.21:443 connect took 47.80 ms` (IPv6 destinations as `[addr]:port`). */
export function slowConnectBody(event: ConnectEvent): string {
  return describeConnect(event, 'connect ');
}

/**
 * Token bucket: holds up to `burst` tokens, refilled at `ratePerSec`. take() spends one token or returns false.
 * The clock is injectable so tests can drive time exactly.
 */
export class TokenBucket {
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(ratePerSec: number, burst: number, now: () => number = () => performance.now()) {
    if (!(ratePerSec >= 0) || !(burst >= 0)) throw new Error(`token bucket: rate (${ratePerSec}) and burst (${burst}) must be >= 0`);
    this.#ratePerMs = ratePerSec / 1000;
    this.#burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#last = now();
  }

  take(): boolean {
    const now = this.#now();
    const elapsed = now - this.#last;
    this.#last = now;
    if (elapsed > 0) this.#tokens = Math.min(this.#burst, this.#tokens + elapsed * this.#ratePerMs);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    return false;
  }
}
