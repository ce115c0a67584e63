// Per-destination statistics for the live terminal table. Bounded: at most `maxDestinations` entries, least recently
// seen evicted first, and latency kept as log-spaced bucket counts (about 9% relative error) so a p99 costs nothing
// per event and memory does not grow with traffic.
import { describeConnect, failureReason, isSlowConnect, type ConnectEvent } from '../event.ts';

const BUCKETS_PER_DOUBLING = 8;
const MIN_MS = 0.001; // 1 us
const BUCKETS = 8 * 25; // 1 us .. ~33 s

function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const b = Math.floor(Math.log2(ms / MIN_MS) * BUCKETS_PER_DOUBLING);
  return b >= BUCKETS ? BUCKETS - 1 : b;
}
/** Upper edge of a bucket in ms. */
function bucketUpperMs(b: number): number {
  return MIN_MS * 2 ** ((b + 1) / BUCKETS_PER_DOUBLING);
}

export class LatencySketch {
  readonly counts = new Uint32Array(BUCKETS);
  count = 0;
  sumMs = 0;
  maxMs = 0;
  add(ms: number): void {
    this.counts[bucketOf(ms)]!++;
    this.count++;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }
  /** q in [0,1]; the bucket's upper edge, clamped to the largest value seen. */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b]!;
      if (seen >= rank) return Math.min(bucketUpperMs(b), this.maxMs);
    }
    return this.maxMs;
  }
}

export interface DestinationStats {
  key: string;
  /** destination workload or address:port */
  label: string;
  latency: LatencySketch;
  failures: number;
  /** Why the last failed connect failed (connlat-probe's result; undefined from the other tools or none failed). */
  lastFailure: string | undefined;
  /** SYN retransmits summed over the connects (connlat-probe only). */
  synRetransmits: number;
  lastComm: string;
}

export interface SlowConnect {
  timeMs: number;
  text: string;
}

export class LiveStats {
  readonly destinations = new Map<string, DestinationStats>();
  readonly recentSlow: SlowConnect[] = [];
  connects = 0;
  failures = 0;
  private readonly maxDestinations: number;
  private readonly slowMs: number;
  constructor(opts: { maxDestinations?: number; slowMs: number }) {
    this.maxDestinations = opts.maxDestinations ?? 1000;
    this.slowMs = opts.slowMs;
  }

  observe(ev: ConnectEvent): void {
    const dst = ev.dst?.ownerName ?? ev.dst?.name;
    const addr = ev.ipVersion === 6 ? `[${ev.daddr}]:${ev.dport}` : `${ev.daddr}:${ev.dport}`;
    const key = addr;
    let d = this.destinations.get(key);
    if (d) {
      this.destinations.delete(key); // re-insert: Map order is our LRU order
    } else {
      if (this.destinations.size >= this.maxDestinations) {
        const oldest = this.destinations.keys().next().value;
        if (oldest !== undefined) this.destinations.delete(oldest);
      }
      d = { key, label: dst ? `${dst} (${addr})` : addr, latency: new LatencySketch(), failures: 0, lastFailure: undefined, synRetransmits: 0,
        lastComm: ev.comm };
    }
    this.destinations.set(key, d);
    d.lastComm = ev.comm;
    d.synRetransmits += ev.synRetransmits ?? 0;
    if (ev.failed) {
      d.failures++;
      d.lastFailure = failureReason(ev);
      this.failures++;
    } else {
      d.latency.add(ev.latencyMs);
      this.connects++;
    }
    // the same rule and text as the slow-connection log records
    if (isSlowConnect(ev, this.slowMs)) {
      this.recentSlow.push({ timeMs: ev.timeMs, text: describeConnect(ev) });
      if (this.recentSlow.length > 10) this.recentSlow.shift();
    }
  }

  /** Destinations ordered by p99, slowest first. */
  top(n: number): DestinationStats[] {
    return [...this.destinations.values()]
      .filter((d) => d.latency.count > 0 || d.failures > 0)
      .sort((a, b) => (b.latency.quantile(0.99) || 0) - (a.latency.quantile(0.99) || 0))
      .slice(0, n);
  }
}
