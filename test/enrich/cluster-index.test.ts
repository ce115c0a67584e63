// The index on its own: objects shaped as the API returns them go through the compactors into the index.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterIndex, cronJobOfJobName, EXTERNAL, IpTable } from '../../src/enrich/cluster-index.ts';
import {
  compactController,
  compactEndpointSlice,
  compactNode,
  compactPod,
  compactService,
  containerIdFromStatus,
} from '../../src/enrich/compact.ts';

let uidSeq = 0;
const nextUid = () => `00000000-0000-4000-8000-${String(++uidSeq).padStart(12, '0')}`;

interface PodOpts {
  ns?: string;
  ip?: string | undefined;
  ips?: string[];
  phase?: string;
  created?: string;
  owner?: [kind: string, name: string];
  hash?: string;
  hostNetwork?: boolean;
  node?: string;
  uid?: string;
  mirror?: string;
}
function pod(name: string, o: PodOpts = {}) {
  const ips = o.ips ?? (o.ip ? [o.ip] : []);
  return {
    metadata: {
      name,
      namespace: o.ns ?? 'shop',
      uid: o.uid ?? nextUid(),
      resourceVersion: '1',
      creationTimestamp: o.created ?? '2026-01-01T00:00:00Z',
      labels: o.hash ? { 'pod-template-hash': o.hash } : {},
      annotations: o.mirror ? { 'kubernetes.io/config.mirror': o.mirror } : {},
      ownerReferences: o.owner ? [{ apiVersion: 'apps/v1', kind: o.owner[0], name: o.owner[1], controller: true, uid: 'x' }] : undefined,
    },
    spec: { nodeName: o.node ?? 'node-a', hostNetwork: o.hostNetwork ?? false },
    status: { phase: o.phase ?? 'Running', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) },
  };
}

describe('cronJobOfJobName', () => {
  const created = Date.parse('2026-01-01T00:05:00Z');
  for (const [name, want] of [
    ['backup-29453760', 'backup'], // scheduled 5 minutes before the pod
    ['nightly-etl-29453760', 'nightly-etl'],
    ['report-20260101', undefined], // a date
    ['backup-29000000', undefined], // 315 days before the pod started
    ['backup-29460000', undefined], // after the pod started
    ['backup-2945376', undefined], // 7 digits
    ['-29453760', undefined],
    ['backup', undefined],
  ] as const) {
    it(`${name} -> ${want}`, () => assert.equal(cronJobOfJobName(name, created), want));
  }
});

describe('IpTable', () => {
  it('keeps contenders ordered and reveals the next on delete', () => {
    const t = new IpTable<number>((a, b) => b - a);
    t.add('10.0.0.1', 1);
    t.add('10.0.0.1', 3);
    t.add('10.0.0.1', 2);
    assert.equal(t.get('10.0.0.1'), 3);
    t.remove('10.0.0.1', 3);
    assert.equal(t.get('10.0.0.1'), 2);
    t.remove('10.0.0.1', 2);
    t.remove('10.0.0.1', 1);
    assert.equal(t.get('10.0.0.1'), undefined);
    assert.equal(t.size, 0);
  });
});

describe('ClusterIndex destinations', () => {
  it('pod -> Deployment through its ReplicaSet, with the service it backs', () => {
    const idx = new ClusterIndex('node-a');
    idx.upsertController('ReplicaSet', compactController({ metadata: { name: 'cart-7d4f9c', namespace: 'shop', ownerReferences: [{ kind: 'Deployment', name: 'cart', controller: true }] } }));
    const p = pod('cart-7d4f9c-abcde', { ip: '10.244.1.5', owner: ['ReplicaSet', 'cart-7d4f9c'], hash: '7d4f9c' });
    idx.upsertPod(compactPod(p, false));
    idx.upsertEndpointSlice(compactEndpointSlice({
      metadata: { name: 'cart-x1', namespace: 'shop', uid: 'es1', labels: { 'kubernetes.io/service-name': 'cart' } },
      endpoints: [{ addresses: ['10.244.1.5'], targetRef: { kind: 'Pod', name: 'cart-7d4f9c-abcde' } }],
    }));
    assert.deepEqual(idx.resolveDestination('10.244.1.5'), {
      namespace: 'shop', name: 'cart-7d4f9c-abcde', type: 'Pod', ownerName: 'cart', ownerType: 'Deployment',
      podName: 'cart-7d4f9c-abcde', podUid: p.metadata.uid, nodeName: 'node-a', serviceName: 'cart',
    });
    // The same frozen object every time: no allocation per event.
    assert.equal(idx.resolveDestination('10.244.1.5'), idx.resolveDestination('10.244.1.5'));
    assert.ok(Object.isFrozen(idx.resolveDestination('10.244.1.5')));
  });

  it('owner fallbacks by naming convention only while the controller is unknown', () => {
    const idx = new ClusterIndex();
    const rsPod = compactPod(pod('web-5c8d7-q', { ip: '10.0.0.1', owner: ['ReplicaSet', 'web-5c8d7'], hash: '5c8d7' }), false);
    // 29453760 minutes after the epoch is 2026-01-01T00:00Z, when the pod() helper's pods are created
    const jobPod = compactPod(pod('backup-29453760-z', { ip: '10.0.0.2', owner: ['Job', 'backup-29453760'] }), false);
    const datedJobPod = compactPod(pod('report-20260101-z', { ip: '10.0.0.5', owner: ['Job', 'report-20260101'] }), false);
    const plainJobPod = compactPod(pod('migrate-x', { ip: '10.0.0.3', owner: ['Job', 'migrate'] }), false);
    const bareRsPod = compactPod(pod('lonely-q', { ip: '10.0.0.4', owner: ['ReplicaSet', 'lonely'] }), false);
    assert.deepEqual(idx.ownerOf(rsPod), ['web', 'Deployment']);
    assert.deepEqual(idx.ownerOf(jobPod), ['backup', 'CronJob']);
    assert.deepEqual(idx.ownerOf(plainJobPod), ['migrate', 'Job']);
    assert.deepEqual(idx.ownerOf(datedJobPod), ['report-20260101', 'Job']); // a date, not a schedule minute
    assert.deepEqual(idx.ownerOf(bareRsPod), ['lonely', 'ReplicaSet']); // no pod-template-hash: no guess
    // Real owner references win over the convention: this Job has no CronJob, this ReplicaSet belongs to a Rollout.
    idx.upsertController('Job', compactController({ metadata: { name: 'backup-29453760', namespace: 'shop' } }));
    idx.upsertController('ReplicaSet', compactController({ metadata: { name: 'web-5c8d7', namespace: 'shop', ownerReferences: [{ kind: 'Rollout', name: 'web-canary', controller: true }] } }));
    assert.deepEqual(idx.ownerOf(jobPod), ['backup-29453760', 'Job']);
    assert.deepEqual(idx.ownerOf(rsPod), ['web-canary', 'Rollout']);
  });

  it('StatefulSet, DaemonSet, bare and static pods', () => {
    const idx = new ClusterIndex();
    assert.deepEqual(idx.ownerOf(compactPod(pod('db-0', { owner: ['StatefulSet', 'db'] }), false)), ['db', 'StatefulSet']);
    assert.deepEqual(idx.ownerOf(compactPod(pod('fluent-x', { owner: ['DaemonSet', 'fluent'] }), false)), ['fluent', 'DaemonSet']);
    assert.deepEqual(idx.ownerOf(compactPod(pod('debug'), false)), ['debug', 'Pod']);
    assert.deepEqual(idx.ownerOf(compactPod(pod('etcd-node-a', { owner: ['Node', 'node-a'] }), false)), ['etcd-node-a', 'Pod']);
  });

  it('owner identity follows a ReplicaSet that arrives after its pods', () => {
    const idx = new ClusterIndex();
    idx.upsertPod(compactPod(pod('api-x', { ip: '10.0.0.9', owner: ['ReplicaSet', 'api-abc'] }), false));
    assert.equal(idx.resolveDestination('10.0.0.9').ownerType, 'ReplicaSet');
    idx.upsertController('ReplicaSet', compactController({ metadata: { name: 'api-abc', namespace: 'shop', ownerReferences: [{ kind: 'Deployment', name: 'api', controller: true }] } }));
    assert.equal(idx.resolveDestination('10.0.0.9').ownerName, 'api');
    assert.equal(idx.resolveDestination('10.0.0.9').ownerType, 'Deployment');
  });

  it('IP reuse: the newest running pod wins; Succeeded/Failed pods are ignored', () => {
    const idx = new ClusterIndex();
    const old = compactPod(pod('old', { ip: '10.0.0.7', created: '2026-01-01T00:00:00Z' }), false);
    const newer = compactPod(pod('newer', { ip: '10.0.0.7', created: '2026-01-02T00:00:00Z' }), false);
    const pending = compactPod(pod('pending', { ip: '10.0.0.7', created: '2026-01-03T00:00:00Z', phase: 'Pending' }), false);
    idx.upsertPod(old);
    idx.upsertPod(newer);
    idx.upsertPod(pending);
    assert.equal(idx.resolveDestination('10.0.0.7').name, 'newer');
    // newer completes: it no longer owns the IP
    idx.upsertPod(compactPod({ ...pod('newer', { ip: '10.0.0.7', uid: newer.metadata.uid, phase: 'Succeeded' }) }, false));
    assert.equal(idx.resolveDestination('10.0.0.7').name, 'old');
    idx.deletePod(old);
    assert.equal(idx.resolveDestination('10.0.0.7').name, 'pending');
    idx.deletePod(pending);
    assert.equal(idx.resolveDestination('10.0.0.7'), EXTERNAL);
  });

  it('a pod re-created under the same name (new UID, new IP) replaces the old one', () => {
    const idx = new ClusterIndex();
    idx.upsertPod(compactPod(pod('db-0', { ip: '10.0.1.1', owner: ['StatefulSet', 'db'] }), false));
    idx.upsertPod(compactPod(pod('db-0', { ip: '10.0.1.2', owner: ['StatefulSet', 'db'] }), false));
    assert.equal(idx.resolveDestination('10.0.1.1'), EXTERNAL);
    assert.equal(idx.resolveDestination('10.0.1.2').name, 'db-0');
    assert.equal(idx.sizes().pods, 1);
  });

  it('Service ClusterIPs (both families), external and load-balancer IPs; headless has none', () => {
    const idx = new ClusterIndex();
    idx.upsertService(compactService({
      metadata: { name: 'cart', namespace: 'shop', uid: 's1' },
      spec: { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00::a'], externalIPs: ['198.51.100.7'] },
      status: { loadBalancer: { ingress: [{ ip: '203.0.113.50' }] } },
    }));
    idx.upsertService(compactService({ metadata: { name: 'db', namespace: 'shop', uid: 's2' }, spec: { clusterIP: 'None', clusterIPs: ['None'] } }));
    const svc = { namespace: 'shop', name: 'cart', type: 'Service', ownerName: 'cart', ownerType: 'Service', serviceName: 'cart' };
    for (const ip of ['10.96.0.10', 'fd00::a', '198.51.100.7', '203.0.113.50']) assert.deepEqual(idx.resolveDestination(ip), svc);
    assert.equal(idx.sizes().serviceIps, 4);
    idx.deleteService(compactService({ metadata: { name: 'cart', namespace: 'shop', uid: 's1' } }));
    assert.equal(idx.resolveDestination('10.96.0.10'), EXTERNAL);
  });

  it('nodes by InternalIP/ExternalIP; hostNetwork pods never claim the node IP', () => {
    const idx = new ClusterIndex();
    idx.upsertNode(compactNode({ metadata: { name: 'node-b', uid: 'n1' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.1.11' }, { type: 'Hostname', address: 'node-b' }, { type: 'ExternalIP', address: '198.51.100.2' }] } }));
    idx.upsertPod(compactPod(pod('kube-proxy-x', { ip: '192.168.1.11', hostNetwork: true, owner: ['DaemonSet', 'kube-proxy'] }), false));
    const node = { name: 'node-b', type: 'Node', ownerName: 'node-b', ownerType: 'Node', nodeName: 'node-b' };
    assert.deepEqual(idx.resolveDestination('192.168.1.11'), node);
    assert.deepEqual(idx.resolveDestination('198.51.100.2'), node);
    assert.equal(idx.resolveDestination('node-b'), EXTERNAL);
  });

  it('an EndpointSlice address with no pod in the index still names its service', () => {
    const idx = new ClusterIndex();
    const slice = compactEndpointSlice({
      metadata: { name: 'legacy-db-1', namespace: 'shop', uid: 'es9', labels: { 'kubernetes.io/service-name': 'legacy-db' } },
      endpoints: [{ addresses: ['172.16.9.9'] }, { addresses: ['10.244.9.9'], targetRef: { kind: 'Pod', name: 'late-pod' } }],
    });
    idx.upsertEndpointSlice(slice);
    assert.deepEqual(idx.resolveDestination('172.16.9.9'), { namespace: 'shop', name: 'legacy-db', type: 'Service', ownerName: 'legacy-db', ownerType: 'Service', serviceName: 'legacy-db' });
    assert.deepEqual(idx.resolveDestination('10.244.9.9'), { namespace: 'shop', name: 'late-pod', type: 'Pod', podName: 'late-pod', serviceName: 'legacy-db' });
    idx.deleteEndpointSlice(slice);
    assert.equal(idx.resolveDestination('172.16.9.9'), EXTERNAL);
  });
});

describe('ClusterIndex source side (this node)', () => {
  it('local pods by IP and by UID, static pods by their config hash', () => {
    const idx = new ClusterIndex('node-a');
    const hash = '0123456789abcdef0123456789abcdef';
    const staticPod = compactPod(pod('kube-apiserver-node-a', { hostNetwork: true, ip: '192.168.1.10', owner: ['Node', 'node-a'], mirror: hash }), true);
    const app = compactPod(pod('app', { ip: '10.244.0.3' }), true);
    idx.upsertLocalPod(staticPod);
    idx.upsertLocalPod(app);
    assert.equal(idx.localPodByUid(hash), staticPod);
    assert.equal(idx.localPodByUid(staticPod.metadata.uid), staticPod);
    assert.equal(idx.localPodByIp('192.168.1.10'), undefined); // hostNetwork: resolved by PID, not by IP
    assert.equal(idx.localPodByIp('10.244.0.3'), app);
    idx.upsertLocalPod(compactPod(pod('app', { ip: '10.244.0.3', uid: app.metadata.uid, phase: 'Failed' }), true));
    assert.equal(idx.localPodByIp('10.244.0.3'), undefined);
    assert.equal(idx.localPodByUid(app.metadata.uid), undefined);
    idx.deleteLocalPod(staticPod);
    assert.equal(idx.localPodByUid(hash), undefined);
  });

  it('container ids from container statuses, any runtime scheme', () => {
    const id = 'ab'.repeat(32);
    assert.equal(containerIdFromStatus(`containerd://${id}`), id);
    assert.equal(containerIdFromStatus(`cri-o://${id}`), id);
    assert.equal(containerIdFromStatus(`docker://${id}`), id);
    assert.equal(containerIdFromStatus('containerd://short'), undefined);
    assert.equal(containerIdFromStatus(undefined), undefined);
    const rec = compactPod({ ...pod('two'), status: { phase: 'Running', containerStatuses: [{ name: 'app', containerID: `containerd://${id}` }, { name: 'sidecar' }], initContainerStatuses: [{ name: 'init', containerID: `containerd://${'cd'.repeat(32)}` }] } }, true);
    assert.deepEqual(rec.containers, [{ id, name: 'app' }, { id: 'cd'.repeat(32), name: 'init' }]);
  });
});
