// The packed table of cluster-wide pods: what goes in comes out exactly (UIDs of any shape, dual-stack IPs), freed
// slots are reused without leaking the previous pod's fields, and IP reuse orders slots as podOrder orders records.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compactPod } from '../../src/enrich/compact.ts';
import { PodTable } from '../../src/enrich/pod-table.ts';

function pod(name: string, uid: string, ips: string[], o: { phase?: string; created?: string; owner?: [string, string]; ns?: string } = {}) {
  return compactPod({
    metadata: {
      name, namespace: o.ns ?? 'shop', uid, creationTimestamp: o.created ?? '2026-01-01T00:00:00Z',
      ownerReferences: o.owner ? [{ kind: o.owner[0], name: o.owner[1], controller: true }] : undefined,
    },
    spec: { nodeName: 'node-a' },
    status: { phase: o.phase ?? 'Running', podIPs: ips.map((ip) => ({ ip })) },
  }, false);
}

describe('PodTable', () => {
  it('keeps every field a destination identity is built from', () => {
    const t = new PodTable();
    for (const uid of ['0f1e2d3c-4b5a-4697-8877-66554433aa11', 'not-a-uuid', 'ABCDEF01-0000-4000-8000-000000000000', '']) {
      const rec = pod(`p-${uid}`, uid, ['10.0.0.1', 'fd00::1'], { owner: ['ReplicaSet', 'web-abc'] });
      t.upsert(rec, true);
      const slot = t.byIp.get('fd00::1')!;
      assert.deepEqual(t.fields(slot), {
        metadata: { namespace: 'shop', name: `p-${uid}`, uid }, nodeName: 'node-a', ownerKind: 'ReplicaSet', ownerName: 'web-abc',
        templateHash: undefined, createdMs: Date.parse('2026-01-01T00:00:00Z'),
      });
      assert.deepEqual(t.ips(slot), ['10.0.0.1', 'fd00::1']);
      t.delete(rec);
      assert.equal(t.byIp.get('10.0.0.1'), undefined);
    }
    assert.equal(t.size, 0);
  });

  it('reuses a freed slot with none of the old pod left in it, and drops its cached identity', () => {
    const t = new PodTable();
    const a = pod('a', '00000000-0000-4000-8000-000000000001', ['10.0.0.1'], { owner: ['Job', 'batch'] });
    t.upsert(a, true);
    const slot = t.byIp.get('10.0.0.1')!;
    t.cacheIdentity(slot, 0, { name: 'a' });
    t.delete(a);
    t.upsert(pod('b', 'zz', ['10.0.0.2']), true);
    assert.equal(t.byIp.get('10.0.0.2'), slot);
    assert.equal(t.cachedIdentity(slot, 0), undefined);
    assert.deepEqual(t.fields(slot), { metadata: { namespace: 'shop', name: 'b', uid: 'zz' }, nodeName: 'node-a', ownerKind: undefined, ownerName: undefined, templateHash: undefined, createdMs: Date.parse('2026-01-01T00:00:00Z') });
    assert.deepEqual([...t.keys()], [{ metadata: { namespace: 'shop', name: 'b' } }]);
  });

  it('one IP claimed by several pods: running first, then newest; upsert by name replaces', () => {
    const t = new PodTable();
    const old = pod('old', '00000000-0000-4000-8000-000000000001', ['10.0.0.7'], { created: '2026-01-01T00:00:00Z' });
    const newer = pod('newer', '00000000-0000-4000-8000-000000000002', ['10.0.0.7'], { created: '2026-01-02T00:00:00Z' });
    const pending = pod('pending', '00000000-0000-4000-8000-000000000003', ['10.0.0.7'], { created: '2026-01-03T00:00:00Z', phase: 'Pending' });
    for (const p of [old, pending, newer]) t.upsert(p, true);
    const top = () => t.fields(t.byIp.get('10.0.0.7')!).metadata.name;
    assert.equal(top(), 'newer');
    t.upsert(pod('newer', '00000000-0000-4000-8000-000000000002', ['10.0.0.8']), true); // moved to another IP
    assert.equal(top(), 'old');
    t.delete(old);
    assert.equal(top(), 'pending');
    t.upsert(pending, false); // no longer holds its IP
    assert.equal(t.byIp.get('10.0.0.7'), undefined);
    assert.equal(t.size, 1);
  });
});
