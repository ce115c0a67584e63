// Both ends of the fidelity tests' connects, run inside a test namespace with `ip netns exec`:
//   node tcp-peer.ts listen HOST PORT [HOST PORT ...]   accepts and closes; prints "L" once every listener is up
//   node tcp-peer.ts connect JSON                        JSON: [{host, port, timeoutMs?}]; all at once; prints one
//     JSON array, per connect in order: {code: 'ok' | 'app_timeout' | errno code, ms, localPort?}
// app_timeout: no answer within timeoutMs, so the socket was closed while still connecting (an application timeout).
import { connect, createServer } from 'node:net';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'listen') {
  let pending = args.length / 2;
  for (let i = 0; i < args.length; i += 2) {
    const server = createServer((s) => s.destroy());
    server.listen(Number(args[i + 1]), args[i], () => {
      if (--pending === 0) process.stdout.write('L\n');
    });
    process.on('SIGTERM', () => process.exit(0));
  }
} else if (mode === 'connect') {
  const targets = JSON.parse(args[0]!) as { host: string; port: number; timeoutMs?: number }[];
  const results = await Promise.all(
    targets.map(
      (t) =>
        new Promise<{ code: string; ms: number; localPort?: number }>((resolve) => {
          const t0 = performance.now();
          const sock = connect({ host: t.host, port: t.port });
          const done = (code: string) => {
            clearTimeout(timer);
            const localPort = sock.localPort;
            sock.destroy();
            resolve({ code, ms: performance.now() - t0, ...(localPort ? { localPort } : {}) });
          };
          const timer = t.timeoutMs === undefined ? undefined : setTimeout(() => done('app_timeout'), t.timeoutMs);
          sock.once('connect', () => done('ok'));
          sock.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'error'));
        }),
    ),
  );
  process.stdout.write(`${JSON.stringify(results)}\n`);
} else {
  process.stderr.write('usage: tcp-peer.ts listen HOST PORT ... | connect JSON\n');
  process.exit(2);
}
