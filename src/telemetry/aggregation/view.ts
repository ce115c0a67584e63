// Which aggregation each connect instrument gets (the SDK's view/): tcp.connect.duration with explicit buckets and
// tcp.connect.failures are pre-aggregated by our storages (storage.ts); an exponential histogram stays on the SDK's
// path through a View. Both carry the cardinality limit, so the SDK path overflows the same way.
import { AggregationType, type ViewOptions } from '@opentelemetry/sdk-metrics';
import { CONNECT_DURATION_BUCKETS, INSTRUMENTS, SCOPE } from '../schema.ts';

export type HistogramKind = 'explicit' | 'exponential';

/** true when our storage aggregates tcp.connect.duration (explicit buckets), false when the SDK does. */
export function durationPreAggregated(histogram: HistogramKind): boolean {
  return histogram !== 'exponential';
}

export function views(histogram: HistogramKind, cardinalityLimit: number): ViewOptions[] {
  return [
    {
      instrumentName: INSTRUMENTS.connectDuration.name,
      meterName: SCOPE,
      aggregationCardinalityLimit: cardinalityLimit,
      aggregation:
        histogram === 'exponential'
          ? { type: AggregationType.EXPONENTIAL_HISTOGRAM }
          : { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: CONNECT_DURATION_BUCKETS } },
    },
    { instrumentName: INSTRUMENTS.connectFailures.name, meterName: SCOPE, aggregationCardinalityLimit: cardinalityLimit },
  ];
}
