// OTLP/gRPC clients that export logs, metrics and spans to one endpoint as fast as it answers, over and over, the way
// agents that were retrying hit a gateway the moment its port opens. Requests are encoded from the official OTLP
// .proto files (test/fixtures/proto) with @grpc/grpc-js and @grpc/proto-loader, like the test receiver next door.
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_ROOT = fileURLToPath(new URL('../../fixtures/proto/', import.meta.url));
const defs = protoLoader.loadSync(
  [
    'opentelemetry/proto/collector/logs/v1/logs_service.proto',
    'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
    'opentelemetry/proto/collector/trace/v1/trace_service.proto',
  ],
  { keepCase: false, longs: String, enums: Number, defaults: false, oneofs: false, includeDirs: [PROTO_ROOT] },
);
const SIGNALS = {
  logs: defs['opentelemetry.proto.collector.logs.v1.LogsService'] as grpc.ServiceDefinition,
  metrics: defs['opentelemetry.proto.collector.metrics.v1.MetricsService'] as grpc.ServiceDefinition,
  traces: defs['opentelemetry.proto.collector.trace.v1.TraceService'] as grpc.ServiceDefinition,
};
export type Signal = keyof typeof SIGNALS;

const str = (key: string, value: string) => ({ key, value: { stringValue: value } });

/** One Export request of `signal` with `items` records/points/spans from a resource in `namespace`. */
export function exportRequest(signal: Signal, namespace: string, items: number): Buffer {
  const resource = { attributes: [str('k8s.namespace.name', namespace), str('service.name', 'connlat')] };
  const now = BigInt(Date.now()) * 1_000_000n;
  const scope = { name: 'connlat' };
  const body =
    signal === 'logs'
      ? { resourceLogs: [{ resource, scopeLogs: [{ scope, logRecords: Array.from({ length: items }, (_, i) => ({ timeUnixNano: String(now), severityNumber: 13, body: { stringValue: `slow connect ${i}` }, attributes: [str('server.address', '10.0.0.1')] })) }] }] }
      : signal === 'metrics'
        ? { resourceMetrics: [{ resource, scopeMetrics: [{ scope, metrics: Array.from({ length: items }, (_, i) => ({ name: `test.gauge.${i}`, gauge: { dataPoints: [{ timeUnixNano: String(now), asDouble: i }] } })) }] }] }
        : { resourceSpans: [{ resource, scopeSpans: [{ scope, spans: Array.from({ length: items }, () => ({ traceId: randomBytes(16), spanId: randomBytes(8), name: 'connect', kind: 3, startTimeUnixNano: String(now - 1_000_000n), endTimeUnixNano: String(now) })) }] }] };
  return SIGNALS[signal].Export!.requestSerialize(body);
}

export interface Flood {
  /** Export calls answered OK, and answered with an error (refused, unavailable, reset). */
  readonly ok: number;
  readonly failed: number;
  stop(): Promise<void>;
}

/**
 * `channels` gRPC channels to `endpoint` (host:port), each exporting `signals` in turn without pause, each request
 * `items` long, alternating the two namespaces. Connection errors are counted and retried at once (grpc-js
 * reconnects with its own short backoff).
 */
export function floodOtlp(endpoint: string, o: { channels: number; signals: Signal[]; namespaces: [string, string]; items: number }): Flood {
  const raw = (b: Buffer) => b;
  let running = true;
  const counts = { ok: 0, failed: 0 };
  const clients = Array.from({ length: o.channels }, () => new grpc.Client(endpoint, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.initial_reconnect_backoff_ms': 20, 'grpc.max_reconnect_backoff_ms': 100 }));
  const loops = clients.map(async (client, c) => {
    for (let n = 0; running; n++) {
      const signal = o.signals[n % o.signals.length]!;
      const request = exportRequest(signal, o.namespaces[(n + c) % 2]!, o.items);
      const path = SIGNALS[signal].Export!.path;
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.makeUnaryRequest(path, raw, raw, request, { deadline: Date.now() + 2000 }, (e) => resolve(e)),
      );
      if (err) {
        counts.failed++;
        await new Promise((r) => setTimeout(r, 5));
      } else counts.ok++;
    }
  });
  return {
    get ok() { return counts.ok; },
    get failed() { return counts.failed; },
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const c of clients) c.close();
    },
  };
}
