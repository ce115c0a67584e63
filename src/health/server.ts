// /healthz (liveness: the process and its event loop answer) and /readyz (readiness: the tool is attached and
// reading, not crash-looping). Kubelet probes hit these; keep them cheap and dependency-free.
import type { Server } from 'node:http';

// Not `import { createServer } from 'node:http'`: an ES import of node:http reads every export for its namespace, and
// its lazy WebSocket/EventSource getters load Node's undici bundle (~9 MB RSS) that the agent never uses.
const { createServer } = process.getBuiltinModule('node:http');

export interface HealthState {
  /** undefined = ready; otherwise the reason it is not */
  notReadyReason(): string | undefined;
  /** false once shutdown has begun */
  alive(): boolean;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthServer(addr: string, state: HealthState): Promise<HealthServer> {
  const sep = addr.lastIndexOf(':');
  const host = addr.slice(0, sep) || '0.0.0.0';
  const port = Number(addr.slice(sep + 1));
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const reply = (code: number, body: string) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(body + '\n');
    };
    if (path === '/healthz' || path === '/livez') {
      if (state.alive()) reply(200, 'ok');
      else reply(503, 'shutting down');
    } else if (path === '/readyz') {
      const reason = state.notReadyReason();
      if (reason === undefined) reply(200, 'ready');
      else reply(503, `not ready: ${reason}`);
    } else {
      reply(404, 'not found: try /healthz or /readyz');
    }
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot listen on --health-addr ${addr}: ${err.message}`)));
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  return {
    port: typeof bound === 'object' && bound ? bound.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
