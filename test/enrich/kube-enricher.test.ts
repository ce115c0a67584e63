// The enricher against a real kube-apiserver (test/support/kube/harness.ts): it runs under the agent's own
// ServiceAccount with the RBAC from deploy/, resolves connections decoded from tcpconnlat lines, follows a delete,
// and recovers when the API server restarts. Skips with the reason when the control plane is not built.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseCommandLine } from '../../src/config.ts';
import { createEnricher } from '../../src/enrich/index.ts';
import { KubeEnricher } from '../../src/enrich/kube-enricher.ts';
import type { ConnectEvent, PeerIdentity } from '../../src/event.ts';
import { createLogger } from '../../src/log.ts';
import { LineDecoder } from '../../src/parse/decoder.ts';
import { readOtlpJson, runAgent } from '../support/agent.ts';
import { kubeRequest, startKubeHarnessFor, type KubeHarness } from '../support/kube/harness.ts';
import { attrs, lastMetric, logRecords } from '../telemetry/helpers.ts';
import { KubeletCgroups, kubeletCgroupSkipReason } from './kubelet-cgroup.ts';

const RBAC = readFileSync(new URL('../../deploy/kustomize/base/agent-rbac.yaml', import.meta.url), 'utf8');
const HEADER = 'PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)';
const cid = (n: number) => n.toString(16).padStart(2, '0').repeat(32);

/** A tcpconnlat line exactly as the tool prints it (no -t/-L): "%-6d %-12.12s %-2d %-16s %-16s %-5d %.2f". */
function toolLine(pid: number, comm: string, saddr: string, daddr: string, dport: number, latencyMs: number): string {
  return `${String(pid).padEnd(6)} ${comm.slice(0, 12).padEnd(12)} ${'4'.padEnd(2)} ${saddr.padEnd(16)} ${daddr.padEnd(16)} ${String(dport).padEnd(5)} ${latencyMs.toFixed(2)}`;
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The objects kube-controller-manager and kubelet would have made: here the test writes them, status included. */
class Cluster {
  readonly h: KubeHarness;
  constructor(h: KubeHarness) {
    this.h = h;
  }
  async apply(obj: KubernetesObject): Promise<KubernetesObject & { metadata: { uid: string } }> {
    const [out] = await this.h.apply(obj);
    return out as KubernetesObject & { metadata: { uid: string } };
  }
  async patchStatus(path: string, status: unknown): Promise<void> {
    await this.h.call('PATCH', `${path}/status`, { body: { status }, contentType: 'application/merge-patch+json' });
  }
  async node(name: string, ip: string): Promise<void> {
    await this.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name } });
    await this.patchStatus(`/api/v1/nodes/${name}`, { addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: name }] });
  }
  async workload(ns: string, kind: 'Deployment' | 'DaemonSet', name: string): Promise<string> {
    const template = { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image: `registry.example/${name}:1` }] } };
    const spec = kind === 'Deployment' ? { replicas: 1, selector: { matchLabels: { app: name } }, template } : { selector: { matchLabels: { app: name } }, template };
    return (await this.apply({ apiVersion: 'apps/v1', kind, metadata: { name, namespace: ns }, spec } as KubernetesObject)).metadata.uid;
  }
  async replicaSet(ns: string, deployment: string, deploymentUid: string, hash: string): Promise<string> {
    const labels = { app: deployment, 'pod-template-hash': hash };
    const rs = await this.apply({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: `${deployment}-${hash}`, namespace: ns, labels, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment, uid: deploymentUid, controller: true }] },
      spec: { replicas: 1, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] } } },
    } as KubernetesObject);
    return rs.metadata.uid;
  }
  async pod(
    ns: string,
    name: string,
    o: { node: string; ip: string; owner?: [kind: string, name: string, uid: string]; hostNetwork?: boolean; containers: Array<[name: string, id: string]>; labels?: Record<string, string> },
  ): Promise<string> {
    const pod = await this.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: ns,
        labels: o.labels ?? {},
        ownerReferences: o.owner ? [{ apiVersion: o.owner[0] === 'Job' ? 'batch/v1' : 'apps/v1', kind: o.owner[0], name: o.owner[1], uid: o.owner[2], controller: true }] : [],
      },
      spec: { nodeName: o.node, hostNetwork: o.hostNetwork ?? false, containers: o.containers.map(([c]) => ({ name: c, image: `registry.example/${c}:1` })) },
    } as KubernetesObject);
    await this.patchStatus(`/api/v1/namespaces/${ns}/pods/${name}`, {
      phase: 'Running',
      podIP: o.ip,
      podIPs: [{ ip: o.ip }],
      hostIP: o.ip,
      containerStatuses: o.containers.map(([c, id]) => ({
        name: c, ready: true, restartCount: 0, image: `registry.example/${c}:1`, imageID: '', containerID: `containerd://${id}`,
        state: { running: { startedAt: '2026-01-01T00:00:00Z' } },
      })),
    });
    return pod.metadata.uid;
  }
  async service(ns: string, name: string, clusterIP: string): Promise<void> {
    await this.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { clusterIP, selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] } } as KubernetesObject);
  }
  async endpointSlice(ns: string, service: string, pods: Array<[ip: string, pod: string, node: string]>): Promise<void> {
    await this.apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${service}-x1`, namespace: ns, labels: { 'kubernetes.io/service-name': service } },
      addressType: 'IPv4',
      endpoints: pods.map(([ip, pod, node]) => ({ addresses: [ip], targetRef: { kind: 'Pod', name: pod, namespace: ns }, nodeName: node, conditions: { ready: true } })),
      ports: [{ name: '', port: 8080, protocol: 'TCP' }],
    } as KubernetesObject);
  }
}

/** Stops kube-apiserver and starts it again with the same flags, port, certs and etcd: a real restart. The harness
 * keeps its processes private, so this reaches for them by name (etcd first, kube-apiserver second). */
async function restartApiServer(h: KubeHarness): Promise<void> {
  const processes = (h as unknown as { processes: ChildProcess[] }).processes;
  const old = processes[1]!;
  assert.match(old.spawnargs.join(' '), /kube-apiserver/);
  const exited = new Promise((resolve) => old.once('exit', resolve));
  old.kill('SIGTERM');
  await exited;
  const fd = openSync(join(h.dir, 'kube-apiserver.log'), 'a');
  try {
    processes[1] = spawn(old.spawnargs[0]!, old.spawnargs.slice(1), { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await kubeRequest(h.kubeConfig, 'GET', '/readyz')).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`kube-apiserver not ready after restart:\n${h.logTail('kube-apiserver')}`);
    await sleep(100);
  }
}

test('Kubernetes identity from a real API server, under the agent ServiceAccount', { timeout: 240_000 }, async (t) => {
  const h = await startKubeHarnessFor(t);
  if (h === undefined) return;
  const k = new Cluster(h);

  // The agent's identity exactly as deployed.
  await h.createNamespace('connlat');
  await h.apply(RBAC);
  for (const [group, resource] of [['', 'pods'], ['', 'services'], ['', 'nodes'], ['discovery.k8s.io', 'endpointslices'], ['apps', 'replicasets'], ['batch', 'jobs']] as const) {
    for (const verb of ['list', 'watch']) {
      const d = await h.serviceAccountCan('connlat', 'connlat-agent', { verb, resource, group });
      assert.ok(d.allowed, `connlat-agent may ${verb} ${resource}`);
    }
  }
  for (const [verb, resource] of [['get', 'secrets'], ['list', 'secrets'], ['get', 'pods'], ['create', 'pods'], ['list', 'configmaps']] as const) {
    assert.ok(!(await h.serviceAccountCan('connlat', 'connlat-agent', { verb, resource })).allowed, `connlat-agent must not ${verb} ${resource}`);
  }

  // A two-node cluster's worth of objects.
  await h.createNamespace('shop');
  await h.createNamespace('monitoring');
  await k.node('node-a', '192.168.50.10');
  await k.node('node-b', '192.168.50.11');
  const cartDeploy = await k.workload('shop', 'Deployment', 'cart');
  const cartRs = await k.replicaSet('shop', 'cart', cartDeploy, '7d4f9c');
  const checkoutDeploy = await k.workload('shop', 'Deployment', 'checkout');
  const checkoutRs = await k.replicaSet('shop', 'checkout', checkoutDeploy, '5b6c7d');
  const agentDs = await k.workload('monitoring', 'DaemonSet', 'node-agent');
  const cronjob = await k.apply({
    apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'backup', namespace: 'shop' },
    spec: { schedule: '0 * * * *', jobTemplate: { spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'backup', image: 'registry.example/backup:1' }] } } } } },
  } as KubernetesObject);
  const job = await k.apply({
    apiVersion: 'batch/v1', kind: 'Job',
    metadata: { name: 'backup-29400000', namespace: 'shop', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'backup', uid: cronjob.metadata.uid, controller: true }] },
    spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'backup', image: 'registry.example/backup:1' }] } } },
  } as KubernetesObject);
  const cartUid = await k.pod('shop', 'cart-7d4f9c-abcde', { node: 'node-a', ip: '10.244.1.5', owner: ['ReplicaSet', 'cart-7d4f9c', cartRs], containers: [['app', cid(1)]], labels: { app: 'cart', 'pod-template-hash': '7d4f9c' } });
  const checkoutUid = await k.pod('shop', 'checkout-5b6c7d-xyz12', { node: 'node-b', ip: '10.244.2.7', owner: ['ReplicaSet', 'checkout-5b6c7d', checkoutRs], containers: [['app', cid(2)], ['envoy', cid(3)]] });
  const backupUid = await k.pod('shop', 'backup-29400000-q7x2p', { node: 'node-b', ip: '10.244.2.9', owner: ['Job', 'backup-29400000', job.metadata.uid], containers: [['backup', cid(4)]] });
  const agentContainer = cid(5);
  const agentUid = await k.pod('monitoring', 'node-agent-k8v2m', { node: 'node-a', ip: '192.168.50.10', hostNetwork: true, owner: ['DaemonSet', 'node-agent', agentDs], containers: [['agent', agentContainer]] });
  await k.service('shop', 'checkout', '10.96.0.20');
  await k.endpointSlice('shop', 'checkout', [['10.244.2.7', 'checkout-5b6c7d-xyz12', 'node-b']]);

  // The enricher, built the way the agent builds it: --kubeconfig holding the ServiceAccount's bound token.
  const saConfig = await h.serviceAccountKubeConfig('connlat', 'connlat-agent');
  const kubeconfigPath = join(h.dir, 'connlat-agent.kubeconfig');
  writeFileSync(kubeconfigPath, saConfig.exportConfig(), { mode: 0o600 });
  const { config } = parseCommandLine(['--kubernetes', 'on', '--kubeconfig', kubeconfigPath, '--node-name', 'node-a'], {});
  const logged: string[] = [];
  const enricher = await createEnricher(config, {}, createLogger('debug', (l) => logged.push(l)));
  assert.ok(enricher instanceof KubeEnricher, enricher.description);
  t.after(() => enricher.stop());
  await enricher.start();
  assert.ok(enricher.synced, `index synced; log:\n${logged.join('')}`);
  assert.match(enricher.description, /node node-a/);
  assert.equal(enricher.counters.watchErrors, 0, logged.join(''));

  const decoder = new LineDecoder('tcpconnlat');
  decoder.decode(HEADER, 0);
  const connect = (pid: number, saddr: string, daddr: string, dport: number): ConnectEvent => {
    const result = decoder.decode(toolLine(pid, 'app', saddr, daddr, dport, 1.25), Date.now());
    assert.equal(result.kind, 'event');
    const event = (result as { event: ConnectEvent }).event;
    enricher.enrich(event);
    return event;
  };

  const cartSrc: PeerIdentity = {
    namespace: 'shop', name: 'cart-7d4f9c-abcde', type: 'Pod', ownerName: 'cart', ownerType: 'Deployment',
    podName: 'cart-7d4f9c-abcde', podUid: cartUid, nodeName: 'node-a', containerName: 'app', containerId: cid(1),
  };
  const checkoutPod: PeerIdentity = {
    namespace: 'shop', name: 'checkout-5b6c7d-xyz12', type: 'Pod', ownerName: 'checkout', ownerType: 'Deployment',
    podName: 'checkout-5b6c7d-xyz12', podUid: checkoutUid, nodeName: 'node-b', serviceName: 'checkout',
  };

  await t.test('pod -> Service ClusterIP', () => {
    const e = connect(4242, '10.244.1.5', '10.96.0.20', 80);
    assert.deepEqual(e.src, cartSrc);
    assert.deepEqual(e.dst, { namespace: 'shop', name: 'checkout', type: 'Service', ownerName: 'checkout', ownerType: 'Service', serviceName: 'checkout' });
  });

  await t.test('pod -> pod IP (owner through the ReplicaSet, service through the EndpointSlice)', () => {
    const e = connect(4242, '10.244.1.5', '10.244.2.7', 8080);
    assert.deepEqual(e.src, cartSrc);
    assert.deepEqual(e.dst, checkoutPod);
  });

  await t.test('pod -> Job pod of a CronJob', () => {
    const e = connect(4242, '10.244.1.5', '10.244.2.9', 5432);
    assert.deepEqual(e.dst, {
      namespace: 'shop', name: 'backup-29400000-q7x2p', type: 'Pod', ownerName: 'backup', ownerType: 'CronJob',
      podName: 'backup-29400000-q7x2p', podUid: backupUid, nodeName: 'node-b',
    });
  });

  await t.test('pod -> node InternalIP, and -> the internet', () => {
    assert.deepEqual(connect(4242, '10.244.1.5', '192.168.50.11', 10250).dst, { name: 'node-b', type: 'Node', ownerName: 'node-b', ownerType: 'Node', nodeName: 'node-b' });
    assert.deepEqual(connect(4242, '10.244.1.5', '93.184.216.34', 443).dst, { type: 'External' });
  });

  await t.test('a host process on the node IP is the node', () => {
    const e = connect(process.pid, '192.168.50.10', '10.96.0.20', 80);
    assert.deepEqual(e.src, { name: 'node-a', type: 'Node', ownerName: 'node-a', ownerType: 'Node', nodeName: 'node-a' });
  });

  await t.test('a hostNetwork pod, by the PID of a real process in its cgroup', { skip: kubeletCgroupSkipReason() }, async (st) => {
    const cgroups = new KubeletCgroups();
    st.after(() => cgroups.cleanup());
    const child = await cgroups.spawnInContainer(agentUid, agentContainer);
    const e = connect(child.pid!, '192.168.50.10', '10.244.2.7', 8080);
    assert.deepEqual(e.src, {
      namespace: 'monitoring', name: 'node-agent-k8v2m', type: 'Pod', ownerName: 'node-agent', ownerType: 'DaemonSet',
      podName: 'node-agent-k8v2m', podUid: agentUid, nodeName: 'node-a', containerName: 'agent', containerId: agentContainer,
    });
    assert.deepEqual(e.dst, checkoutPod);
  });

  await t.test('the agent CLI exports the identities: workload level on metrics, full detail on logs', async () => {
    const out = join(h.dir, 'agent-out.jsonl');
    const input = [HEADER, toolLine(4242, 'app', '10.244.1.5', '10.96.0.20', 80, 3.5), toolLine(4242, 'app', '10.244.1.5', '10.244.2.7', 8080, 4.5), ''].join('\n');
    const run = await runAgent(
      ['--source', '-', '--kubeconfig', kubeconfigPath, '--node-name', 'node-a', '--export', `otlp-json:${out}`, '--slow-ms', '0', '--health-addr', 'off', '--view', 'off'],
      { input, env: { KUBERNETES_SERVICE_HOST: '' } },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /Kubernetes enrichment on: https:\/\/127\.0\.0\.1:\d+, node node-a/);
    assert.match(run.stderr, /Kubernetes index ready: \d+ pods \(\d+ on this node\)/);
    const { metrics, logs } = readOtlpJson(out);
    const histogram = lastMetric(metrics, 'tcp.connect.duration');
    const points = histogram.histogram.dataPoints.map((dp: { attributes: unknown[] }) => attrs(dp.attributes));
    const workload = (dst: Record<string, string>) => ({
      'k8s.src.namespace': 'shop', 'k8s.src.type': 'Pod', 'k8s.src.owner.name': 'cart', 'k8s.src.owner.type': 'Deployment', ...dst,
    });
    const pick = (a: Record<string, unknown>) => Object.fromEntries(Object.entries(a).filter(([k]) => k.startsWith('k8s.')));
    assert.deepEqual(points.map(pick).sort((a: Record<string, unknown>, b: Record<string, unknown>) => String(a['k8s.dst.type']).localeCompare(String(b['k8s.dst.type']))), [
      workload({ 'k8s.dst.namespace': 'shop', 'k8s.dst.type': 'Pod', 'k8s.dst.owner.name': 'checkout', 'k8s.dst.owner.type': 'Deployment' }),
      workload({ 'k8s.dst.namespace': 'shop', 'k8s.dst.type': 'Service', 'k8s.dst.owner.name': 'checkout', 'k8s.dst.owner.type': 'Service' }),
    ]);
    const records = logRecords(logs).map((r: { attributes: unknown[] }) => attrs(r.attributes));
    const toPod = records.find((a) => a['server.address'] === '10.244.2.7');
    assert.ok(toPod, 'a slow-connection log for the pod destination');
    assert.deepEqual(pick(toPod), {
      'k8s.src.namespace': 'shop', 'k8s.src.name': 'cart-7d4f9c-abcde', 'k8s.src.type': 'Pod', 'k8s.src.owner.name': 'cart', 'k8s.src.owner.type': 'Deployment',
      'k8s.src.pod.name': 'cart-7d4f9c-abcde', 'k8s.src.pod.uid': cartUid, 'k8s.src.container.name': 'app', 'k8s.src.container.id': cid(1), 'k8s.src.node.name': 'node-a',
      'k8s.dst.namespace': 'shop', 'k8s.dst.name': 'checkout-5b6c7d-xyz12', 'k8s.dst.type': 'Pod', 'k8s.dst.owner.name': 'checkout', 'k8s.dst.owner.type': 'Deployment',
      'k8s.dst.pod.name': 'checkout-5b6c7d-xyz12', 'k8s.dst.pod.uid': checkoutUid, 'k8s.dst.service.name': 'checkout', 'k8s.dst.node.name': 'node-b',
    });
  });

  await t.test('a deleted pod no longer resolves', async () => {
    await h.call('DELETE', '/api/v1/namespaces/shop/pods/backup-29400000-q7x2p', { query: { gracePeriodSeconds: 0 } });
    await until('the deleted pod to drop out', () => (connect(4242, '10.244.1.5', '10.244.2.9', 5432).dst?.type === 'External' ? true : undefined));
  });

  await t.test('the API server restarts: the watches come back and new objects resolve', async (st) => {
    const errorsBefore = enricher.counters.watchErrors;
    const restartStarted = Date.now();
    await restartApiServer(h);
    const readyAt = Date.now();
    // Made after the restart: only a watch that recovered can deliver it.
    const rs2 = await k.replicaSet('shop', 'checkout', checkoutDeploy, '9f8e7d');
    await k.pod('shop', 'checkout-9f8e7d-new01', { node: 'node-b', ip: '10.244.2.30', owner: ['ReplicaSet', 'checkout-9f8e7d', rs2], containers: [['app', cid(6)]] });
    const dst = await until('the new pod to resolve', () => {
      const d = connect(4242, '10.244.1.5', '10.244.2.30', 8080).dst;
      return d?.type === 'Pod' && d.ownerType === 'Deployment' ? d : undefined;
    }, 90_000);
    st.diagnostic(`kube-apiserver down and ready again in ${readyAt - restartStarted} ms; a pod made then resolved ${Date.now() - readyAt} ms later (${enricher.counters.watchErrors - errorsBefore} watch errors, ${enricher.counters.watchRestarts} restarts)`);
    assert.equal(dst.ownerName, 'checkout');
    assert.equal(dst.name, 'checkout-9f8e7d-new01');
    assert.ok(enricher.counters.watchErrors > errorsBefore, 'the outage was seen as watch errors');
    // and what was there before is still right
    assert.deepEqual(connect(4242, '10.244.1.5', '10.244.2.7', 8080).dst, checkoutPod);
  });
});
