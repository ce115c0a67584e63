// VictoriaMetrics (single node) as a real process on a free 127.0.0.1 port with a temporary data directory: the
// metrics backend the gateway writes to over OTLP (/opentelemetry/v1/metrics, protobuf only) or Prometheus remote
// write (/api/v1/write), queried with PromQL (MetricsQL) at /api/v1/query.
//
// Flags that shape what the tests see:
//   -search.latencyOffset=0s              the default (30s) hides samples younger than 30 s from queries
//   -opentelemetry.usePrometheusNaming    OTLP names as the Prometheus translation makes them, the names our dashboards
//                                         and alerts use: tcp.connect.duration (unit s) ->
//                                         tcp_connect_duration_seconds_{bucket,sum,count}, a counter gets _total,
//                                         attribute server.address -> label server_address. Without it VictoriaMetrics
//                                         keeps the OTLP names (tcp.connect.duration_bucket{server.address=...}).
// An explicit-bucket OTLP histogram becomes the classic _bucket{le=...}/_sum/_count series, so histogram_quantile
// works unchanged; an exponential one becomes VictoriaMetrics' own _bucket{vmrange="lo...hi"} series (also read by
// histogram_quantile in MetricsQL). Every resource attribute becomes a label (-opentelemetry.promoteAllResourceAttributes
// defaults to true), like the collector's remote write with resource_to_telemetry_conversion.
import { queryPromApi, sumOf, type PromQueryApi } from '../collector/prometheus.ts';
import { forceFlush, startVictoria, type BackendProcess } from './backend.ts';

/** query()/queryScalar() are uncached (nocache=1). */
export interface VictoriaMetrics extends PromQueryApi {
  /** start()/stop()/close(), running, tail() */
  backend: BackendProcess;
  /** http://127.0.0.1:PORT */
  url: string;
  /** OTLP/HTTP base for the otlp_http exporter's `endpoint` (it appends /v1/metrics): http://127.0.0.1:PORT/opentelemetry */
  otlpEndpoint: string;
  /** Prometheus remote write: http://127.0.0.1:PORT/api/v1/write */
  remoteWriteUrl: string;
  /** Makes everything received so far searchable at once (/internal/force_flush). */
  flush(): Promise<void>;
}

export const VICTORIA_METRICS_FLAGS = ['-search.latencyOffset=0s', '-opentelemetry.usePrometheusNaming'];

/** Starts VictoriaMetrics and resolves once /health answers; `close()` it when done. */
export async function startVictoriaMetrics(binary: string, opts: { extraArgs?: string[] } = {}): Promise<VictoriaMetrics> {
  const { backend, url } = await startVictoria('victoria-metrics', binary, [
    // a shared 2-core test machine: keep its caches small
    '-memory.allowedBytes=256MiB',
    ...VICTORIA_METRICS_FLAGS,
    ...(opts.extraArgs ?? []),
  ]);
  const query = (promql: string) => queryPromApi(url, promql, { nocache: '1' });
  return {
    backend,
    url,
    otlpEndpoint: `${url}/opentelemetry`,
    remoteWriteUrl: `${url}/api/v1/write`,
    query,
    queryScalar: async (promql) => sumOf(await query(promql)),
    flush: () => forceFlush(url, 'VictoriaMetrics'),
  };
}
