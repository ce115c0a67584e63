// The backends for bench/gateway.ts: one OTLP/HTTP endpoint standing in for Mimir and Loki (an empty protobuf answer
// is a full success). It counts every request and its bytes per signal, and decodes one request in DECODE_EVERY
// (gzip, then protobuf) to check that what arrives is the agents' data: decoding all of them would cost the shared
// machine more CPU than the gateway it measures.
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';

const DECODE_EVERY = 20;

export interface SignalCount {
  requests: number;
  bytes: number;
  decoded: number;
  /** data points (or log records) in the decoded requests */
  decodedItems: number;
  /** time from a request's arrival to its answer: the sink's own latency, which the exporters wait for */
  answerMs: number;
  answerMaxMs: number;
}

export interface Sink {
  url: string;
  metrics: SignalCount;
  logs: SignalCount;
  close(): void;
}

type Decode = (body: Buffer) => number;

export async function startSink(countPoints: Decode, countLogs: Decode): Promise<Sink> {
  const zero = (): SignalCount => ({ requests: 0, bytes: 0, decoded: 0, decodedItems: 0, answerMs: 0, answerMaxMs: 0 });
  const metrics = zero();
  const logs = zero();
  const server = createServer((req, res) => {
    const start = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const [count, decode] = req.url?.endsWith('/v1/logs') ? [logs, countLogs] : [metrics, countPoints];
      count.requests++;
      count.bytes += body.length;
      if (count.requests % DECODE_EVERY === 1) {
        count.decoded++;
        count.decodedItems += decode(req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body);
      }
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end();
      const ms = performance.now() - start;
      count.answerMs += ms;
      count.answerMaxMs = Math.max(count.answerMaxMs, ms);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/otlp`, metrics, logs, close: () => server.close() };
}
