import { connect, createServer } from 'node:net';

/** A loopback port that was free a moment ago (the kernel's pick); callers bind it right away. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Opens and closes `count` TCP connections to 127.0.0.1:port, one after another (each one a connect for the tools). */
export async function connectTimes(port: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve, reject) => {
      const c = connect(port, '127.0.0.1', () => c.end());
      c.on('close', () => resolve());
      c.on('error', reject);
    });
  }
}
