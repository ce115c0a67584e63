// The tests' workload image (test/support/workload), as scripts/build-images.sh built it, run with podman: the client
// counts exactly, the server serves, and the delayed server (NFQUEUE) makes every connect to it slower by --delay-ms.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { waitFor } from '../support/collector/collector.ts';
import { builtImages, loadImage, podman, spawnPodman } from './support/podman.ts';

const images = await builtImages();

test('workload image (test/support/workload): exact connect counts, refused connects counted as failed', { timeout: 5 * 60_000 }, async (t) => {
  const archives = images.archives;
  if (!archives) return t.skip(images.skip);
  const { ref, id } = await loadImage(archives.workload);
  assert.equal(ref, 'localhost/connlat-test-workload:1');
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    s.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const client = await podman(['run', '--rm', '--network=host', id, 'connect', '127.0.0.1', String(port), '7', '--interval-ms=10', '--exit']);
  assert.equal(client.code, 0, client.stderr);
  assert.match(client.stdout.trim(), /^connect ok=7 failed=0 median_ms=[\d.]+$/);
  assert.equal(accepted, 7);

  server.close();
  const refused = await podman(['run', '--rm', '--network=host', id, 'connect', '127.0.0.1', String(port), '3', '--interval-ms=10', '--exit']);
  assert.equal(refused.code, 0, refused.stderr);
  assert.equal(refused.stdout.trim(), 'connect ok=0 failed=3 median_ms=0.0');

  // serve: the image's server, connected to by the image's client (both on the host network, loopback only).
  const serverPort = port; // free again: our server closed it
  const name = `connlat-workload-test-${process.pid}`;
  const serve = spawnPodman(['run', '--rm', `--name=${name}`, '--network=host', id, 'serve', String(serverPort), '--host=127.0.0.1']);
  let served = '';
  serve.stdout!.on('data', (d: Buffer) => (served += d.toString()));
  const stopped = new Promise<number | null>((r) => serve.on('close', r));
  try {
    await waitFor('the workload server', async () => (served.includes(`listening 127.0.0.1:${serverPort}`) ? true : undefined), 30_000);
    const toServer = await podman(['run', '--rm', '--network=host', id, 'connect', '127.0.0.1', String(serverPort), '4', '--interval-ms=10', '--exit']);
    assert.match(toServer.stdout.trim(), /^connect ok=4 failed=0 median_ms=[\d.]+$/);
  } finally {
    await podman(['stop', '--time=5', name]);
    assert.equal(await stopped, 0, 'serve exits 0 on SIGTERM');
  }
});

test('workload image: serve --delay-ms 40 holds its SYN-ACKs, so each connect takes 40 ms more (no netem in this kernel)', { timeout: 5 * 60_000 }, async (t) => {
  const archives = images.archives;
  if (!archives) return t.skip(images.skip);
  const { id } = await loadImage(archives.workload);
  // Server and client in one container with its own network namespace (--network=none: loopback only), which
  // is where the iptables rule goes; CAP_NET_ADMIN for the rule and the netlink queue.
  const script = 'connlat-workload serve 8080 --host=127.0.0.1 --delay-ms=40 & sleep 1; connlat-workload connect 127.0.0.1 8080 9 --interval-ms=10 --exit';
  const delayed = await podman(['run', '--rm', '--network=none', '--cap-add=NET_ADMIN', '--entrypoint=/bin/sh', id, '-c', script]);
  assert.equal(delayed.code, 0, delayed.stderr);
  const m = /^connect ok=9 failed=0 median_ms=([\d.]+)$/m.exec(delayed.stdout);
  assert.ok(m, delayed.stdout);
  const median = Number(m[1]);
  t.diagnostic(`median connect ${median} ms`);
  assert.ok(median >= 40 && median < 44, `median ${median} ms: within 10% above 40 ms`);

  const refused = await podman(['run', '--rm', '--network=none', id, 'serve', '8080', '--delay-ms=40']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^connlat-workload: --delay-ms needs CAP_NET_ADMIN in its own network namespace: .*Operation not permitted/);
});
