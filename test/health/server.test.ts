import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHealthServer } from '../../src/health/server.ts';

test('/healthz and /readyz follow the state', async () => {
  let ready: string | undefined = 'tcpstates is not attached and reading';
  let alive = true;
  const server = await startHealthServer('127.0.0.1:0', { notReadyReason: () => ready, alive: () => alive });
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${server.port}${path}`);
    return [res.status, (await res.text()).trim()] as const;
  };
  try {
    assert.deepEqual(await get('/healthz'), [200, 'ok']);
    assert.deepEqual(await get('/readyz'), [503, 'not ready: tcpstates is not attached and reading']);
    ready = undefined;
    assert.deepEqual(await get('/readyz'), [200, 'ready']);
    alive = false;
    assert.deepEqual(await get('/healthz'), [503, 'shutting down']);
    assert.equal((await get('/metrics'))[0], 404);
  } finally {
    await server.close();
  }
});

test('a taken port is a clear error naming the setting', async () => {
  const a = await startHealthServer('127.0.0.1:0', { notReadyReason: () => undefined, alive: () => true });
  try {
    await assert.rejects(startHealthServer(`127.0.0.1:${a.port}`, { notReadyReason: () => undefined, alive: () => true }), /cannot listen on --health-addr 127\.0\.0\.1:\d+: .*EADDRINUSE/);
  } finally {
    await a.close();
  }
});
