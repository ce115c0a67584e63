// A watch the API server forbids (RBAC without batch/jobs) keeps failing with 403 and is retried with backoff while
// everything else works; once the permission is granted the watch lists and the real owner reference takes over.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { KubeEnricher } from '../../src/enrich/kube-enricher.ts';
import { createLogger } from '../../src/log.ts';
import { startKubeHarnessFor } from '../support/kube/harness.ts';

const RBAC = readFileSync(new URL('../../deploy/kustomize/base/agent-rbac.yaml', import.meta.url), 'utf8');

/** The deployed RBAC minus the rule for batch/jobs. */
function rbacWithoutJobs(): KubernetesObject[] {
  return parseAllDocuments(RBAC).map((d) => {
    const obj = d.toJS() as KubernetesObject & { rules?: Array<{ apiGroups: string[] }> };
    if (obj.kind === 'ClusterRole') obj.rules = obj.rules!.filter((r) => !r.apiGroups.includes('batch'));
    return obj;
  });
}

test('a forbidden watch is retried with backoff and recovers once RBAC allows it', { timeout: 180_000 }, async (t) => {
  const h = await startKubeHarnessFor(t);
  if (h === undefined) return;
  await h.createNamespace('connlat');
  await h.createNamespace('batchy');
  await h.apply(rbacWithoutJobs());
  const cron = await h.apply({
    apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'nightly', namespace: 'batchy' },
    spec: { schedule: '0 3 * * *', jobTemplate: { spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'etl', image: 'registry.example/etl:1' }] } } } } },
  } as KubernetesObject);
  // "kubectl create job --from=cronjob/nightly manual-run": owned by the CronJob, but not named like its Jobs,
  // so only the Jobs watch can tell.
  const [job] = await h.apply({
    apiVersion: 'batch/v1', kind: 'Job',
    metadata: { name: 'manual-run', namespace: 'batchy', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'nightly', uid: cron[0]!.metadata!.uid!, controller: true }] },
    spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'etl', image: 'registry.example/etl:1' }] } } },
  } as KubernetesObject);
  await h.apply({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: 'manual-run-x7k2q', namespace: 'batchy', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'manual-run', uid: job!.metadata!.uid!, controller: true }] },
    spec: { nodeName: 'node-b', restartPolicy: 'Never', containers: [{ name: 'etl', image: 'registry.example/etl:1' }] },
  } as KubernetesObject);
  await h.call('PATCH', '/api/v1/namespaces/batchy/pods/manual-run-x7k2q/status', {
    body: { status: { phase: 'Running', podIP: '10.244.7.7', podIPs: [{ ip: '10.244.7.7' }] } },
    contentType: 'application/merge-patch+json',
  });

  const logged: string[] = [];
  const enricher = new KubeEnricher({
    kubeConfig: await h.serviceAccountKubeConfig('connlat', 'connlat-agent'),
    nodeName: 'node-a',
    hostProc: '/proc',
    logger: createLogger('info', (l) => logged.push(l)),
    syncTimeoutMs: 3000,
    backoff: { initialMs: 200, maxMs: 2000 },
  });
  t.after(() => enricher.stop());
  await enricher.start();
  assert.ok(!enricher.synced);
  assert.match(logged.join(''), /still listing: jobs \(HTTP 403/);
  assert.match(logged.join(''), /Kubernetes watch of jobs failed \(HTTP 403/);
  const owner = () => {
    const d = enricher.index.resolveDestination('10.244.7.7');
    return `${d.ownerType}/${d.ownerName}`;
  };
  assert.equal(owner(), 'Job/manual-run', 'while Jobs are forbidden the Job is the owner');
  const errors = enricher.counters.watchErrors;
  await sleep(2500); // longer than the longest backoff (2 s)
  assert.ok(enricher.counters.watchErrors > errors, 'still retrying');
  assert.ok(enricher.counters.watchErrors < errors + 15, `backing off, not spinning (${enricher.counters.watchErrors - errors} retries in 2.5 s)`);

  await h.apply(RBAC);
  const deadline = Date.now() + 30_000;
  while (owner() !== 'CronJob/nightly') {
    if (Date.now() > deadline) throw new Error(`the Jobs watch did not recover: ${owner()}; log:\n${logged.join('')}`);
    await sleep(100);
  }
  assert.ok(enricher.synced);
});
