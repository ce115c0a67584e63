// Aggregators, as the SDK's aggregator/ (one per aggregation kind): what one measurement does to a series' state and
// how a reported point is built. Series state lives in typed arrays owned by the storage (storage.ts), one row of
// `width` cells per slot; an Accumulation is one reported series in a reader's state (state.ts).
import type { Attributes } from '@opentelemetry/api';
import { millisToHrTime } from '@opentelemetry/core';
import { AggregationTemporality, DataPointType, type MetricData, type MetricDescriptor } from '@opentelemetry/sdk-metrics';
import type { Exemplar } from './exemplars.ts';

/** A data point may carry exemplars (the SDK's DataPoint has no field for them; exemplars.ts serializes them). */
export interface WithExemplars {
  exemplars?: Exemplar[];
}

/** One reported series in a reader's state. */
export interface Accumulation {
  readonly key: string;
  readonly attrs: Attributes;
  /** epoch ms of the first measurement merged into it */
  start: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  readonly buckets: Float64Array | undefined;
}

/** The bucket of a value: the SDK's binarySearchUB, first boundary >= value (buckets are upper-inclusive);
 * boundaries.length for +Inf. */
export function bucketIndex(boundaries: Float64Array, value: number): number {
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

export interface Aggregator {
  /** Cells per slot in the storage's bucket array (0: none). */
  readonly width: number;
  /** Bucket boundaries (histograms): the storage finds a value's bucket with bucketIndex. */
  readonly boundaries: Float64Array | undefined;
  /** `exemplars`: by series key, attached to that series' data point (histograms). */
  toMetricData(descriptor: MetricDescriptor, temporality: AggregationTemporality, accumulations: Accumulation[], endMs: number, exemplars?: Map<string, Exemplar[]>): MetricData;
}

/** Explicit-bucket histogram (the SDK's HistogramAggregator): count, sum, min, max and upper-inclusive buckets. */
export class ExplicitHistogramAggregator implements Aggregator {
  readonly width: number;
  readonly boundaries: Float64Array;

  constructor(boundaries: readonly number[]) {
    this.boundaries = Float64Array.from(boundaries);
    this.width = boundaries.length + 1;
  }

  toMetricData(descriptor: MetricDescriptor, temporality: AggregationTemporality, accumulations: Accumulation[], endMs: number, exemplars?: Map<string, Exemplar[]>): MetricData {
    const boundaries = [...this.boundaries];
    const endTime = millisToHrTime(endMs);
    return {
      descriptor,
      aggregationTemporality: temporality,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: accumulations.map((c) => {
        const point = {
          attributes: c.attrs,
          startTime: millisToHrTime(c.start),
          endTime,
          value: { min: c.min, max: c.max, sum: c.sum, buckets: { boundaries, counts: Array.from(c.buckets!) }, count: c.count },
        };
        const own = exemplars?.get(c.key);
        return own ? Object.assign(point, { exemplars: own } satisfies WithExemplars) : point;
      }),
    };
  }
}

/** Monotonic sum (the SDK's SumAggregator for a counter). */
export class SumAggregator implements Aggregator {
  readonly width = 0;
  readonly boundaries = undefined;

  toMetricData(descriptor: MetricDescriptor, temporality: AggregationTemporality, accumulations: Accumulation[], endMs: number): MetricData {
    const endTime = millisToHrTime(endMs);
    return {
      descriptor,
      aggregationTemporality: temporality,
      dataPointType: DataPointType.SUM,
      isMonotonic: true,
      dataPoints: accumulations.map((c) => ({ attributes: c.attrs, startTime: millisToHrTime(c.start), endTime, value: c.sum })),
    };
  }
}

export { AggregationTemporality };
