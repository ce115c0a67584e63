// Our own pre-aggregation for the two hot instruments (tcp.connect.duration with explicit buckets, and
// tcp.connect.failures). The SDK hashes the attribute object on every record (sort keys + JSON.stringify, once per
// reader); here an event reaches its series through the attribute cache (SeriesRef: a canonical key computed once
// per cached destination, plus the slot it was last given), and a record is a few typed-array writes.
//
// Semantics follow the SDK's own storages (DeltaMetricProcessor + TemporalMetricProcessor), so the OTLP output is the
// same: records since the last collection (by any reader) sit in "hot" cells; every collection moves them into each
// reader's own state; a cumulative reader reports everything it has merged (start time = first measurement of the
// series), a delta reader reports what it got since its last collection (start time = its last collection time when
// the series was in that report, else the series' first measurement in the interval).
//
// Cardinality: at most limit-1 attribute sets, everything beyond goes into one series {otel.metric.overflow: true}.
// With cumulative temporality the limit holds for the life of the process (the SDK applies it per collection
// interval, so its cumulative output can grow past the limit; the OpenTelemetry spec asks for this bound); with
// delta it holds per collection interval, as in the SDK.
import { ValueType, type Attributes } from '@opentelemetry/api';
import { millisToHrTime } from '@opentelemetry/core';
import {
  AggregationTemporality,
  DataPointType,
  InstrumentType,
  type CollectionResult,
  type MetricData,
  type MetricDescriptor,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';

export const OVERFLOW_ATTRIBUTES: Attributes = Object.freeze({ 'otel.metric.overflow': true });

/** What an event's metric attributes resolve to, cached per destination (see MetricAttributeCache). */
export interface SeriesRef {
  /** Canonical text of the attribute set: equal attribute sets have equal keys, different ones different keys. */
  key: string;
  /** key -> the attributes */
  readonly decode: (key: string) => Attributes;
  /** The attributes, decoded from key when first needed (shared, never modified). */
  attrs: Attributes | undefined;
  /** Slot per aggregator (index 0 and 1), valid while gen equals that aggregator's generation. */
  slot0: number;
  gen0: number;
  slot1: number;
  gen1: number;
}

export function newSeriesRef(key: string, decode: (key: string) => Attributes): SeriesRef {
  return { key, decode, attrs: undefined, slot0: 0, gen0: 0, slot1: 0, gen1: 0 };
}

/** The attributes of a ref (decoded strings share no memory with the line they came from). */
export function seriesAttributes(ref: SeriesRef): Attributes {
  return (ref.attrs ??= ref.decode(ref.key));
}

/**
 * A copy of s that shares no memory with the string it was cut from. Strings the parser slices out of a line are
 * V8 sliced strings (13 chars and more) that keep the whole 64 KiB read chunk alive; a string held for longer than
 * the line (a cache or series key) is copied first.
 */
export function detached(s: string): string {
  return s.length < 13 ? s : (' ' + s).slice(1);
}

/** Aggregators that SeriesRef has slots for. */
export const MAX_AGGREGATORS = 2;

export interface InstrumentSpec {
  name: string;
  description: string;
  unit: string;
  /** explicit bucket boundaries (histogram); undefined: a monotonic integer sum (counter) */
  boundaries?: readonly number[];
}

/** One reported series in a reader's state. */
interface Cell {
  readonly key: string;
  readonly attrs: Attributes;
  /** epoch ms of the first measurement merged into this cell */
  start: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  readonly buckets: Float64Array | undefined;
}

interface ReaderState {
  readonly cells: Map<string, Cell>;
  /** keys reported in this reader's previous collection (delta start-time calibration) */
  lastReported: Set<string>;
  lastCollectionMs: number;
}

function bucketIndex(boundaries: Float64Array, value: number): number {
  // the SDK's binarySearchUB: first boundary >= value (buckets are upper-inclusive); boundaries.length for +Inf
  let lo = 0;
  let hi = boundaries.length - 1;
  let ret = boundaries.length;
  while (hi >= lo) {
    const mid = (lo + hi) >>> 1;
    if (boundaries[mid]! < value) lo = mid + 1;
    else {
      ret = mid;
      hi = mid - 1;
    }
  }
  return ret;
}

/**
 * One instrument's series table and hot cells. Per-series state is typed arrays indexed by slot, grown on demand up
 * to the cardinality limit (the last slot, limit-1, is the overflow series).
 */
export class PreAggregator {
  readonly index: number;
  readonly descriptor: MetricDescriptor;
  readonly #boundaries: Float64Array | undefined;
  readonly #width: number;
  readonly #limit: number;
  readonly #overflowSlot: number;
  readonly #resetEachCollection: boolean;
  readonly #now: () => number;
  #generation = 1;
  #ids = new Map<string, number>();
  /** server.address of every series that has one: an address not in it has no series (see knownAddress). */
  #addresses = new Set<string>();
  #keys: string[] = [];
  #attrs: Attributes[] = [];
  #capacity = 0;
  // hot cells (since the last collection by any reader)
  #count = new Float64Array(0);
  #sum = new Float64Array(0);
  #min = new Float64Array(0);
  #max = new Float64Array(0);
  #start = new Float64Array(0);
  #buckets = new Float64Array(0);
  #touched = new Uint8Array(0);
  #touchedList = new Int32Array(0);
  #touchedCount = 0;
  readonly #readers: ReaderState[] = [];

  constructor(index: number, spec: InstrumentSpec, options: { cardinalityLimit: number; temporality: AggregationTemporality; now?: () => number }) {
    if (!(index >= 0 && index < MAX_AGGREGATORS)) throw new RangeError(`aggregator index ${index} out of range`);
    if (!(options.cardinalityLimit >= 2)) throw new RangeError(`cardinalityLimit must be >= 2, got ${options.cardinalityLimit}`);
    this.index = index;
    this.#boundaries = spec.boundaries ? Float64Array.from(spec.boundaries) : undefined;
    this.#width = spec.boundaries ? spec.boundaries.length + 1 : 0;
    this.#limit = options.cardinalityLimit;
    this.#overflowSlot = options.cardinalityLimit - 1;
    this.#resetEachCollection = options.temporality === AggregationTemporality.DELTA;
    this.#now = options.now ?? Date.now;
    // the same fields as the SDK's InstrumentDescriptor (the console exporter prints all of them)
    const descriptor: MetricDescriptor & { type: InstrumentType; advice: object } = spec.boundaries
      ? { name: spec.name, description: spec.description, unit: spec.unit, type: InstrumentType.HISTOGRAM, valueType: ValueType.DOUBLE, advice: { explicitBucketBoundaries: [...spec.boundaries] } }
      : { name: spec.name, description: spec.description, unit: spec.unit, type: InstrumentType.COUNTER, valueType: ValueType.INT, advice: {} };
    this.descriptor = descriptor;
  }

  /** Attribute sets currently holding a slot (overflow excluded). */
  get seriesCount(): number {
    return this.#ids.size;
  }

  /**
   * Records one measurement (a histogram value, or a counter increment) into the event's series. false when it went
   * into the overflow series (or was dropped): the caller need not keep the ref for next time.
   */
  record(ref: SeriesRef, value: number): boolean {
    // the SDK drops negative histogram values and counter decrements (with a diag warning), and NaN
    if (!(value >= 0)) return false;
    const slot =
      this.index === 0
        ? ref.gen0 === this.#generation ? ref.slot0 : this.#assign(ref)
        : ref.gen1 === this.#generation ? ref.slot1 : this.#assign(ref);
    this.#add(slot, value);
    return slot !== this.#overflowSlot;
  }

  /** true when no new attribute set can get a series (until the next collection, with delta). */
  get full(): boolean {
    return this.#ids.size >= this.#overflowSlot;
  }

  /**
   * false when no series has this server.address: with server.address in the allow list, an event to it then has
   * no series either, which a full table tells without building the event's key.
   */
  knownAddress(address: string): boolean {
    return this.#addresses.has(address);
  }

  /** true when the attribute set of `key` has a series or can get one now (else it would go to the overflow). */
  hasRoomFor(key: string): boolean {
    return this.#ids.size < this.#overflowSlot || this.#ids.has(key);
  }

  /** Records one measurement into the overflow series (for a key hasRoomFor refused: no SeriesRef needed). */
  recordOverflow(value: number): void {
    if (!(value >= 0)) return;
    if (this.#overflowSlot >= this.#capacity) this.#grow(this.#overflowSlot + 1);
    this.#add(this.#overflowSlot, value);
  }

  #add(slot: number, value: number): void {
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

  #assign(ref: SeriesRef): number {
    let slot = this.#ids.get(ref.key);
    if (slot === undefined) {
      if (this.#ids.size < this.#overflowSlot) {
        slot = this.#ids.size;
        ref.key = detached(ref.key);
        this.#ids.set(ref.key, slot);
        this.#keys[slot] = ref.key;
        const attrs = seriesAttributes(ref);
        this.#attrs[slot] = attrs;
        const address = attrs['server.address'];
        if (typeof address === 'string') this.#addresses.add(address);
      } else {
        slot = this.#overflowSlot;
      }
      if (slot >= this.#capacity) this.#grow(slot + 1);
    }
    if (this.index === 0) {
      ref.slot0 = slot;
      ref.gen0 = this.#generation;
    } else {
      ref.slot1 = slot;
      ref.gen1 = this.#generation;
    }
    return slot;
  }

  #grow(needed: number): void {
    let capacity = Math.max(16, this.#capacity * 2, needed);
    // the overflow slot is the last one: jump to the full size rather than grow to it in steps
    if (capacity > this.#overflowSlot || needed - 1 === this.#overflowSlot) capacity = this.#limit;
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

  /** A MetricProducer for one reader (one per export target); its collections are independent of the others'. */
  producer(temporality: AggregationTemporality, scope: { name: string; version: string; schemaUrl?: string }): MetricProducer {
    const state: ReaderState = { cells: new Map(), lastReported: new Set(), lastCollectionMs: 0 };
    this.#readers.push(state);
    return {
      collect: async () => {
        const metric = this.#collectFor(state, temporality);
        const result: CollectionResult = {
          // MetricReader.collect ignores a producer's resource and uses the SDK's
          resourceMetrics: { resource: undefined as never, scopeMetrics: metric ? [{ scope, metrics: [metric] }] : [] },
          errors: [],
        };
        return result;
      },
    };
  }

  /** Moves the hot cells into every reader's state and clears them. */
  #drain(): void {
    const w = this.#width;
    for (let t = 0; t < this.#touchedCount; t++) {
      const slot = this.#touchedList[t]!;
      const key = slot === this.#overflowSlot ? '' : this.#keys[slot]!;
      for (const reader of this.#readers) {
        let cell = reader.cells.get(key);
        if (cell === undefined) {
          cell = {
            key,
            attrs: slot === this.#overflowSlot ? OVERFLOW_ATTRIBUTES : this.#attrs[slot]!,
            start: this.#start[slot]!,
            count: 0,
            sum: 0,
            min: Infinity,
            max: -Infinity,
            buckets: w > 0 ? new Float64Array(w) : undefined,
          };
          reader.cells.set(key, cell);
        }
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
    if (this.#resetEachCollection) {
      // delta: the limit is per collection interval; refs from earlier generations re-resolve their slot
      this.#generation++;
      this.#ids = new Map();
      this.#addresses = new Set();
      this.#keys = [];
      this.#attrs = [];
    }
  }

  /** One reader's collection: its MetricData, or undefined when it has nothing to report (as the SDK). */
  #collectFor(state: ReaderState, temporality: AggregationTemporality): MetricData | undefined {
    this.#drain();
    const nowMs = this.#now();
    const endTime = millisToHrTime(nowMs);
    const cells = [...state.cells.values()];
    if (temporality === AggregationTemporality.DELTA) {
      for (const cell of cells) if (state.lastReported.has(cell.key)) cell.start = state.lastCollectionMs;
      state.cells.clear();
      state.lastReported = new Set(cells.map((c) => c.key));
    }
    state.lastCollectionMs = nowMs;
    if (cells.length === 0) return undefined;
    const boundaries = this.#boundaries ? [...this.#boundaries] : undefined;
    if (boundaries !== undefined) {
      return {
        descriptor: this.descriptor,
        aggregationTemporality: temporality,
        dataPointType: DataPointType.HISTOGRAM,
        dataPoints: cells.map((c) => ({
          attributes: c.attrs,
          startTime: millisToHrTime(c.start),
          endTime,
          value: { min: c.min, max: c.max, sum: c.sum, buckets: { boundaries, counts: Array.from(c.buckets!) }, count: c.count },
        })),
      };
    }
    return {
      descriptor: this.descriptor,
      aggregationTemporality: temporality,
      dataPointType: DataPointType.SUM,
      isMonotonic: true,
      dataPoints: cells.map((c) => ({ attributes: c.attrs, startTime: millisToHrTime(c.start), endTime, value: c.sum })),
    };
  }
}
