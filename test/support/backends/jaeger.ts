// Jaeger v2 (an OpenTelemetry Collector distribution) as a real process on free 127.0.0.1 ports: the traces backend
// the gateway writes to over OTLP gRPC (or HTTP), queried by trace id at /api/v3/traces/<id> (OTLP/JSON).
//
// Its configuration (written to the instance's directory) has only what the tests need: the OTLP receiver, storage
// in memory (or badger on disk, which survives stop()/start()), the query API, and no self-telemetry. Jaeger's query
// extension traces itself by default (enable_tracing defaults to true in v2) to OTLP at localhost:4317, where a
// test's collector may be listening, so it is switched off, as are the collector's own traces and metrics (the
// metrics would take port 8888).
import { connect } from 'node:net';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { freePort, retryOnPortRace } from '../collector/collector.ts';
import { BackendProcess, answers200, backendDir, okText, startNew } from './backend.ts';

/** One span of a trace as Jaeger returns it, flattened with its resource. */
export interface JaegerSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind number: 1 INTERNAL, 2 SERVER, 3 CLIENT, 4 PRODUCER, 5 CONSUMER. */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  /** OTLP status code: 0 UNSET, 1 OK, 2 ERROR. */
  statusCode: number;
  statusMessage: string;
  attributes: Record<string, AttributeValue>;
  resource: Record<string, AttributeValue>;
  scopeName: string;
}

export type AttributeValue = string | number | boolean | null | AttributeValue[];

export interface Jaeger {
  /** start()/stop()/close(), running, tail() */
  backend: BackendProcess;
  /** host:port of the OTLP gRPC receiver (the otlp_grpc exporter's `endpoint`, plaintext). */
  otlpGrpc: string;
  /** http://host:port of the OTLP/HTTP receiver (the otlp_http exporter's `endpoint`; it appends /v1/traces). */
  otlpHttp: string;
  /** http://host:port of the query API (and UI). */
  queryUrl: string;
  /** Every span of the trace (32 hex digits), or [] when Jaeger has none. */
  trace(traceId: string): Promise<JaegerSpan[]>;
}

export type JaegerStorage = 'memory' | 'badger';

/** The Jaeger v2 configuration for the given loopback ports and storage. */
export function jaegerConfig(p: { grpc: number; http: number; query: number; queryGrpc: number; storage: JaegerStorage; dir: string }): string {
  const badger = join(p.dir, 'badger');
  const store =
    p.storage === 'memory'
      ? '        memory:\n          max_traces: 100000\n'
      : `        badger:\n          directories:\n            keys: ${badger}\n            values: ${badger}\n          ephemeral: false\n`;
  return `# Written by test/support/backends/jaeger.ts
extensions:
  jaeger_storage:
    backends:
      store:
${store}  jaeger_query:
    storage:
      traces: store
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:${p.query}
    grpc:
      endpoint: 127.0.0.1:${p.queryGrpc}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${p.grpc}
      http:
        endpoint: 127.0.0.1:${p.http}
exporters:
  jaeger_storage_exporter:
    trace_storage: store
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
    traces:
      level: none
`;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port, timeout: 1000 });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('timeout', () => done(false));
    sock.once('error', () => done(false));
  });
}

/** Starts Jaeger v2 and resolves once its query API and OTLP receivers answer; `close()` it when done. */
export function startJaeger(binary: string, opts: { storage?: JaegerStorage } = {}): Promise<Jaeger> {
  return retryOnPortRace(() => startJaegerOnce(binary, opts.storage ?? 'memory'));
}

async function startJaegerOnce(binary: string, storage: JaegerStorage): Promise<Jaeger> {
  const dir = await backendDir('jaeger');
  const ports = { grpc: await freePort(), http: await freePort(), query: await freePort(), queryGrpc: await freePort() };
  const config = join(dir, 'jaeger.yaml');
  await writeFile(config, jaegerConfig({ ...ports, storage, dir }));
  const queryUrl = `http://127.0.0.1:${ports.query}`;
  const backend = new BackendProcess({
    name: 'jaeger',
    binary,
    dir,
    args: [`--config=${config}`],
    // Collector start order: extensions (the query API) first, receivers last, so an open OTLP port means all is up.
    ready: async () =>
      (await answers200(`${queryUrl}/api/v3/services`)) && (await tcpOpen(ports.grpc)) && (await tcpOpen(ports.http)),
  });
  await startNew(backend);
  return {
    backend,
    otlpGrpc: `127.0.0.1:${ports.grpc}`,
    otlpHttp: `http://127.0.0.1:${ports.http}`,
    queryUrl,
    async trace(traceId) {
      const res = await fetch(`${queryUrl}/api/v3/traces/${traceId}`, { signal: AbortSignal.timeout(5000) });
      if (res.status === 404) {
        await res.arrayBuffer();
        return [];
      }
      return flattenTrace(JSON.parse(await okText(res, `Jaeger trace ${traceId}`)) as OtlpJsonTrace);
    },
  };
}

interface OtlpJsonKeyValue {
  key: string;
  value?: OtlpJsonAnyValue;
}
interface OtlpJsonAnyValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpJsonAnyValue[] };
}
interface OtlpJsonTrace {
  result?: {
    resourceSpans?: Array<{
      resource?: { attributes?: OtlpJsonKeyValue[] };
      scopeSpans?: Array<{
        scope?: { name?: string };
        spans?: Array<{
          traceId: string;
          spanId: string;
          parentSpanId?: string;
          name: string;
          kind?: number;
          startTimeUnixNano?: string;
          endTimeUnixNano?: string;
          status?: { code?: number; message?: string };
          attributes?: OtlpJsonKeyValue[];
        }>;
      }>;
    }>;
  };
}

function anyValue(v: OtlpJsonAnyValue | undefined): AttributeValue {
  if (!v) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(anyValue);
  return null;
}

function attributes(kvs: OtlpJsonKeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((kvs ?? []).map((kv) => [kv.key, anyValue(kv.value)]));
}

/** Jaeger's /api/v3 answer (OTLP/JSON inside `result`; ids in hex, enums as numbers) as one list of spans. */
export function flattenTrace(body: OtlpJsonTrace): JaegerSpan[] {
  const out: JaegerSpan[] = [];
  for (const rs of body.result?.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? '',
          name: s.name,
          kind: s.kind ?? 0,
          startTimeUnixNano: BigInt(s.startTimeUnixNano ?? 0),
          endTimeUnixNano: BigInt(s.endTimeUnixNano ?? 0),
          statusCode: s.status?.code ?? 0,
          statusMessage: s.status?.message ?? '',
          attributes: attributes(s.attributes),
          resource,
          scopeName: ss.scope?.name ?? '',
        });
      }
    }
  }
  return out;
}
