// A relist marks what it upserts and sweeps the rest (cluster-index.ts beginList/endList): the marks themselves
// (ByName's insertion order, PodTable's byte per slot), the index across every kind, and a Reflector relisting from a
// real loopback server after a 410 Gone.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { ClusterIndex, EXTERNAL } from '../../src/enrich/cluster-index.ts';
import { compactController, compactEndpointSlice, compactNode, compactPod, compactService } from '../../src/enrich/compact.ts';
import { PodTable } from '../../src/enrich/pod-table.ts';
import { Reflector } from '../../src/enrich/reflector.ts';
import { ByName } from '../../src/enrich/tables.ts';

function pod(name: string, ip: string, o: { ns?: string; uid?: string; owner?: [string, string]; phase?: string; created?: string } = {}) {
  return {
    metadata: {
      name, namespace: o.ns ?? 'shop', uid: o.uid ?? `00000000-0000-4000-8000-${name.padStart(12, '0').slice(-12).replace(/[^0-9a-f]/g, '0')}`,
      creationTimestamp: o.created ?? '2026-01-01T00:00:00Z',
      ownerReferences: o.owner ? [{ kind: o.owner[0], name: o.owner[1], controller: true }] : undefined,
    },
    spec: { nodeName: 'node-a' },
    status: { phase: o.phase ?? 'Running', podIPs: [{ ip }] },
  };
}

describe('ByName mark and sweep', () => {
  const fill = () => {
    const t = new ByName<number>();
    for (const [ns, name] of [['a', '1'], ['a', '2'], ['a', '3'], ['b', '1'], [undefined, 'x']] as const) t.set(ns, name, 0);
    return t;
  };
  const swept = (t: ByName<number>) => {
    const gone: string[] = [];
    t.sweep((ns, name) => gone.push(`${ns ?? '-'}/${name}`));
    return gone.sort();
  };
  for (const [what, again, want] of [
    ['nothing listed again: everything goes', [], ['-/x', 'a/1', 'a/2', 'a/3', 'b/1']],
    ['everything listed again, in another order', [['b', '1'], [undefined, 'x'], ['a', '3'], ['a', '1'], ['a', '2']], []],
    ['some of a namespace, a new name, another namespace whole', [['a', '2'], ['a', '9'], ['b', '1']], ['-/x', 'a/1', 'a/3']],
    ['a namespace only new names', [['c', '1'], ['a', '4']], ['-/x', 'a/1', 'a/2', 'a/3', 'b/1']],
  ] as Array<[string, Array<[string | undefined, string]>, string[]]>) {
    it(what, () => {
      const t = fill();
      t.mark();
      for (const [ns, name] of again) t.set(ns, name, 1);
      assert.deepEqual(swept(t), want);
    });
  }

  it('a delete before the set again (how IndexedRecords upserts) still counts as listed; no mark, no sweep', () => {
    const t = fill();
    assert.deepEqual(swept(t), []);
    t.mark();
    t.delete('b', '1');
    t.set('b', '1', 1);
    t.delete('a', '1');
    t.set('a', '1', 1);
    assert.deepEqual(swept(t), ['-/x', 'a/2', 'a/3']);
  });
});

describe('PodTable relist', () => {
  it('an unchanged pod keeps its slot and cached identity; changed ones move; the unlisted go, IPs and all', () => {
    const t = new PodTable();
    const same = compactPod(pod('same', '10.0.0.1'), false);
    t.upsert(same, true);
    t.upsert(compactPod(pod('moved', '10.0.0.2'), false), true);
    t.upsert(compactPod(pod('gone', '10.0.0.3'), false), true);
    const slot = t.byIp.get('10.0.0.1')!;
    t.cacheIdentity(slot, 0, { name: 'same' });
    t.beginList();
    t.upsert(compactPod(pod('same', '10.0.0.1'), false), true);
    t.upsert(compactPod(pod('moved', '10.0.0.4'), false), true);
    t.upsert(compactPod(pod('new', '10.0.0.5'), false), true);
    assert.equal(t.endList(), 1);
    assert.equal(t.byIp.get('10.0.0.1'), slot);
    assert.deepEqual(t.cachedIdentity(slot, 0), { name: 'same' });
    assert.equal(t.byIp.get('10.0.0.2'), undefined);
    assert.equal(t.byIp.get('10.0.0.3'), undefined);
    assert.equal(t.fields(t.byIp.get('10.0.0.4')!).metadata.name, 'moved');
    assert.deepEqual([...t.keys()].map((k) => k.metadata.name).sort(), ['moved', 'new', 'same']);
    // a pod listed unchanged except its phase, its UID or its owner is replaced, not kept
    for (const changed of [{ phase: 'Pending' }, { uid: '00000000-0000-4000-8000-00000000beef' }, { owner: ['Job', 'j'] as [string, string] }]) {
      t.beginList();
      for (const n of ['moved', 'new']) t.upsert(compactPod(pod(n, n === 'moved' ? '10.0.0.4' : '10.0.0.5'), false), true);
      t.upsert(compactPod(pod('same', '10.0.0.1', changed), false), true);
      assert.equal(t.endList(), 0);
      assert.equal(t.cachedIdentity(t.byIp.get('10.0.0.1')!, 0), undefined);
    }
  });
});

describe('ClusterIndex relist of every kind', () => {
  it('removes what each relist did not have, through the same deletes a watch takes (IP reuse, Jobs, Services)', () => {
    const idx = new ClusterIndex('node-a');
    const svc = (name: string, ip: string) => compactService({ metadata: { name, namespace: 'shop', uid: name }, spec: { clusterIP: ip, clusterIPs: [ip] } });
    const slice = (name: string, ip: string, podName: string) => compactEndpointSlice({
      metadata: { name, namespace: 'shop', uid: name, labels: { 'kubernetes.io/service-name': name.split('-')[0] } },
      endpoints: [{ addresses: [ip], targetRef: { kind: 'Pod', name: podName } }],
    });
    idx.upsertService(svc('cart', '10.96.0.1'));
    idx.upsertService(svc('old', '10.96.0.2'));
    idx.upsertNode(compactNode({ metadata: { name: 'node-b', uid: 'n' }, status: { addresses: [{ type: 'InternalIP', address: '192.168.1.2' }] } }));
    idx.upsertController('Job', compactController({ metadata: { name: 'migrate', namespace: 'shop', ownerReferences: [{ kind: 'CronJob', name: 'nightly', controller: true }] } }));
    idx.upsertPod(compactPod(pod('old-pod', '10.0.0.7', { created: '2026-01-01T00:00:00Z' }), false));
    idx.upsertPod(compactPod(pod('job-pod', '10.0.0.8', { owner: ['Job', 'migrate'] }), false));
    idx.upsertEndpointSlice(slice('cart-1', '10.0.0.9', 'ghost'));
    idx.upsertLocalPod(compactPod(pod('local', '10.0.0.10'), true));
    assert.equal(idx.resolveDestination('10.0.0.8').ownerName, 'nightly');

    // The relists: a pod reusing old-pod's IP, the Job and the Service "old" and the node gone, a slice replaced.
    const relist = (kind: Parameters<ClusterIndex['beginList']>[0], upserts: () => void) => (idx.beginList(kind), upserts(), idx.endList(kind));
    relist('pods', () => {
      idx.upsertPod(compactPod(pod('new-pod', '10.0.0.7', { created: '2026-01-02T00:00:00Z' }), false));
      idx.upsertPod(compactPod(pod('job-pod', '10.0.0.8', { owner: ['Job', 'migrate'] }), false));
    });
    relist('services', () => idx.upsertService(svc('cart', '10.96.0.1')));
    relist('nodes', () => {});
    relist('jobs', () => {});
    relist('replicasets', () => {});
    relist('endpointslices', () => idx.upsertEndpointSlice(slice('cart-2', '10.0.0.11', 'x')));
    relist('localPods', () => {});

    assert.equal(idx.resolveDestination('10.0.0.7').name, 'new-pod');
    assert.deepEqual([idx.resolveDestination('10.0.0.8').ownerName, idx.resolveDestination('10.0.0.8').ownerType], ['migrate', 'Job']);
    assert.equal(idx.resolveDestination('10.96.0.1').name, 'cart');
    for (const ip of ['10.96.0.2', '192.168.1.2', '10.0.0.9']) assert.equal(idx.resolveDestination(ip), EXTERNAL, ip);
    assert.equal(idx.resolveDestination('10.0.0.11').name, 'x');
    assert.equal(idx.localPodByIp('10.0.0.10'), undefined);
    assert.deepEqual(idx.sizes(), { pods: 2, podIps: 2, localPods: 0, services: 1, serviceIps: 1, nodes: 0, endpointIps: 1, controllers: 0 });
  });
});

describe('ClusterIndex: what a relist lists unchanged stays as it was', () => {
  it('an unchanged pod, slice and Service keep their cached identities; a changed slice rebuilds them', () => {
    const idx = new ClusterIndex();
    const slice = (service: string) => compactEndpointSlice({
      metadata: { name: 'cart-1', namespace: 'shop', uid: 'es1', labels: { 'kubernetes.io/service-name': service } },
      endpoints: [{ addresses: ['10.0.0.1'], targetRef: { kind: 'Pod', name: 'p' } }],
    });
    const svc = () => compactService({ metadata: { name: 'cart', namespace: 'shop', uid: 's1' }, spec: { clusterIP: '10.96.0.1', clusterIPs: ['10.96.0.1'] } });
    idx.upsertPod(compactPod(pod('p', '10.0.0.1'), false));
    idx.upsertEndpointSlice(slice('cart'));
    idx.upsertService(svc());
    const [podId, svcId] = [idx.resolveDestination('10.0.0.1'), idx.resolveDestination('10.96.0.1')];
    assert.equal(podId.serviceName, 'cart');
    for (const kind of ['pods', 'endpointslices', 'services'] as const) idx.beginList(kind);
    idx.upsertPod(compactPod(pod('p', '10.0.0.1'), false));
    idx.upsertEndpointSlice(slice('cart'));
    idx.upsertService(svc());
    for (const kind of ['pods', 'endpointslices', 'services'] as const) idx.endList(kind);
    assert.equal(idx.resolveDestination('10.0.0.1'), podId);
    assert.equal(idx.resolveDestination('10.96.0.1'), svcId);
    idx.upsertEndpointSlice(slice('shop-api'));
    assert.equal(idx.resolveDestination('10.0.0.1').serviceName, 'shop-api');
  });
});

describe('Reflector relist after a 410 Gone, from a loopback server', () => {
  it('lists, is told its watch is too old, relists, and the index holds exactly the second list', async (t) => {
    const lists = [
      [pod('a', '10.0.0.1'), pod('b', '10.0.0.2'), pod('c', '10.0.0.3', { ns: 'web' })],
      [pod('b', '10.0.0.20'), pod('c', '10.0.0.3', { ns: 'web' }), pod('d', '10.0.0.1')],
    ];
    const served: string[] = [];
    let round = 0;
    const server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      served.push(url.searchParams.get('watch') === 'true' ? `watch@${url.searchParams.get('resourceVersion')}` : `list ${url.searchParams.get('continue') ?? ''}`);
      if (url.searchParams.get('watch') === 'true') {
        round++;
        return void res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, message: 'too old resource version' } })}\n`);
      }
      // two pages per list: the sweep must wait for the last
      const items = lists[round]!;
      const page = Number(url.searchParams.get('continue') ?? 0);
      const part = page === 0 ? items.slice(0, 2) : items.slice(2);
      res.end(JSON.stringify({ metadata: { resourceVersion: String(10 + round), ...(page === 0 ? { continue: '1' } : {}) }, items: part }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    const idx = new ClusterIndex();
    const reflector = new Reflector({ getCurrentCluster: () => ({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }), applyToHTTPSOptions: async () => {} }, {
      path: '/api/v1/pods', compact: (o) => compactPod(o, false), upsert: (r) => idx.upsertPod(r), remove: (r) => idx.deletePod(r),
      beginList: () => idx.beginList('pods'), endList: () => idx.endList('pods'),
    });
    const counts: number[] = [];
    await reflector.run((n) => counts.push(n));
    assert.equal(idx.resolveDestination('10.0.0.1').name, 'a');
    assert.equal(reflector.resourceVersion, '', 'a 410 clears the resourceVersion: the next round relists');
    await reflector.run((n) => counts.push(n));
    assert.deepEqual(counts, [3, 3]);
    assert.deepEqual(served, ['list ', 'list 1', 'watch@10', 'list ', 'list 1', 'watch@11']);
    assert.equal(idx.resolveDestination('10.0.0.1').name, 'd');
    assert.equal(idx.resolveDestination('10.0.0.2'), EXTERNAL);
    assert.equal(idx.resolveDestination('10.0.0.20').name, 'b');
    assert.equal(idx.resolveDestination('10.0.0.3').namespace, 'web');
    assert.equal(idx.sizes().pods, 3);
  });
});

describe('Reflectors list one at a time', () => {
  it('three reflectors relisting at once: their list requests never overlap, and each still gets its whole list', async (t) => {
    let inFlight = 0;
    let most = 0;
    const order: string[] = [];
    const server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.searchParams.get('watch') === 'true') {
        return void res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, message: 'too old resource version' } })}\n`);
      }
      inFlight++;
      most = Math.max(most, inFlight);
      order.push(url.pathname);
      // answered late, in two pages: a list that is still running when the next one would start
      const page = Number(url.searchParams.get('continue') ?? 0);
      setTimeout(() => {
        inFlight--;
        res.end(JSON.stringify({ metadata: { resourceVersion: '7', ...(page === 0 ? { continue: '1' } : {}) }, items: [pod(`${url.pathname.split('/')[2]}-${page}`, `10.9.${page}.${order.length}`)] }));
      }, 30);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    const idx = new ClusterIndex();
    const access = { getCurrentCluster: () => ({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }), applyToHTTPSOptions: async () => {} };
    const reflectors = ['a', 'b', 'c'].map((name) => new Reflector(access, {
      path: `/api/${name}/pods`, compact: (o) => compactPod(o, false), upsert: (r) => idx.upsertPod(r), remove: (r) => idx.deletePod(r),
      beginList: () => undefined, endList: () => undefined,
    }));
    const counts: number[] = [];
    await Promise.all(reflectors.map((r) => r.run((n) => counts.push(n))));
    assert.equal(most, 1, 'list requests in flight at once');
    assert.deepEqual(counts, [2, 2, 2]);
    // each list's pages are consecutive: no list starts before the one before it has ended
    assert.deepEqual(order, ['/api/a/pods', '/api/a/pods', '/api/b/pods', '/api/b/pods', '/api/c/pods', '/api/c/pods']);
  });
});
