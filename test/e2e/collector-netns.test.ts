// The delayed network-namespace link the gateway e2e test relies on (test/support/netns): connects across it take
// the configured delay, a failed setup cleans up after itself, and teardown leaves nothing behind.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { createDelayedLink, kernelHasNetem, listTestArtifacts, netnsSkipReason, processAlive } from '../support/netns/netns.ts';

const skip = netnsSkipReason() ?? false;

function timedConnect(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sock = connect({ host, port, timeout: 5000 });
    sock.once('connect', () => {
      const ms = performance.now() - t0;
      sock.destroy();
      resolve(ms);
    });
    sock.once('timeout', () => reject(new Error('connect timed out')));
    sock.once('error', reject);
  });
}

describe('delayed netns link (test/support/netns)', { skip }, () => {
  test('connects cross the link with the delay, and teardown removes processes, devices and namespace', async () => {
    const link = await createDelayedLink({ delayMs: 40 });
    let pids: number[] = [];
    try {
      const listener = await link.listen(8080);
      pids = link.pids();
      const times: number[] = [];
      for (let i = 0; i < 5; i++) times.push(await timedConnect(link.nsAddr, 8080));
      // Measured in user space (includes this process's own wake-up), so only a lower bound is tight.
      assert.ok(Math.min(...times) >= 40, `a connect took less than the delay: ${times.map((t) => t.toFixed(1)).join(', ')}`);
      assert.ok(Math.min(...times) < 80, `connects far slower than the delay: ${times.map((t) => t.toFixed(1)).join(', ')}`);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(listener.accepted(), 5);
      // The far end really is in another namespace: the root namespace has no such address.
      const addrs = await link.exec('ip', ['-o', '-4', 'addr', 'show']);
      assert.match(addrs, new RegExp(`inet ${link.nsAddr.replaceAll('.', '\\.')}/30`));
    } finally {
      await link.teardown();
    }
    const left = await listTestArtifacts();
    assert.ok(!left.namespaces.includes(link.ns), `namespace ${link.ns} left`);
    for (const d of link.devices) assert.ok(!left.links.includes(d), `device ${d} left`);
    for (const pid of pids) assert.equal(processAlive(pid), false, `process ${pid} left`);
  });

  test('forcing netem on a kernel without sch_netem fails clearly and leaves nothing behind', { skip: kernelHasNetem() !== false && 'this kernel has (or may have) sch_netem' }, async () => {
    const before = await listTestArtifacts();
    await assert.rejects(createDelayedLink({ delayMs: 40, method: 'netem' }), /qdisc kind is unknown/);
    assert.deepEqual(await listTestArtifacts(), before);
  });
});
