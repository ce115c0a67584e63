// PID -> pod: the pure stat parser, the resolver against a /proc-shaped folder (PID reuse, a process gone), and a
// real process moved into a kubelet-named cgroup on this machine's cgroup2 (and cgroup v1 pids) hierarchy.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { compactPod } from '../../src/enrich/compact.ts';
import { KubeEnricher } from '../../src/enrich/kube-enricher.ts';
import { parseStatStartTime, PidResolver, RECENT_MS } from '../../src/enrich/proc.ts';
import { KubeletCgroups, kubeletCgroupSkipReason } from './kubelet-cgroup.ts';
import type { ConnectEvent } from '../../src/event.ts';
import { createLogger } from '../../src/log.ts';

const UID = '5f0e3c1a-7b2d-4e6f-8a9b-0c1d2e3f4a5b';
const CID = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00';

function stat(pid: number, comm: string, start: number): string {
  // 52 fields; field 22 is starttime
  const rest = Array.from({ length: 50 }, (_, i) => (i + 3 === 22 ? String(start) : i === 0 ? 'S' : '0'));
  return `${pid} (${comm}) ${rest.join(' ')}\n`;
}

describe('parseStatStartTime', () => {
  it('reads field 22', () => assert.equal(parseStatStartTime(stat(42, 'curl', 123456)), '123456'));
  it('survives a COMM with ") " and spaces in it (attacker text)', () => {
    assert.equal(parseStatStartTime(stat(42, 'x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99999', 777)), '777');
  });
  it('rejects garbage', () => {
    assert.equal(parseStatStartTime('no parens here'), undefined);
    assert.equal(parseStatStartTime('1 (a) S 1'), undefined);
  });
});

describe('PidResolver on a /proc-shaped folder', () => {
  const root = mkdtempSync(join(tmpdir(), 'connlat-proc-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const put = (pid: number, start: number, cgroup: string) => {
    mkdirSync(join(root, String(pid)), { recursive: true });
    writeFileSync(join(root, String(pid), 'stat'), stat(pid, 'app', start));
    writeFileSync(join(root, String(pid), 'cgroup'), cgroup);
  };

  it('resolves, caches by (pid, start time), and a reused PID is looked up afresh', () => {
    const r = new PidResolver(root);
    put(100, 5000, `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID.replaceAll('-', '_')}.slice/cri-containerd-${CID}.scope\n`);
    assert.deepEqual(r.resolve(100), { kind: 'pod', podUid: UID, containerId: CID });
    assert.deepEqual(r.resolve(100), { kind: 'pod', podUid: UID, containerId: CID });
    assert.equal(r.counters.cacheHits, 1);
    // The PID is reused by a host process: new start time, new cgroup.
    put(100, 9000, '0::/system.slice/sshd.service\n');
    assert.deepEqual(r.resolve(100), { kind: 'host' });
    assert.equal(r.counters.cacheHits, 1);
  });

  it('a process gone right after an earlier lookup keeps that answer for RECENT_MS, then none', () => {
    let now = 1_000_000;
    const r = new PidResolver(root, 16_384, () => now);
    put(102, 7000, `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID.replaceAll('-', '_')}.slice/cri-containerd-${CID}.scope\n`);
    const pod = { kind: 'pod', podUid: UID, containerId: CID };
    assert.deepEqual(r.resolve(102), pod);
    rmSync(join(root, '102'), { recursive: true });
    now += RECENT_MS;
    assert.deepEqual(r.resolve(102), pod, 'its last connect, read after it exited');
    assert.equal(r.counters.goneButRecent, 1);
    now += 1;
    assert.deepEqual(r.resolve(102), { kind: 'gone' }, 'too long ago: the PID may have been handed out again');
    assert.equal(r.counters.processGone, 1);
    // A live reuse of the PID is never answered from the cache.
    put(102, 8000, '0::/system.slice/cron.service\n');
    assert.deepEqual(r.resolve(102), { kind: 'host' });
  });

  it('counts a process gone before the lookup', () => {
    const r = new PidResolver(root);
    assert.deepEqual(r.resolve(424242), { kind: 'gone' });
    assert.equal(r.counters.processGone, 1);
  });

  it('a cgroup that mentions kubepods but does not parse is unknown, not the host', () => {
    const r = new PidResolver(root);
    put(101, 1, `0::/system.slice/evil.service/kubepods-besteffort-pod${UID.replaceAll('-', '_')}.slice/cri-containerd-${CID}.scope\n`);
    assert.deepEqual(r.resolve(101), { kind: 'unknown' });
  });

  it('PID 0 (softirq context) and nonsense PIDs are unknown without touching /proc', () => {
    const r = new PidResolver(root);
    for (const pid of [0, -1, 1.5, Number.NaN]) assert.deepEqual(r.resolve(pid), { kind: 'unknown' });
    assert.equal(r.counters.lookups, 0);
  });

  it('keeps its cache bounded', () => {
    const r = new PidResolver(root, 2);
    put(201, 1, '0::/\n');
    put(202, 1, '0::/\n');
    put(203, 1, '0::/\n');
    for (const pid of [201, 202, 203]) r.resolve(pid);
    assert.equal(r.cacheSize, 2);
  });
});

describe('a real process in a kubelet-named cgroup', { skip: kubeletCgroupSkipReason() }, () => {
  const uid = '3d9a1c2b-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
  const cid = 'feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface';
  const cgroups = new KubeletCgroups();
  after(() => cgroups.cleanup());
  let child: ChildProcess | undefined;
  const spawnInCgroup = async () => (child ??= await cgroups.spawnInContainer(uid, cid));

  it('resolves the PID to the pod UID and container id (cgroup v2 systemd names, v1 cgroupfs names)', async () => {
    const child = await spawnInCgroup();
    const text = readFileSync(`/proc/${child.pid}/cgroup`, 'utf8');
    assert.match(text, /kubepods-besteffort-pod/);
    const r = new PidResolver('/proc');
    assert.deepEqual(r.resolve(child.pid!), { kind: 'pod', podUid: uid, containerId: cid });
    // our own process is a host process
    assert.deepEqual(r.resolve(process.pid), { kind: 'host' });
  });

  it('the enricher labels a hostNetwork pod connection by PID, and a host process as the node', async () => {
    const child = await spawnInCgroup();
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'none', server: 'https://127.0.0.1:1' }],
      users: [{ name: 'none' }],
      contexts: [{ name: 'none', cluster: 'none', user: 'none' }],
      currentContext: 'none',
    });
    const enricher = new KubeEnricher({ kubeConfig: kc, nodeName: 'node-a', hostProc: '/proc', logger: createLogger('error') });
    enricher.index.upsertLocalPod(
      compactPod(
        {
          metadata: { name: 'node-exporter-x1', namespace: 'monitoring', uid, ownerReferences: [{ kind: 'DaemonSet', name: 'node-exporter', controller: true }] },
          spec: { nodeName: 'node-a', hostNetwork: true },
          status: { phase: 'Running', podIP: '192.168.1.10', podIPs: [{ ip: '192.168.1.10' }], containerStatuses: [{ name: 'exporter', containerID: `containerd://${cid}` }] },
        },
        true,
      ),
    );
    const event = (pid: number): ConnectEvent => ({
      timeMs: 0, tool: 'tcpstates', pid, comm: 'x', ipVersion: 4, saddr: '192.168.1.10', sport: 40000,
      daddr: '203.0.113.9', dport: 443, latencyMs: 1, failed: false,
    });
    const fromPod = event(child.pid!);
    enricher.enrich(fromPod);
    assert.deepEqual(fromPod.src, {
      namespace: 'monitoring', name: 'node-exporter-x1', type: 'Pod', ownerName: 'node-exporter', ownerType: 'DaemonSet',
      podName: 'node-exporter-x1', podUid: uid, nodeName: 'node-a', containerName: 'exporter', containerId: cid,
    });
    assert.deepEqual(fromPod.dst, { type: 'External' });
    const fromHost = event(process.pid);
    enricher.enrich(fromHost);
    assert.deepEqual(fromHost.src, { name: 'node-a', type: 'Node', ownerName: 'node-a', ownerType: 'Node', nodeName: 'node-a' });
  });

  it('a process that exited before the lookup is counted, and keeps no identity', async () => {
    const child = spawn('true', { stdio: 'ignore' });
    await new Promise((r) => child.once('exit', r));
    const r = new PidResolver('/proc');
    assert.deepEqual(r.resolve(child.pid!), { kind: 'gone' });
    assert.equal(r.counters.processGone, 1);
  });
});
