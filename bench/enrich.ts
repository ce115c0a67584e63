// npx node bench/enrich.ts: the enrichment index at cluster scale (default 50k pods, one node per 30 pods, 10k
// Deployments each with a Service and EndpointSlices of up to 100 endpoints, 10 ReplicaSets per Deployment as
// revisionHistoryLimit keeps them, a tenth of the pods from Jobs and behind no Service). Objects shaped like the
// API's go through the same compactors the watches use. Reports the memory the index keeps (heap and RSS deltas
// after GC; the index is the only store, there is no informer cache beside it) and the cost of one lookup, against a
// bare Map<string, object> of the same keys measured in the same run (timings here are noisy: read the ratios).
import { loadavg } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { KubeConfig } from '@kubernetes/client-node';
import { ClusterIndex } from '../src/enrich/cluster-index.ts';
import { compactController, compactEndpointSlice, compactNode, compactPod, compactService } from '../src/enrich/compact.ts';
import { KubeEnricher } from '../src/enrich/kube-enricher.ts';
import { PidResolver } from '../src/enrich/proc.ts';
import type { ConnectEvent } from '../src/event.ts';
import { createLogger } from '../src/log.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const PODS = Number(process.env.BENCH_PODS ?? 50_000);
const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000);
const NODES = Math.max(1, Math.ceil(PODS / 30));
const RS_PER_DEPLOYMENT = 10;
/** pods of Deployment d: the first 90% of pods, spread evenly; the rest are Job pods behind no Service */
const SERVED = Math.floor(PODS * 0.9);
const perDeployment = Math.max(1, Math.ceil(SERVED / SERVICES));
const LOOKUPS = Number(process.env.BENCH_LOOKUPS ?? 2_000_000);

const podIp = (i: number) => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
const serviceIp = (i: number) => `10.96.${(i >> 8) & 255}.${i & 255}`;
const hex = (n: number, len: number) => n.toString(16).padStart(len, '0').slice(-len);
const uid = (n: number) => `${hex(n, 8)}-0000-4000-8000-${hex(n, 12)}`;

/** Through JSON, as objects arrive from the API: flat strings, not the concatenations built here. */
const wire = (obj: unknown): unknown => JSON.parse(JSON.stringify(obj));

/** A pod as a watch delivers it (labels, annotations, spec, status with conditions): what compaction throws away. */
function rawPod(i: number): unknown {
  return wire(buildPod(i));
}

const templateHash = (d: number, rev: number) => hex((d * 7919 + rev * 104729) >>> 0, 10);

function buildPod(i: number): unknown {
  const served = i < SERVED;
  const d = Math.floor(i / perDeployment);
  const ns = `team-${(served ? d : i) % 200}`;
  const deploy = `svc-${d}`;
  const hash = templateHash(d, 0);
  const job = `batch-${i}-29453760`;
  const owner = served ? { kind: 'ReplicaSet', name: `${deploy}-${hash}` } : { kind: 'Job', name: job };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: served ? `${deploy}-${hash}-${hex(i, 5)}` : `${job}-${hex(i, 5)}`,
      namespace: ns,
      uid: uid(i),
      resourceVersion: String(1000 + i),
      creationTimestamp: new Date(1_767_225_600_000 + (i % 60) * 1000).toISOString(),
      labels: served ? { app: deploy, 'pod-template-hash': hash, 'app.kubernetes.io/part-of': ns } : { 'job-name': job },
      annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-01-01T00:00:00Z', 'prometheus.io/scrape': 'true' },
      ownerReferences: [{ apiVersion: 'apps/v1', ...owner, uid: uid(i + 10_000_000), controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      nodeName: `node-${i % NODES}`,
      containers: [{ name: 'app', image: `registry.example/${deploy}:1.2.3`, ports: [{ containerPort: 8080 }], resources: { requests: { cpu: '100m', memory: '128Mi' } } }],
      serviceAccountName: 'default',
    },
    status: {
      phase: 'Running',
      hostIP: nodeIp(i % NODES),
      podIP: podIp(i),
      podIPs: [{ ip: podIp(i) }],
      conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z' })),
      containerStatuses: [{ name: 'app', ready: true, restartCount: 0, image: `registry.example/${deploy}:1.2.3`, imageID: 'sha256:abc', containerID: `containerd://${hex(i, 64)}`, state: { running: { startedAt: '2026-01-01T00:00:00Z' } } }],
    },
  };
}

const nodeIp = (n: number) => `192.168.${n >> 8}.${n & 255}`;

function rawService(i: number): unknown {
  return wire({
    metadata: { name: `svc-${i}`, namespace: `team-${i % 200}`, uid: uid(i + 20_000_000), resourceVersion: '1' },
    spec: { type: 'ClusterIP', clusterIP: serviceIp(i), clusterIPs: [serviceIp(i)], ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }], selector: { app: `svc-${i}` } },
  });
}

/** Deployment d's EndpointSlices (the controller cuts them at 100 endpoints). */
function rawSlices(d: number): unknown[] {
  const slices = [];
  const first = d * perDeployment;
  const end = Math.min(first + perDeployment, SERVED);
  for (let start = first, n = 0; start < end; start += 100, n++) {
    const endpoints = [];
    for (let p = start; p < Math.min(start + 100, end); p++) {
      const name = `svc-${d}-${templateHash(d, 0)}-${hex(p, 5)}`;
      endpoints.push({ addresses: [podIp(p)], targetRef: { kind: 'Pod', name, namespace: `team-${d % 200}`, uid: uid(p) }, nodeName: `node-${p % NODES}`, conditions: { ready: true, serving: true, terminating: false } });
    }
    slices.push(wire({ metadata: { name: `svc-${d}-${hex(n, 5)}`, namespace: `team-${d % 200}`, uid: uid(d * 100 + n + 30_000_000), labels: { 'kubernetes.io/service-name': `svc-${d}`, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } }, addressType: 'IPv4', ports: [{ name: '', port: 8080, protocol: 'TCP' }], endpoints }));
  }
  return slices;
}

/** A ReplicaSet as a metadata-only list returns it. */
function rawReplicaSet(d: number, rev: number): unknown {
  const hash = templateHash(d, rev);
  return wire({ kind: 'PartialObjectMetadata', metadata: { name: `svc-${d}-${hash}`, namespace: `team-${d % 200}`, uid: uid(d * 16 + rev + 40_000_000), labels: { app: `svc-${d}`, 'pod-template-hash': hash }, annotations: { 'deployment.kubernetes.io/revision': String(rev + 1) }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: `svc-${d}`, uid: uid(d + 50_000_000), controller: true, blockOwnerDeletion: true }] } });
}

function rawNode(n: number): unknown {
  return wire({ metadata: { name: `node-${n}`, uid: uid(n + 60_000_000), labels: { 'kubernetes.io/hostname': `node-${n}` } }, status: { addresses: [{ type: 'InternalIP', address: nodeIp(n) }, { type: 'Hostname', address: `node-${n}` }] } });
}

function memory(): { heap: number; rss: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

/** CPU time of this process (user + system) in ns: less disturbed than wall time when other work shares the cores. */
function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** CPU ns per call of fn over `keys`, best of 5 runs. */
function timePerCall(keys: string[], fn: (key: string) => unknown, calls = LOOKUPS): { ns: number; sink: number } {
  let sink = 0;
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 5; run++) {
    const t0 = cpuNs();
    for (let i = 0; i < calls; i++) if (fn(keys[i % keys.length]!) !== undefined) sink++;
    best = Math.min(best, (cpuNs() - t0) / calls);
  }
  return { ns: best, sink };
}

// ---- memory: the index, the only store ----
const before = memory();
const index = new ClusterIndex('node-0');
for (let n = 0; n < NODES; n++) index.upsertNode(compactNode(rawNode(n)));
for (let i = 0; i < PODS; i++) {
  const raw = rawPod(i);
  index.upsertPod(compactPod(raw, false));
  if (i % NODES === 0) index.upsertLocalPod(compactPod(raw, true));
}
let endpointSlices = 0;
for (let d = 0; d < SERVICES; d++) {
  index.upsertService(compactService(rawService(d)));
  for (const slice of rawSlices(d)) {
    index.upsertEndpointSlice(compactEndpointSlice(slice));
    endpointSlices++;
  }
  for (let rev = 0; rev < RS_PER_DEPLOYMENT; rev++) index.upsertController('ReplicaSet', compactController(rawReplicaSet(d, rev)));
}
const afterIndex = memory();

const baseline = new Map<string, { name: string; namespace: string }>();
for (let i = 0; i < PODS; i++) baseline.set(podIp(i), wire({ name: `pod-${i}`, namespace: `team-${i % 200}` }) as { name: string; namespace: string });
for (let i = 0; i < SERVICES; i++) baseline.set(serviceIp(i), wire({ name: `svc-${i}`, namespace: `team-${i % 200}` }) as { name: string; namespace: string });
const afterBaseline = memory();

// ---- lookups: a mix of pod IPs, service IPs and external addresses ----
const keys: string[] = [];
for (let i = 0; i < 100_000; i++) {
  const r = (i * 2654435761) >>> 0;
  keys.push(i % 10 < 6 ? podIp(r % PODS) : i % 10 < 9 ? serviceIp(r % SERVICES) : `203.0.${(r >> 8) & 255}.${r & 255}`);
}
const bare = timePerCall(keys, (k) => baseline.get(k));
const resolve = timePerCall(keys, (k) => index.resolveDestination(k));

// The whole enrich() of an event from a local single-container pod (no /proc read needed).
const kc = new KubeConfig();
kc.loadFromOptions({ clusters: [{ name: 'c', server: 'https://127.0.0.1:1' }], users: [{ name: 'u' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
const enricher = new KubeEnricher({ kubeConfig: kc, nodeName: 'node-0', hostProc: '/proc', logger: createLogger('error') });
for (let i = 0; i < PODS; i++) {
  const raw = rawPod(i);
  enricher.index.upsertPod(compactPod(raw, false));
  if (i % NODES === 0) enricher.index.upsertLocalPod(compactPod(raw, true));
}
for (let i = 0; i < SERVICES; i++) enricher.index.upsertService(compactService(rawService(i)));
const events: ConnectEvent[] = keys.slice(0, 10_000).map((daddr, i) => ({
  timeMs: 0, tool: 'tcpconnlat', pid: 1, comm: 'app', ipVersion: 4, saddr: podIp((i % Math.ceil(PODS / NODES)) * NODES), sport: undefined, daddr, dport: 80, latencyMs: 1, failed: false,
}));
const byAddr = new Map(events.map((e) => [e.daddr, e]));
const enrich = timePerCall([...byAddr.keys()], (k) => {
  const e = byAddr.get(k)!;
  enricher.enrich(e);
  return e.dst;
});

// PID -> cgroup for a process whose pod the address cannot tell (hostNetwork): one /proc stat read per event.
const pids = new PidResolver('/proc');
pids.resolve(process.pid);
const pidCost = timePerCall([String(process.pid)], (k) => pids.resolve(Number(k)), 50_000).ns;

const s = index.sizes();
const rows: Array<[string, string, string]> = [
  ['objects', `${s.pods} pods (${s.localPods} local), ${s.nodes} nodes, ${s.services} services, ${endpointSlices} EndpointSlices (${s.endpointIps} endpoint IPs), ${SERVICES * RS_PER_DEPLOYMENT} ReplicaSets (${s.controllers} stored)`, ''],
  ['index heap', mib(afterIndex.heap - before.heap), `${((afterIndex.heap - before.heap) / PODS).toFixed(0)} B/pod, all objects included`],
  ['index RSS', mib(afterIndex.rss - before.rss), ''],
  ['bare Map heap (baseline)', mib(afterBaseline.heap - afterIndex.heap), `${((afterBaseline.heap - afterIndex.heap) / (PODS + SERVICES)).toFixed(0)} B/entry`],
  ['bare Map.get (baseline)', `${bare.ns.toFixed(1)} ns`, '1.0x'],
  ['resolveDestination', `${resolve.ns.toFixed(1)} ns`, `${(resolve.ns / bare.ns).toFixed(1)}x`],
  ['enrich(event), pod source', `${enrich.ns.toFixed(1)} ns`, `${(enrich.ns / bare.ns).toFixed(1)}x`],
  ['PID -> pod (cached, 1 stat read)', `${pidCost.toFixed(0)} ns`, `${(pidCost / bare.ns).toFixed(0)}x`],
];
console.log(`enrichment index: ${PODS} pods, ${SERVICES} services; ${LOOKUPS} lookups per timing (best of 5, CPU time), Node ${process.version}, load average ${loadavg()[0]!.toFixed(1)}`);
const w0 = Math.max(...rows.map((r) => r[0].length));
const w1 = Math.max(...rows.map((r) => r[1].length));
for (const [a, b, c] of rows) console.log(`  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`);
if (resolve.sink === 0 || bare.sink === 0 || enrich.sink === 0 || s.pods !== PODS) throw new Error('lookups found nothing: the benchmark is broken');
