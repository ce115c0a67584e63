// A real OTLP/HTTP logs endpoint for tests (the stand-in for Loki's native OTLP ingestion): POST <prefix>/v1/logs
// with a protobuf ExportLogsServiceRequest, gzip or not, decoded with the official .proto files (test/fixtures/proto)
// and kept as flat records. Listens where the caller says: a cluster test binds the address its pods can reach.
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import * as protoLoader from '@grpc/proto-loader';
import { flattenLogsRequest, type FlatLogRecord, type LogsRequestJson } from '../collector/file-exporter.ts';

const PROTO_ROOT = fileURLToPath(new URL('../../fixtures/proto/', import.meta.url));
const LOGS_SERVICE = 'opentelemetry/proto/collector/logs/v1/logs_service.proto';

export interface OtlpHttpLogsReceiver {
  /** Base URL to configure as an OTLP/HTTP logs endpoint, e.g. http://10.0.0.1:4318/otlp (the exporter adds /v1/logs). */
  url: string;
  records: FlatLogRecord[];
  /** Requests answered with 200. */
  requests: number;
  close(): Promise<void>;
}

export async function startOtlpHttpLogsReceiver(host: string, prefix = '/otlp'): Promise<OtlpHttpLogsReceiver> {
  const definition = protoLoader.loadSync(LOGS_SERVICE, { keepCase: false, longs: String, enums: Number, defaults: false, oneofs: false, includeDirs: [PROTO_ROOT] });
  const exportMethod = (definition['opentelemetry.proto.collector.logs.v1.LogsService'] as protoLoader.ServiceDefinition).Export!;
  const records: FlatLogRecord[] = [];
  const receiver: OtlpHttpLogsReceiver = { url: '', records, requests: 0, close: async () => undefined };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== `${prefix}/v1/logs`) {
        res.writeHead(404).end();
        return;
      }
      try {
        const raw = Buffer.concat(chunks);
        const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
        if (!String(req.headers['content-type']).startsWith('application/x-protobuf')) throw new Error(`content-type ${req.headers['content-type']}`);
        records.push(...flattenLogsRequest(exportMethod.requestDeserialize(body) as LogsRequestJson));
        receiver.requests++;
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end((err as Error).message);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const addr = server.address();
  if (!addr || typeof addr !== 'object') throw new Error('OTLP/HTTP receiver: no address');
  receiver.url = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}${prefix}`;
  receiver.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return receiver;
}
