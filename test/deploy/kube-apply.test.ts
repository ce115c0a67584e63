// deploy/ against a real kube-apiserver (test/support/kube/harness.ts): every rendered object passes server-side
// dry-run and real server-side apply (strict field validation, admission, defaulting), twice; RBAC is proven with
// SubjectAccessReviews and with real ServiceAccount tokens; Pod Security Admission accepts the agent only at the
// `privileged` level (and says why) and the gateway at `restricted`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KubeApiError, startKubeHarnessFor, type KubeHarness } from '../support/kube/harness.ts';
import type { KubernetesObject } from '@kubernetes/client-node';
import { renderHelm, renderKustomize, renderTools, type K8sObject } from './support/render.ts';

type KubeObject = KubernetesObject;

/** A Pod made from a workload's template, as its controller would create it on a node. */
function podFrom(workload: K8sObject, namespace: string, name: string): KubeObject {
  const template = (workload as unknown as { spec: { template: { metadata: Record<string, unknown>; spec: Record<string, unknown> } } }).spec.template;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...template.metadata, name, namespace },
    spec: { ...template.spec, nodeName: 'node-1' },
  } as KubeObject;
}

async function createPodDryRun(kube: KubeHarness, pod: KubeObject, namespace: string): Promise<{ ok: true } | { ok: false; message: string }> {
  try {
    await kube.call('POST', `/api/v1/namespaces/${namespace}/pods`, { body: pod, query: { dryRun: 'All', fieldValidation: 'Strict' } });
    return { ok: true };
  } catch (err) {
    if (err instanceof KubeApiError) return { ok: false, message: err.message };
    throw err;
  }
}

describe('deploy/ on a real kube-apiserver', { timeout: 10 * 60_000 }, () => {
  test('dry-run and real server-side apply, RBAC, Pod Security', async (t) => {
    const tools = await renderTools();
    if (typeof tools === 'string') return t.skip(tools);
    const kube = await startKubeHarnessFor(t);
    if (!kube) return;
    const objects = (await renderKustomize(tools)) as unknown as KubeObject[];

    await t.test('server-side apply: dry-run, then real, then again with no change', async () => {
      // A dry run of a namespaced object needs its namespace to exist: create that one first, then dry-run all.
      const namespace = objects.filter((o) => (o as K8sObject).kind === 'Namespace');
      assert.equal(namespace.length, 1);
      await kube.apply(namespace, { fieldManager: 'connlat-deploy-test' });
      const dry = await kube.apply(objects, { dryRun: true, fieldManager: 'connlat-deploy-test' });
      assert.equal(dry.length, objects.length);
      // Nothing but the namespace was stored by the dry run.
      assert.equal((await kube.request('GET', '/apis/apps/v1/namespaces/connlat/daemonsets/connlat-agent')).status, 404);
      const first = await kube.apply(objects, { fieldManager: 'connlat-deploy-test' });
      assert.equal(first.length, objects.length);
      const again = await kube.apply(objects, { dryRun: true, fieldManager: 'connlat-deploy-test' });
      const second = await kube.apply(objects, { fieldManager: 'connlat-deploy-test' });
      for (const [i, o] of second.entries()) {
        const before = first[i] as { metadata: { resourceVersion?: string; name: string } };
        const after = o as { metadata: { resourceVersion?: string } };
        assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion, `re-apply changed ${before.metadata.name}`);
      }
      assert.equal(again.length, objects.length);
      // The Helm rendering is accepted as well (same objects; dry-run over the applied state).
      const helm = (await renderHelm(tools)) as unknown as KubeObject[];
      await kube.apply(helm, { dryRun: true, fieldManager: 'connlat-deploy-test' });
    });

    await t.test('agent ServiceAccount: may list/watch exactly what enrichment watches, nothing more', async () => {
      const role = objects.find((o) => (o as K8sObject).kind === 'ClusterRole' && (o as K8sObject).metadata.name === 'connlat-agent') as unknown as {
        rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
      };
      let checked = 0;
      for (const rule of role.rules) {
        for (const group of rule.apiGroups) {
          for (const resource of rule.resources) {
            for (const verb of ['list', 'watch']) {
              const d = await kube.serviceAccountCan('connlat', 'connlat-agent', { verb, group, resource });
              assert.ok(d.allowed, `agent ${verb} ${group}/${resource}: ${d.reason}`);
              checked++;
            }
          }
        }
      }
      assert.ok(checked >= 12, `checked ${checked} permissions`);
      const denied: Array<{ verb: string; resource: string; group?: string; namespace?: string; subresource?: string }> = [
        { verb: 'get', resource: 'secrets', namespace: 'connlat' },
        { verb: 'list', resource: 'secrets' },
        { verb: 'get', resource: 'secrets', namespace: 'kube-system' },
        { verb: 'list', resource: 'configmaps' },
        { verb: 'create', resource: 'pods', namespace: 'default' },
        { verb: 'delete', resource: 'pods', namespace: 'default' },
        { verb: 'create', resource: 'pods', namespace: 'default', subresource: 'exec' },
        { verb: 'get', resource: 'pods', namespace: 'default', subresource: 'log' },
        { verb: 'patch', resource: 'nodes' },
        { verb: 'update', resource: 'daemonsets', group: 'apps', namespace: 'connlat' },
        { verb: 'create', resource: 'serviceaccounts', namespace: 'connlat', subresource: 'token' },
      ];
      for (const q of denied) {
        const d = await kube.serviceAccountCan('connlat', 'connlat-agent', q);
        assert.equal(d.allowed, false, `agent must not ${q.verb} ${q.resource}${q.subresource ? '/' + q.subresource : ''}`);
      }
      // The same through the real authentication path: a bound token of the ServiceAccount.
      const asAgent = await kube.serviceAccountKubeConfig('connlat', 'connlat-agent');
      assert.equal((await kube.request('GET', '/api/v1/pods', { kubeConfig: asAgent, query: { limit: 1 } })).status, 200);
      assert.equal((await kube.request('GET', '/apis/discovery.k8s.io/v1/endpointslices', { kubeConfig: asAgent, query: { limit: 1 } })).status, 200);
      assert.equal((await kube.request('GET', '/api/v1/namespaces/connlat/secrets', { kubeConfig: asAgent })).status, 403);
      assert.equal((await kube.request('GET', '/api/v1/namespaces/default/pods/x', { kubeConfig: asAgent })).status, 403, 'list/watch only, no get');
    });

    await t.test('gateway ServiceAccount: k8sattributes reads, no Secrets', async () => {
      for (const [group, resource] of [['', 'pods'], ['', 'namespaces'], ['', 'nodes'], ['apps', 'replicasets']] as const) {
        for (const verb of ['get', 'list', 'watch']) {
          const d = await kube.serviceAccountCan('connlat', 'connlat-gateway', { verb, group, resource });
          assert.ok(d.allowed, `gateway ${verb} ${group}/${resource}`);
        }
      }
      for (const q of [{ verb: 'get', resource: 'secrets', namespace: 'connlat' }, { verb: 'list', resource: 'secrets' }, { verb: 'create', resource: 'pods', namespace: 'connlat' }]) {
        assert.equal((await kube.serviceAccountCan('connlat', 'connlat-gateway', q)).allowed, false, `gateway must not ${q.verb} ${q.resource}`);
      }
    });

    await t.test('Pod Security: the agent Pod needs `privileged` (baseline names why), the gateway Pod passes `restricted`', async () => {
      const ds = objects.find((o) => (o as K8sObject).kind === 'DaemonSet') as unknown as K8sObject;
      const gw = objects.find((o) => (o as K8sObject).kind === 'Deployment') as unknown as K8sObject;
      for (const level of ['baseline', 'restricted']) {
        await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `psa-${level}`, labels: { 'pod-security.kubernetes.io/enforce': level } } } as KubeObject);
      }
      const inConnlat = await createPodDryRun(kube, podFrom(ds, 'connlat', 'connlat-agent-x'), 'connlat');
      assert.deepEqual(inConnlat, { ok: true });
      const baseline = await createPodDryRun(kube, podFrom(ds, 'psa-baseline', 'connlat-agent-x'), 'psa-baseline');
      assert.equal(baseline.ok, false, 'baseline must refuse the agent (else the namespace could enforce baseline)');
      const message = (baseline as { message: string }).message;
      t.diagnostic(`baseline refuses the agent: ${message}`);
      assert.match(message, /hostPath volumes/);
      assert.match(message, /non-default capabilities/);
      assert.doesNotMatch(message, /seccompProfile/, 'the runtime\'s default seccomp profile meets baseline');
      assert.doesNotMatch(message, /privileged \(container/, 'the agent is not a privileged container');
      assert.doesNotMatch(message, /host namespaces/, 'no hostPID/hostNetwork/hostIPC');
      const restricted = await createPodDryRun(kube, podFrom(gw, 'psa-restricted', 'connlat-gateway-x'), 'psa-restricted');
      assert.deepEqual(restricted, { ok: true });
    });
  });
});
