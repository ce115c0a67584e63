// Aggregation state, as the SDK's state/: DeltaSeries holds what was measured since the last collection by any
// reader (the SDK's DeltaMetricProcessor), ReaderState what one reader has been given (its TemporalMetricProcessor).
// Each collection moves the hot cells into every reader's state; a cumulative reader reports all it has merged
// (start time = the series' first measurement), a delta reader what it got since its last collection (start time =
// that collection when the series was in it, else the first measurement in the interval).
//
// Cardinality: at most limit-1 attribute sets, everything beyond goes into one series {otel.metric.overflow: true}.
// With cumulative temporality the limit holds for the life of the process (the SDK applies it per collection
// interval, so its cumulative output can grow past the limit; the OpenTelemetry spec asks for this bound); with
// delta it holds per collection interval, as in the SDK.
import type { Attributes } from '@opentelemetry/api';
import { bucketIndex, type Accumulation, type Aggregator } from './aggregator.ts';
import { detached, seriesAttributes, type SeriesRef } from './series.ts';

export const OVERFLOW_ATTRIBUTES: Attributes = Object.freeze({ 'otel.metric.overflow': true });

/** One reader's state: the series it reports, and what it reported last time (delta start times). */
export class ReaderState {
  readonly cells = new Map<string, Accumulation>();
  /** keys reported in this reader's previous collection (delta start-time calibration) */
  #lastReported = new Set<string>();
  #lastCollectionMs = 0;

  /** The accumulation of a series, created (empty) when the reader has none yet. */
  cell(key: string, attrs: Attributes, start: number, width: number): Accumulation {
    let cell = this.cells.get(key);
    if (cell === undefined) {
      cell = { key, attrs, start, count: 0, sum: 0, min: Infinity, max: -Infinity, buckets: width > 0 ? new Float64Array(width) : undefined };
      this.cells.set(key, cell);
    }
    return cell;
  }

  /** What this collection reports; delta readers start over after it. */
  collect(delta: boolean, nowMs: number): Accumulation[] {
    const cells = [...this.cells.values()];
    if (delta) {
      for (const cell of cells) if (this.#lastReported.has(cell.key)) cell.start = this.#lastCollectionMs;
      this.cells.clear();
      this.#lastReported = new Set(cells.map((c) => c.key));
    }
    this.#lastCollectionMs = nowMs;
    return cells;
  }
}

/**
 * The series table and the hot cells of one instrument. Per-series state is typed arrays indexed by slot, grown on
 * demand up to the cardinality limit (the last slot, limit-1, is the overflow series).
 */
export class DeltaSeries {
  /** Incremented when delta temporality resets the table: refs from earlier generations re-resolve their slot. */
  generation = 1;
  /** the aggregator's bucket boundaries (histograms), searched inline on the hot path */
  readonly #boundaries: Float64Array | undefined;
  readonly #width: number;
  readonly #limit: number;
  readonly overflowSlot: number;
  readonly #now: () => number;
  #ids = new Map<string, number>();
  /** server.address of every series that has one: an address not in it has no series (see knownAddress). */
  #addresses = new Set<string>();
  #keys: string[] = [];
  #attrs: Attributes[] = [];
  #capacity = 0;
  #count = new Float64Array(0);
  #sum = new Float64Array(0);
  #min = new Float64Array(0);
  #max = new Float64Array(0);
  #start = new Float64Array(0);
  #buckets = new Float64Array(0);
  #touched = new Uint8Array(0);
  #touchedList = new Int32Array(0);
  #touchedCount = 0;

  constructor(aggregator: Aggregator, cardinalityLimit: number, now: () => number) {
    this.#boundaries = aggregator.boundaries;
    this.#width = aggregator.width;
    this.#limit = cardinalityLimit;
    this.overflowSlot = cardinalityLimit - 1;
    this.#now = now;
  }

  /** Attribute sets currently holding a slot (overflow excluded). */
  get size(): number {
    return this.#ids.size;
  }

  get full(): boolean {
    return this.#ids.size >= this.overflowSlot;
  }

  knownAddress(address: string): boolean {
    return this.#addresses.has(address);
  }

  hasRoomFor(key: string): boolean {
    return this.#ids.size < this.overflowSlot || this.#ids.has(key);
  }

  /** The slot of the ref's attribute set: its own, a new one, or the overflow series. */
  slotOf(ref: SeriesRef): number {
    let slot = this.#ids.get(ref.key);
    if (slot === undefined) {
      if (this.#ids.size < this.overflowSlot) {
        slot = this.#ids.size;
        ref.key = detached(ref.key);
        this.#ids.set(ref.key, slot);
        this.#keys[slot] = ref.key;
        const attrs = seriesAttributes(ref);
        this.#attrs[slot] = attrs;
        const address = attrs['server.address'];
        if (typeof address === 'string') this.#addresses.add(address);
      } else {
        slot = this.overflowSlot;
      }
      if (slot >= this.#capacity) this.#grow(slot + 1);
    }
    return slot;
  }

  /** Makes sure the overflow slot exists (a measurement can go there without a ref). */
  ensureOverflow(): void {
    if (this.overflowSlot >= this.#capacity) this.#grow(this.overflowSlot + 1);
  }

  add(slot: number, value: number): void {
    if (this.#touched[slot] === 0) {
      this.#touched[slot] = 1;
      this.#touchedList[this.#touchedCount++] = slot;
      this.#start[slot] = this.#now();
    }
    this.#count[slot]!++;
    this.#sum[slot]! += value;
    const b = this.#boundaries;
    if (b !== undefined) {
      if (value < this.#min[slot]!) this.#min[slot] = value;
      if (value > this.#max[slot]!) this.#max[slot] = value;
      this.#buckets[slot * this.#width + bucketIndex(b, value)]!++;
    }
  }

  #grow(needed: number): void {
    let capacity = Math.max(16, this.#capacity * 2, needed);
    // the overflow slot is the last one: jump to the full size rather than grow to it in steps
    if (capacity > this.overflowSlot || needed - 1 === this.overflowSlot) capacity = this.#limit;
    const grow = <T extends Float64Array | Uint8Array | Int32Array>(old: T, make: (n: number) => T, per = 1, fill?: number): T => {
      const next = make(capacity * per);
      if (fill !== undefined) next.fill(fill);
      next.set(old as never);
      return next;
    };
    this.#count = grow(this.#count, (n) => new Float64Array(n));
    this.#sum = grow(this.#sum, (n) => new Float64Array(n));
    this.#min = grow(this.#min, (n) => new Float64Array(n), 1, Infinity);
    this.#max = grow(this.#max, (n) => new Float64Array(n), 1, -Infinity);
    this.#start = grow(this.#start, (n) => new Float64Array(n));
    this.#buckets = grow(this.#buckets, (n) => new Float64Array(n), this.#width);
    this.#touched = grow(this.#touched, (n) => new Uint8Array(n));
    this.#touchedList = grow(this.#touchedList, (n) => new Int32Array(n));
    this.#capacity = capacity;
  }

  /** Moves the hot cells into every reader's state and clears them; with delta, the table starts over. */
  drain(readers: readonly ReaderState[], resetTable: boolean): void {
    const w = this.#width;
    for (let t = 0; t < this.#touchedCount; t++) {
      const slot = this.#touchedList[t]!;
      const overflow = slot === this.overflowSlot;
      const key = overflow ? '' : this.#keys[slot]!;
      const attrs = overflow ? OVERFLOW_ATTRIBUTES : this.#attrs[slot]!;
      for (const reader of readers) {
        const cell = reader.cell(key, attrs, this.#start[slot]!, w);
        cell.count += this.#count[slot]!;
        cell.sum += this.#sum[slot]!;
        if (this.#min[slot]! < cell.min) cell.min = this.#min[slot]!;
        if (this.#max[slot]! > cell.max) cell.max = this.#max[slot]!;
        if (cell.buckets !== undefined) for (let b = 0; b < w; b++) cell.buckets[b]! += this.#buckets[slot * w + b]!;
      }
      this.#touched[slot] = 0;
      this.#count[slot] = 0;
      this.#sum[slot] = 0;
      this.#min[slot] = Infinity;
      this.#max[slot] = -Infinity;
      this.#buckets.fill(0, slot * w, slot * w + w);
    }
    this.#touchedCount = 0;
    if (resetTable) {
      this.generation++;
      this.#ids = new Map();
      this.#addresses = new Set();
      this.#keys = [];
      this.#attrs = [];
    }
  }
}
