// The metric storage of one pre-aggregated instrument (the SDK's SyncMetricStorage): its aggregator, its series
// (DeltaSeries) and one ReaderState per reader, each reader collecting through its own MetricProducer. The SDK hashes
// the attribute object on every record (sort keys + JSON.stringify, once per reader); here an event reaches its
// series through the attribute cache (a SeriesRef holds the slot each storage gave it), and a record is a few
// typed-array writes. The OTLP output is the SDK's: test/telemetry/aggregate.test.ts compares both on the same events.
import { ValueType } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InstrumentType,
  type CollectionResult,
  type MetricDescriptor,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import { bucketIndex, ExplicitHistogramAggregator, SumAggregator, type Aggregator } from './aggregator.ts';
import { ExemplarReservoir, type Exemplar } from './exemplars.ts';
import type { SeriesRef } from './series.ts';
import { DeltaSeries, ReaderState } from './state.ts';

export interface InstrumentSpec {
  name: string;
  description: string;
  unit: string;
  /** explicit bucket boundaries (histogram); undefined: a monotonic integer sum (counter) */
  boundaries?: readonly number[];
}

export interface StorageOptions {
  cardinalityLimit: number;
  temporality: AggregationTemporality;
  now?: () => number;
}

/** The same fields as the SDK's InstrumentDescriptor (the console exporter prints all of them). */
function descriptorOf(spec: InstrumentSpec): MetricDescriptor {
  const descriptor: MetricDescriptor & { type: InstrumentType; advice: object } = spec.boundaries
    ? { name: spec.name, description: spec.description, unit: spec.unit, type: InstrumentType.HISTOGRAM, valueType: ValueType.DOUBLE, advice: { explicitBucketBoundaries: [...spec.boundaries] } }
    : { name: spec.name, description: spec.description, unit: spec.unit, type: InstrumentType.COUNTER, valueType: ValueType.INT, advice: {} };
  return descriptor;
}

export class PreAggregator {
  /** This storage's entry in every SeriesRef's slots/gens (any number of storages; each has its own index). */
  readonly index: number;
  readonly descriptor: MetricDescriptor;
  readonly #aggregator: Aggregator;
  readonly #series: DeltaSeries;
  readonly #delta: boolean;
  readonly #now: () => number;
  readonly #readers: ReaderState[] = [];
  /** histograms only: exemplars pointing at spans */
  readonly #exemplars: ExemplarReservoir | undefined;

  constructor(index: number, spec: InstrumentSpec, options: StorageOptions) {
    if (!(Number.isInteger(index) && index >= 0)) throw new RangeError(`storage index ${index} must be an integer >= 0`);
    if (!(options.cardinalityLimit >= 2)) throw new RangeError(`cardinalityLimit must be >= 2, got ${options.cardinalityLimit}`);
    this.index = index;
    this.descriptor = descriptorOf(spec);
    this.#aggregator = spec.boundaries ? new ExplicitHistogramAggregator(spec.boundaries) : new SumAggregator();
    this.#now = options.now ?? Date.now;
    this.#series = new DeltaSeries(this.#aggregator, options.cardinalityLimit, this.#now);
    this.#delta = options.temporality === AggregationTemporality.DELTA;
    this.#exemplars = spec.boundaries ? new ExemplarReservoir() : undefined;
  }

  /** Keeps `exemplar` (a measurement already recorded for `ref`) as its bucket's exemplar for the next collections. */
  offerExemplar(ref: SeriesRef, exemplar: Exemplar): void {
    const boundaries = this.#aggregator.boundaries;
    if (this.#exemplars === undefined || boundaries === undefined) return;
    this.#exemplars.offer(ref.key, bucketIndex(boundaries, exemplar.value), exemplar);
  }

  /** Attribute sets currently holding a slot (overflow excluded). */
  get seriesCount(): number {
    return this.#series.size;
  }

  /**
   * Records one measurement (a histogram value, or a counter increment) into the event's series. false when it went
   * into the overflow series (or was dropped): the caller need not keep the ref for next time.
   */
  record(ref: SeriesRef, value: number): boolean {
    // the SDK drops negative histogram values and counter decrements (with a diag warning), and NaN
    if (!(value >= 0)) return false;
    const i = this.index;
    const series = this.#series;
    let slot: number;
    if (ref.gens[i] === series.generation) {
      slot = ref.slots[i]!;
    } else {
      slot = series.slotOf(ref);
      ref.slots[i] = slot;
      ref.gens[i] = series.generation;
    }
    series.add(slot, value);
    return slot !== series.overflowSlot;
  }

  /** true when no new attribute set can get a series (until the next collection, with delta). */
  get full(): boolean {
    return this.#series.full;
  }

  /**
   * false when no series has this server.address: with server.address in the allow list, an event to it then has
   * no series either, which a full table tells without building the event's key.
   */
  knownAddress(address: string): boolean {
    return this.#series.knownAddress(address);
  }

  /** true when the attribute set of `key` has a series or can get one now (else it would go to the overflow). */
  hasRoomFor(key: string): boolean {
    return this.#series.hasRoomFor(key);
  }

  /** Records one measurement into the overflow series (for a key hasRoomFor refused: no SeriesRef needed). */
  recordOverflow(value: number): void {
    if (!(value >= 0)) return;
    this.#series.ensureOverflow();
    this.#series.add(this.#series.overflowSlot, value);
  }

  /** A MetricProducer for one reader (one per export target); its collections are independent of the others'. */
  producer(temporality: AggregationTemporality, scope: { name: string; version: string; schemaUrl?: string }): MetricProducer {
    const state = new ReaderState();
    this.#readers.push(state);
    const exemplars = this.#exemplars?.reader();
    return {
      collect: async () => {
        this.#series.drain(this.#readers, this.#delta);
        const nowMs = this.#now();
        const cells = state.collect(temporality === AggregationTemporality.DELTA, nowMs);
        const offered = exemplars?.collect();
        // nothing measured: nothing reported, as the SDK
        const metric = cells.length === 0 ? undefined : this.#aggregator.toMetricData(this.descriptor, temporality, cells, nowMs, offered);
        const result: CollectionResult = {
          // MetricReader.collect ignores a producer's resource and uses the SDK's (an SDK internal we rely on:
          // @opentelemetry/sdk-metrics is pinned to an exact version for it)
          resourceMetrics: { resource: undefined as never, scopeMetrics: metric ? [{ scope, metrics: [metric] }] : [] },
          errors: [],
        };
        return result;
      },
    };
  }
}
