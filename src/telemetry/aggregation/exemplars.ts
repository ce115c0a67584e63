// Exemplars of tcp.connect.duration: the measurement of a connect that got a span, with that span's ids, so a user
// goes from a slow bucket to the connect. As the SDK's AlignedHistogramBucketExemplarReservoir (which our own
// aggregation replaces): at most one exemplar per series and bucket, the newest wins; each reader reports those
// offered since its own previous collection (with any temporality: an exemplar is a recent sample, not a total).

/** One exemplar: the measured value (seconds), when, and the span it came from (ids in lowercase hex). */
export interface Exemplar {
  readonly value: number;
  readonly timeMs: number;
  readonly traceId: string;
  readonly spanId: string;
}

interface Entry {
  readonly seriesKey: string;
  readonly exemplar: Exemplar;
  readonly seq: number;
}

/** Held at most, whatever the number of series and buckets (spans are rate limited anyway: --slow-log-rate). */
export const MAX_EXEMPLARS = 4096;

export class ExemplarReservoir {
  /** `${bucket}\u0000${seriesKey}` -> the newest exemplar of that bucket of that series */
  readonly #entries = new Map<string, Entry>();
  #seq = 0;
  /** per reader: the last seq it has reported */
  readonly #cursors: number[] = [];

  /** A reader's handle: collect() what was offered since its previous collect(). */
  reader(): { collect: () => Map<string, Exemplar[]> } {
    const index = this.#cursors.push(0) - 1;
    return { collect: () => this.#collect(index) };
  }

  offer(seriesKey: string, bucket: number, exemplar: Exemplar): void {
    const at = `${bucket}\u0000${seriesKey}`;
    if (this.#entries.size >= MAX_EXEMPLARS && !this.#entries.has(at)) return;
    this.#entries.delete(at); // re-inserted: Map order stays the order offered
    this.#entries.set(at, { seriesKey, exemplar, seq: ++this.#seq });
  }

  get size(): number {
    return this.#entries.size;
  }

  #collect(reader: number): Map<string, Exemplar[]> {
    const since = this.#cursors[reader]!;
    const bySeries = new Map<string, Exemplar[]>();
    for (const { seriesKey, exemplar, seq } of this.#entries.values()) {
      if (seq <= since) continue;
      const list = bySeries.get(seriesKey);
      if (list) list.push(exemplar);
      else bySeries.set(seriesKey, [exemplar]);
    }
    this.#cursors[reader] = this.#seq;
    // what every reader has reported is no longer needed
    const done = Math.min(...this.#cursors);
    for (const [at, entry] of this.#entries) if (entry.seq <= done) this.#entries.delete(at);
    return bySeries;
  }
}
