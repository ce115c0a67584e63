// A stand-in vendor OTLP/HTTP endpoint (otel-config/vendor-apm.yaml's target): records every request, with its
// headers and its body (gzip undone), and answers 200. Only the headers and what reached it are checked against it;
// the data itself is queried back from the real backends.
import { createServer, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';

export interface CapturedRequest {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Body after Content-Encoding is undone (OTLP protobuf: attribute keys and strings appear verbatim). */
  body: Buffer;
}

export interface VendorEndpoint {
  url: string;
  requests: CapturedRequest[];
  close(): Promise<void>;
}

export async function startVendorEndpoint(): Promise<VendorEndpoint> {
  const requests: CapturedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      requests.push({ path: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (!addr || typeof addr !== 'object') throw new Error('vendor endpoint: no address');
  return {
    url: `http://127.0.0.1:${addr.port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
