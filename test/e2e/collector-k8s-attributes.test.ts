// otel-config/k8s-attributes.yaml against a real kube-apiserver (test/support/kube): data arriving with the
// agent's k8s.pod.uid gets the agent pod's DaemonSet name and version label from the API, as the overlay promises.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { E2E_OVERLAY, OTEL_CONFIG_DIR, findCollector, startCollector, waitFor } from '../support/collector/collector.ts';
import { readLogRecords } from '../support/collector/file-exporter.ts';
import { createObjects, startKubeHarnessFor } from '../support/kube/harness.ts';

const collector = await findCollector();

test('k8s-attributes.yaml: the agent pod\'s DaemonSet and version label come from the Kubernetes API', { skip: collector.skip ?? false, timeout: 180_000 }, async (t) => {
  const kube = await startKubeHarnessFor(t);
  if (!kube) return;
  const manifest = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'connlat-agent-x7k2p',
      namespace: 'default',
      labels: { 'app.kubernetes.io/name': 'connlat', 'app.kubernetes.io/version': '1.2.3' },
      // What the DaemonSet controller would set (there is no controller in the harness).
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'connlat', uid: randomUUID(), controller: true }],
    },
    spec: { containers: [{ name: 'agent', image: 'connlat:test' }] },
  };
  const [pod] = await createObjects(kube.kubeConfig, manifest);
  const podUid = pod!.metadata!.uid!;

  const out = await mkdtemp(join(tmpdir(), 'connlat-k8sattr-'));
  t.after(() => rm(out, { recursive: true, force: true }));
  const gateway = await startCollector({
    binary: collector.path!,
    configs: [join(OTEL_CONFIG_DIR, 'gateway.yaml'), E2E_OVERLAY, join(OTEL_CONFIG_DIR, 'k8s-attributes.yaml')],
    env: {
      CONNLAT_TEST_OUT_DIR: out,
      CONNLAT_TEST_REMOTE_WRITE_URL: 'http://127.0.0.1:9/api/v1/write', // metrics are not checked here
      CONNLAT_GATEWAY_K8S_AUTH_TYPE: 'kubeConfig',
      KUBECONFIG: kube.kubeconfigPath,
    },
  });
  t.after(() => gateway.stop());

  // One OTLP/JSON log record per attempt, as the agent would send it (resource with its pod UID), until the
  // processor's pod informer has synced and the record comes out enriched.
  let attempt = 0;
  const send = async () => {
    attempt++;
    const str = (key: string, value: string) => ({ key, value: { stringValue: value } });
    const body = {
      resourceLogs: [{
        resource: { attributes: [str('service.name', 'connlat'), str('k8s.pod.uid', podUid), str('k8s.pod.name', 'connlat-agent-x7k2p'), str('k8s.namespace.name', 'default')] },
        scopeLogs: [{ scope: { name: 'connlat' }, logRecords: [{ eventName: 'tcp.connect.slow', severityText: 'WARN', severityNumber: 13, body: { stringValue: `attempt ${attempt}` } }] }],
      }],
    };
    const res = await fetch(`http://${gateway.http}/v1/logs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(res.status, 200, await res.text());
  };
  const enriched = await waitFor(
    'an enriched log record',
    async () => {
      await send();
      await new Promise((r) => setTimeout(r, 500));
      return readLogRecords(join(out, 'logs-default.jsonl')).find((r) => r.resource['k8s.daemonset.name'] !== undefined);
    },
    60_000,
    500,
  ).catch((err: Error) => assert.fail(`${err.message}\ncollector:\n${gateway.process.tail()}`));
  assert.equal(enriched.resource['k8s.daemonset.name'], 'connlat');
  assert.equal(enriched.resource['app.kubernetes.io/version'], '1.2.3');
  assert.equal(enriched.resource['k8s.pod.uid'], podUid, 'the agent\'s own identity is kept');
  assert.equal(enriched.resource['k8s.cluster.name'], 'unknown', 'resource processor default when nobody set it');
});
