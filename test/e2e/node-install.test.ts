// connlat installed into a real single-node cluster (scripts/dev-cluster.sh: kubelet, containerd, kube-proxy, the
// controllers) exactly as deploy/README.md tells a user, with no manual step:
//   - `kubectl apply --server-side -k deploy/kustomize/base` (kubectl from the pinned Kubernetes module): every pod
//     of the connlat namespace Ready; `kubectl delete -k` removes it all again;
//   - `helm install` of deploy/helm/connlat with only what a user sets (image names, the gateway's backends, in a
//     values file): every pod Ready, including the HPA's second gateway replica; the time it took is printed.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { kubeRequest } from '../support/kube/client.ts';
import { waitFor } from '../support/collector/collector.ts';
import { NODE_HOOK_TIMEOUT_MS, nodeTestSkipReason, startDevClusterRun, type DevClusterRun } from '../support/node/cluster-run.ts';
import { AGENT_SELECTOR, GATEWAY_SELECTOR, chartDir, describePod, helm, isReady, kubeConfigOf, kustomizeDir, listPods, userValues, waitAllReady } from '../support/node/install.ts';

const NS = 'connlat';
const { skip, tools } = await nodeTestSkipReason();

describe('connlat on a real node: installed as deploy/README.md says', { skip, timeout: 20 * 60_000 }, () => {
  let cluster: DevClusterRun | undefined;
  let dir = '';

  // The start is kept as a promise so that `after` stops a cluster whose start outlived the hook (a hook timeout
  // abandons the hook's promise; it does not stop the cluster it is bringing up).
  let starting: Promise<DevClusterRun> | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connlat-node-install-'));
    starting = startDevClusterRun();
    cluster = await starting;
    process.stdout.write(`# dev cluster up in ${(cluster.upMs / 1000).toFixed(1)} s\n`);
  }, { timeout: NODE_HOOK_TIMEOUT_MS });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    await (await starting?.catch(() => undefined))?.stop();
  }, { timeout: NODE_HOOK_TIMEOUT_MS });

  const diag = async () => {
    const kc = kubeConfigOf(cluster!);
    const pods = await listPods(kc, NS).catch(() => []);
    const events = await kubeRequest(kc, 'GET', `/api/v1/namespaces/${NS}/events`).then((r) => (r.json as { items: Array<{ reason: string; message: string; involvedObject: { name: string } }> }).items, () => []);
    return [
      ...pods.map((p) => `pod ${p.metadata.name}: ${describePod(p)}`),
      ...events.slice(-20).map((e) => `event ${e.involvedObject.name}: ${e.reason}: ${e.message}`),
    ].join('\n');
  };

  test('kubectl apply --server-side -k deploy/kustomize/base: every pod Ready; kubectl delete -k removes it', async () => {
    const kc = kubeConfigOf(cluster!);
    const started = Date.now();
    await cluster!.kubectl(['apply', '--server-side', '-k', kustomizeDir]);
    await waitAllReady(kc, NS, 5 * 60_000, diag);
    const seconds = (Date.now() - started) / 1000;
    const agents = await listPods(kc, NS, AGENT_SELECTOR);
    assert.equal(agents.length, 1, 'one agent on the one node');
    assert.equal(agents[0]!.spec.nodeName, cluster!.nodeName);
    assert.ok(isReady(agents[0]!));
    process.stdout.write(`# kustomize base: apply -> all pods Ready in ${seconds.toFixed(1)} s\n`);

    await cluster!.kubectl(['delete', '-k', kustomizeDir, '--wait=true', '--timeout=180s'], { timeoutMs: 200_000 });
    await waitFor('namespace connlat gone', async () => ((await kubeRequest(kc, 'GET', `/api/v1/namespaces/${NS}`)).status === 404 ? true : undefined), 120_000, 500);
    const left = await kubeRequest(kc, 'GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/connlat-agent');
    assert.equal(left.status, 404, 'cluster-scoped objects deleted too');
  });

  test('helm install with a user\'s values: every pod Ready (both gateway replicas of the HPA), timed', async () => {
    const kc = kubeConfigOf(cluster!);
    const values = join(dir, 'values.yaml');
    await writeFile(values, stringify(userValues(cluster!.hostIp)));
    const started = Date.now();
    // deploy/README.md's command, with the user's values file.
    await helm(cluster!, tools!, ['install', 'connlat', chartDir, '--namespace', NS, '--create-namespace', '-f', values]);
    await waitAllReady(kc, NS, 5 * 60_000, diag);
    const firstReady = (Date.now() - started) / 1000;
    // The HPA (minReplicas 2) raises the gateway from the Deployment's default 1, without any metrics.
    await waitFor('two Ready gateway pods', async () => ((await listPods(kc, NS, GATEWAY_SELECTOR)).filter(isReady).length === 2 ? true : undefined), 3 * 60_000, 500)
      .catch(async (err: Error) => assert.fail(`${err.message}\n${await diag()}`));
    await waitAllReady(kc, NS, 60_000, diag);
    const allReady = (Date.now() - started) / 1000;
    const agents = await listPods(kc, NS, AGENT_SELECTOR);
    assert.equal(agents.length, 1);
    for (const p of await listPods(kc, NS)) {
      for (const c of p.status?.containerStatuses ?? []) assert.equal(c.restartCount, 0, `${p.metadata.name}/${c.name} restarted: ${describePod(p)}`);
    }
    process.stdout.write(`# helm install -> all pods Ready in ${firstReady.toFixed(1)} s; with the HPA's 2 gateway replicas in ${allReady.toFixed(1)} s\n`);

    await helm(cluster!, tools!, ['uninstall', 'connlat', '--namespace', NS, '--wait', '--timeout', '3m']);
  });
});
