// Proves the Kubernetes test harness against the real kube-apiserver + etcd built by scripts/build-kube.sh:
// storage with owner references, the status subresource, watches, server-side validation and RBAC.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, KubeConfig, Watch, type V1Pod } from '@kubernetes/client-node';
import {
  KubeApiError,
  kubeSkipReason,
  selfSubjectAccessReview,
  startKubeHarness,
  type KubeHarness,
} from '../support/kube/harness.ts';

const skip = kubeSkipReason();

function portOpen(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolvePort) => {
    const socket = connect(Number(port), hostname);
    socket.once('connect', () => { socket.destroy(); resolvePort(true); });
    socket.once('error', () => resolvePort(false));
  });
}

/** Polls `probe` until it returns true (RBAC reads bindings through an informer, so grants land a moment later). */
async function eventually(what: string, probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function rejection(promise: Promise<unknown>): Promise<KubeApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof KubeApiError) return error;
    throw error;
  }
  assert.fail('the server accepted what it should have rejected');
}

describe('kube harness (real kube-apiserver + etcd)', { skip }, () => {
  let kube: KubeHarness;
  before(async () => {
    kube = await startKubeHarness();
  });
  after(async () => {
    await kube?.stop();
  });

  it('serves the pinned release with the admin kubeconfig', async (t) => {
    t.diagnostic(`started in ${kube.startupMs} ms at ${kube.server}`);
    const version = await kube.call<{ gitVersion: string }>('GET', '/version');
    assert.equal(version.gitVersion, kube.binaries.k8sVersion);
    assert.ok(kube.server.startsWith('https://127.0.0.1:'));
    // The kubeconfig file stands alone (data inlined): a client loading it is the admin.
    const fromFile = new KubeConfig();
    fromFile.loadFromFile(kube.kubeconfigPath);
    const review = await kube.call<{ status: { userInfo: { username: string; groups: string[] } } }>(
      'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }, kubeConfig: fromFile },
    );
    assert.equal(review.status.userInfo.username, 'connlat-test-admin');
    assert.ok(review.status.userInfo.groups.includes('system:masters'));
  });

  it('stores a ReplicaSet-owned pod, patches its status subresource and streams the watch events', async () => {
    const ns = await kube.createNamespace('harness-pods');
    const [rs] = await kube.apply(`
apiVersion: apps/v1
kind: ReplicaSet
metadata: { name: web-7d4b9c, namespace: ${ns}, labels: { app: web } }
spec:
  replicas: 1
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [{ name: web, image: nginx:1.27 }] }
`);
    assert.ok(rs?.metadata?.uid, 'the server assigned the ReplicaSet a uid');
    const [pod] = await kube.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'web-7d4b9c-x2x5q',
        namespace: ns,
        labels: { app: 'web' },
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c', uid: rs.metadata.uid, controller: true, blockOwnerDeletion: true },
        ],
      },
      spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] },
    } as V1Pod);
    assert.ok(pod?.metadata?.uid);

    const events: { type: string; pod: V1Pod }[] = [];
    let sawPodIp!: () => void;
    const podIpSeen = new Promise<void>((r) => (sawPodIp = r));
    const watch = await new Watch(kube.kubeConfig).watch(
      `/api/v1/namespaces/${ns}/pods`,
      { resourceVersion: '0' },
      (type, obj: V1Pod) => {
        events.push({ type, pod: obj });
        if (type === 'MODIFIED' && obj.status?.podIP) sawPodIp();
      },
      () => {},
    );
    try {
      // Status written through the main resource is ignored: only the status subresource sets it.
      await kube.call('PATCH', `/api/v1/namespaces/${ns}/pods/${pod.metadata.name}`, {
        body: { status: { podIP: '10.244.1.99' } },
        contentType: 'application/merge-patch+json',
      });
      const core = kube.kubeConfig.makeApiClient(CoreV1Api);
      assert.equal((await core.readNamespacedPod({ name: 'web-7d4b9c-x2x5q', namespace: ns })).status?.podIP, undefined);

      await kube.call('PATCH', `/api/v1/namespaces/${ns}/pods/${pod.metadata.name}/status`, {
        body: { status: { podIP: '10.244.1.7', podIPs: [{ ip: '10.244.1.7' }] } },
        contentType: 'application/merge-patch+json',
      });
      await Promise.race([
        podIpSeen,
        new Promise((_, reject) => setTimeout(() => reject(new Error(`no MODIFIED event with a podIP; got ${JSON.stringify(events.map((e) => e.type))}`)), 10_000)),
      ]);
    } finally {
      watch.abort();
    }

    assert.equal(events[0]?.type, 'ADDED');
    assert.equal(events[0]?.pod.status?.podIP, undefined);
    const modified = events.find((e) => e.type === 'MODIFIED' && e.pod.status?.podIP);
    assert.equal(modified?.pod.status?.podIP, '10.244.1.7');
    assert.deepEqual(modified?.pod.status?.podIPs, [{ ip: '10.244.1.7' }]);
    assert.equal(modified?.pod.metadata?.uid, pod.metadata.uid);
    const owner = modified?.pod.metadata?.ownerReferences?.[0];
    assert.deepEqual([owner?.kind, owner?.name, owner?.uid, owner?.controller], ['ReplicaSet', 'web-7d4b9c', rs.metadata.uid, true]);
  });

  it('dry-run apply is validated and defaulted by the server but not stored', async () => {
    const ns = await kube.createNamespace('harness-dryrun');
    const [pod] = (await kube.apply(
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'dry', namespace: ns }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } as V1Pod,
      { dryRun: true },
    )) as V1Pod[];
    assert.equal(pod?.spec?.restartPolicy, 'Always', 'server defaulting ran');
    assert.equal(pod?.spec?.containers[0]?.imagePullPolicy, 'Always', 'untagged image defaults to pull Always');
    const stored = await kube.request('GET', `/api/v1/namespaces/${ns}/pods/dry`);
    assert.equal(stored.status, 404);
  });

  it('rejects an unknown field (strict validation) and an invalid value with the server\'s own messages', async () => {
    const ns = await kube.createNamespace('harness-invalid');
    const typo = `
apiVersion: v1
kind: Pod
metadata: { name: typo, namespace: ${ns} }
spec:
  containers:
    - name: c
      image: busybox
      imagePullPolicyy: Always
`;
    const created = await rejection(kube.create(typo));
    assert.equal(created.status, 400);
    assert.equal(created.reason, 'BadRequest');
    assert.equal(created.message, 'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].imagePullPolicyy"');
    // Server-side apply rejects it too, in its own words. The 500 (not 400) is upstream's, not ours:
    // kubernetes/kubernetes#139253 (structuredmerge returns a plain error for schema mismatches).
    const applied = await rejection(kube.apply(typo));
    assert.equal(applied.status, 500);
    assert.equal(
      applied.message,
      `failed to create typed patch object (${ns}/typo; /v1, Kind=Pod): .spec.containers[name="c"].imagePullPolicyy: field not declared in schema`,
    );
    assert.equal((await kube.request('GET', `/api/v1/namespaces/${ns}/pods/typo`)).status, 404, 'nothing stored');

    const invalid = await rejection(
      kube.apply(
        `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: ${ns} }
spec:
  selector: { app: web }
  ports: [{ port: 70000, protocol: TCP }]
`,
        { dryRun: true },
      ),
    );
    assert.equal(invalid.status, 422);
    assert.equal(invalid.reason, 'Invalid');
    assert.match(invalid.message, /spec\.ports\[0\]\.port: Invalid value: 70000: must be between 1 and 65535, inclusive/);
  });

  it('denies a ServiceAccount without RBAC, and allows it after a RoleBinding', async () => {
    const ns = await kube.createNamespace('harness-rbac');
    await kube.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'enricher', namespace: ns } });
    const asSa = await kube.serviceAccountKubeConfig(ns, 'enricher');
    const listPods = { verb: 'list', resource: 'pods', namespace: ns };

    const forbidden = await kube.request('GET', `/api/v1/namespaces/${ns}/pods`, { kubeConfig: asSa });
    assert.equal(forbidden.status, 403);
    assert.equal(
      (forbidden.json as { message: string }).message,
      `pods is forbidden: User "system:serviceaccount:${ns}:enricher" cannot list resource "pods" in API group "" in the namespace "${ns}"`,
    );
    const before = await kube.serviceAccountCan(ns, 'enricher', listPods);
    assert.equal(before.allowed, false);
    assert.equal((await selfSubjectAccessReview(asSa, listPods)).allowed, false);

    await kube.apply(`
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: pod-reader, namespace: ${ns} }
rules:
  - { apiGroups: [""], resources: [pods], verbs: [get, list, watch] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: enricher-reads-pods, namespace: ${ns} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader }
subjects:
  - { kind: ServiceAccount, name: enricher, namespace: ${ns} }
`);
    await eventually('the SubjectAccessReview allows the ServiceAccount', async () => (await kube.serviceAccountCan(ns, 'enricher', listPods)).allowed);
    const allowed = await kube.serviceAccountCan(ns, 'enricher', listPods);
    assert.match(allowed.reason, /RBAC: allowed by RoleBinding "enricher-reads-pods\/harness-rbac" of Role "pod-reader"/);

    const list = await kube.call<{ kind: string; items: unknown[] }>('GET', `/api/v1/namespaces/${ns}/pods`, { kubeConfig: asSa });
    assert.equal(list.kind, 'PodList');
    assert.equal((await selfSubjectAccessReview(asSa, listPods)).allowed, true);
    // Impersonating the same ServiceAccount gets its groups and the same decision.
    const impersonated = kube.impersonatingKubeConfig(`system:serviceaccount:${ns}:enricher`);
    assert.equal((await kube.request('GET', `/api/v1/namespaces/${ns}/pods`, { kubeConfig: impersonated })).status, 200);
    // The grant is namespaced and read-only.
    assert.equal((await kube.serviceAccountCan(ns, 'enricher', { verb: 'list', resource: 'pods', namespace: 'default' })).allowed, false);
    assert.equal((await kube.serviceAccountCan(ns, 'enricher', { verb: 'delete', resource: 'pods', namespace: ns })).allowed, false);
  });
});

describe('kube harness lifecycle', { skip }, () => {
  it('stop() kills etcd and kube-apiserver and removes its temp folder', async (t) => {
    const kube = await startKubeHarness();
    t.after(() => kube.stop());
    t.diagnostic(`second harness started in ${kube.startupMs} ms`);
    assert.ok(existsSync(kube.dir));
    assert.equal(await portOpen(kube.server), true);
    await kube.stop();
    assert.equal(existsSync(kube.dir), false, 'temp folder removed');
    assert.equal(await portOpen(kube.server), false, 'kube-apiserver no longer listening');
  });

  it('a kube-apiserver that refuses to start fails start() with its own error, not a timeout', async () => {
    await assert.rejects(startKubeHarness({ apiserverArgs: ['--authorization-mode=Bogus'] }), (error: Error) => {
      assert.match(error.message, /^kube-apiserver exited \(1\) during startup/);
      assert.match(error.message, /authorization-mode \\"Bogus\\" is not a valid mode/);
      return true;
    });
  });
});
