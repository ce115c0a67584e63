// A real OTLP/gRPC receiver for tests, built from the official OTLP .proto files (test/fixtures/proto) with
// @grpc/grpc-js and @grpc/proto-loader. Listens on 127.0.0.1:<ephemeral>, plaintext; accepts gzip (grpc-js
// decompresses per message); keeps every decoded request; can be told to answer with a gRPC error status.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_ROOT = fileURLToPath(new URL('../../fixtures/proto/', import.meta.url));
const SERVICES = [
  'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
  'opentelemetry/proto/collector/logs/v1/logs_service.proto',
  'opentelemetry/proto/collector/trace/v1/trace_service.proto',
];

export interface ReceivedCall<T> {
  request: T;
  /** The grpc-encoding the client declared (e.g. 'gzip'), if any. */
  encoding: string | undefined;
}

export interface OtlpReceiver {
  port: number;
  /** `127.0.0.1:<port>` with the http:// scheme, i.e. a plaintext gRPC endpoint. */
  endpoint: string;
  /** Decoded ExportMetricsServiceRequest / ExportLogsServiceRequest / ExportTraceServiceRequest objects. */
  metrics: any[];
  logs: any[];
  traces: any[];
  calls: { metrics: ReceivedCall<any>[]; logs: ReceivedCall<any>[]; traces: ReceivedCall<any>[] };
  /** Answer every following Export with this status (e.g. grpc.status.UNAVAILABLE), or succeed again with null. */
  failWith(code: grpc.status | null, details?: string): void;
  /** Number of Export calls answered with an error. */
  rejected: number;
  waitFor(pred: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

// Decode with OTLP/JSON-like conventions: camelCase names, 64-bit ints as strings, enums as numbers, bytes as hex
// is not available in proto-loader, so ids stay Buffers (our tests do not use them).
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: Number,
  defaults: false,
  oneofs: false,
  includeDirs: [PROTO_ROOT],
};

function serviceDef(pkg: grpc.GrpcObject, path: string[]): grpc.ServiceDefinition {
  let node: any = pkg;
  for (const p of path) node = node[p];
  return node.service as grpc.ServiceDefinition;
}

/**
 * grpc-js strips grpc-encoding from the metadata it hands out; the encoding the client declared stays on the
 * innermost call object (`incomingEncoding`). Reading it is the only way to check compression from a handler.
 */
function incomingEncoding(call: grpc.ServerUnaryCall<any, any>): string | undefined {
  let node: any = (call as any).call;
  for (let depth = 0; node && depth < 10; depth++) {
    if (typeof node.incomingEncoding === 'string') return node.incomingEncoding;
    node = node.nextCall;
  }
  return undefined;
}

/** `port` 0 (default) lets the kernel pick; a fixed port restarts a "gateway" where agents already point. */
export async function startOtlpReceiver(opts: { port?: number } = {}): Promise<OtlpReceiver> {
  const definition = protoLoader.loadSync(SERVICES, LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition);
  const server = new grpc.Server();
  let failure: { code: grpc.status; details: string } | null = null;

  const receiver: OtlpReceiver = {
    port: 0,
    endpoint: '',
    metrics: [],
    logs: [],
    traces: [],
    calls: { metrics: [], logs: [], traces: [] },
    rejected: 0,
    failWith(code, details = 'test receiver told to fail') {
      failure = code === null ? null : { code, details };
    },
    async waitFor(pred, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`OTLP receiver: condition not met within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close() {
      return new Promise((resolve) => server.tryShutdown(() => resolve()));
    },
  };

  const handler =
    (signal: 'metrics' | 'logs' | 'traces') =>
    (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => {
      if (failure !== null) {
        receiver.rejected++;
        callback({ code: failure.code, details: failure.details });
        return;
      }
      const encoding = incomingEncoding(call);
      receiver[signal].push(call.request);
      receiver.calls[signal].push({ request: call.request, encoding });
      callback(null, {});
    };

  server.addService(serviceDef(pkg, ['opentelemetry', 'proto', 'collector', 'metrics', 'v1', 'MetricsService']), {
    Export: handler('metrics'),
  });
  server.addService(serviceDef(pkg, ['opentelemetry', 'proto', 'collector', 'logs', 'v1', 'LogsService']), {
    Export: handler('logs'),
  });
  server.addService(serviceDef(pkg, ['opentelemetry', 'proto', 'collector', 'trace', 'v1', 'TraceService']), {
    Export: handler('traces'),
  });

  receiver.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${opts.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  receiver.endpoint = `http://127.0.0.1:${receiver.port}`;
  return receiver;
}
