// A PeriodicExportingMetricReader whose collection puts the pre-aggregated metrics (aggregation/storage.ts, handed in as
// metricProducers) into the same ScopeMetrics as the SDK's own metrics of that scope, in the order the SDK would
// have listed them had it recorded them itself. MetricReader.collect appends each producer's ScopeMetrics as a
// separate entry, which would export the `connlat` scope twice in one request.
import {
  PeriodicExportingMetricReader,
  type CollectionResult,
  type MetricCollectOptions,
  type MetricData,
  type PeriodicExportingMetricReaderOptions,
  type ScopeMetrics,
} from '@opentelemetry/sdk-metrics';

function sameScope(a: ScopeMetrics, b: ScopeMetrics): boolean {
  return a.scope.name === b.scope.name && (a.scope.version ?? '') === (b.scope.version ?? '') && a.scope.schemaUrl === b.scope.schemaUrl;
}

/** Metrics named in `order` first (in that order), then the rest as they came. */
function ordered(metrics: MetricData[], order: readonly string[]): MetricData[] {
  const rank = (m: MetricData): number => {
    const i = order.indexOf(m.descriptor.name);
    return i === -1 ? order.length : i;
  };
  return metrics.map((m, i) => ({ m, i })).sort((a, b) => rank(a.m) - rank(b.m) || a.i - b.i).map((x) => x.m);
}

/** Merges ScopeMetrics entries of one scope; metrics named in `order` come first. */
export function mergeScopes(scopeMetrics: ScopeMetrics[], order: readonly string[]): ScopeMetrics[] {
  const out: ScopeMetrics[] = [];
  for (const sm of scopeMetrics) {
    const same = out.find((o) => sameScope(o, sm));
    if (same === undefined) out.push({ scope: sm.scope, metrics: [...sm.metrics] });
    else same.metrics.push(...sm.metrics);
  }
  for (const sm of out) sm.metrics = ordered(sm.metrics, order);
  return out;
}

export class ScopeMergingMetricReader extends PeriodicExportingMetricReader {
  readonly #order: readonly string[];

  constructor(options: PeriodicExportingMetricReaderOptions & { metricOrder: readonly string[] }) {
    super(options);
    this.#order = options.metricOrder;
  }

  override async collect(options?: MetricCollectOptions): Promise<CollectionResult> {
    const result = await super.collect(options);
    result.resourceMetrics.scopeMetrics = mergeScopes(result.resourceMetrics.scopeMetrics, this.#order);
    return result;
  }
}
