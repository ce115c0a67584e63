// A synthetic cluster for bench/kube-scale.ts, written into a real kube-apiserver: 15 pods per Deployment (its
// ReplicaSet, its Service, one EndpointSlice of its 15 pods), every 20th workload a Job instead (pods behind no
// Service), one node per 30 pods, 200 namespaces. At 150k pods: 10,000 workloads (9,500 Services), 5,000 nodes.
// Pods are never run: each is created with spec.nodeName, then given an IP and phase Running through /status.
import { request, Agent } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export const PODS_PER_WORKLOAD = 15;
export const PODS_PER_NODE = 30;
export const NAMESPACES = 200;

const hex = (n: number, len: number) => n.toString(16).padStart(len, '0').slice(-len);
export const ns = (w: number) => `team-${w % NAMESPACES}`;
export const workloadOf = (pod: number) => Math.floor(pod / PODS_PER_WORKLOAD);
export const isJob = (w: number) => w % 20 === 19;
export const templateHash = (w: number) => hex((w * 7919 + 12345) >>> 0, 10);
/** Pod IPs from 10.64.0.0/10 by slot; a replaced pod takes a new slot, as a CNI hands out a fresh (or reused) IP. */
export const podIp = (slot: number) => `10.${64 + (slot >> 16)}.${(slot >> 8) & 255}.${slot & 255}`;
export const nodeIp = (n: number) => `192.168.${n >> 8}.${n & 255}`;
export const serviceIp = (w: number) => `10.96.${64 + (w >> 8)}.${w & 255}`;
export const nodeName = (n: number) => `node-${n}`;

export function podName(pod: number, generation = 0): string {
  const w = workloadOf(pod);
  const suffix = hex(pod * 31 + generation * 1_000_003, 5);
  return isJob(w) ? `batch-${w}-${suffix}` : `web-${w}-${templateHash(w)}-${suffix}`;
}

export function pod(podIndex: number, generation = 0): object {
  const w = workloadOf(podIndex);
  const job = isJob(w);
  const owner = job ? { apiVersion: 'batch/v1', kind: 'Job', name: `batch-${w}` } : { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `web-${w}-${templateHash(w)}` };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(podIndex, generation),
      namespace: ns(w),
      labels: job ? { 'job-name': `batch-${w}` } : { app: `web-${w}`, 'pod-template-hash': templateHash(w) },
      ownerReferences: [{ ...owner, uid: `00000000-0000-4000-8000-${hex(w, 12)}`, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      nodeName: nodeName(Math.floor(podIndex / PODS_PER_NODE)),
      containers: [{ name: 'app', image: `registry.example/web-${w}:1.2.3`, ports: [{ containerPort: 8080 }], resources: { requests: { cpu: '100m', memory: '128Mi' } } }],
      restartPolicy: job ? 'Never' : 'Always',
    },
  };
}

export function podStatus(slot: number): object {
  const ip = podIp(slot);
  return {
    status: {
      phase: 'Running',
      podIP: ip,
      podIPs: [{ ip }],
      conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: [{ name: 'app', ready: true, restartCount: 0, image: 'registry.example/app:1.2.3', imageID: 'sha256:abc', containerID: `containerd://${hex(slot, 64)}`, state: { running: {} } }],
    },
  };
}

export function node(n: number): object {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name: nodeName(n), labels: { 'kubernetes.io/hostname': nodeName(n) } } };
}
export function nodeStatus(n: number): object {
  return { status: { addresses: [{ type: 'InternalIP', address: nodeIp(n) }, { type: 'Hostname', address: nodeName(n) }] } };
}

export function replicaSet(w: number): object {
  const hash = templateHash(w);
  const labels = { app: `web-${w}`, 'pod-template-hash': hash };
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name: `web-${w}-${hash}`, namespace: ns(w), labels, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: `web-${w}`, uid: `00000000-0000-4000-9000-${hex(w, 12)}`, controller: true }] },
    spec: { replicas: PODS_PER_WORKLOAD, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: `registry.example/web-${w}:1.2.3` }] } } },
  };
}

export function job(w: number): object {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: `batch-${w}`, namespace: ns(w) },
    spec: { manualSelector: true, selector: { matchLabels: { 'job-name': `batch-${w}` } }, template: { metadata: { labels: { 'job-name': `batch-${w}` } }, spec: { restartPolicy: 'Never', containers: [{ name: 'app', image: 'registry.example/batch:1' }] } } },
  };
}

export function service(w: number): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `web-${w}`, namespace: ns(w) },
    spec: { clusterIP: serviceIp(w), ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }], selector: { app: `web-${w}` } },
  };
}

/** The EndpointSlice of workload w, listing its pods (pod index -> [slot, generation]). */
export function endpointSlice(w: number, members: Array<[pod: number, slot: number, generation: number]>): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `web-${w}-abcde`, namespace: ns(w), labels: { 'kubernetes.io/service-name': `web-${w}`, 'endpointslice.kubernetes.io/managed-by': 'bench' } },
    addressType: 'IPv4',
    ports: [{ name: '', port: 8080, protocol: 'TCP' }],
    endpoints: members.map(([p, slot, gen]) => ({
      addresses: [podIp(slot)],
      conditions: { ready: true, serving: true, terminating: false },
      targetRef: { kind: 'Pod', name: podName(p, gen), namespace: ns(w) },
      nodeName: nodeName(Math.floor(p / PODS_PER_NODE)),
    })),
  };
}

/** A small HTTPS client for the loader: keep-alive sockets, admin client certificate, JSON in and out. */
export class Loader {
  readonly #server: URL;
  readonly #agent: Agent;
  readonly #headers: Record<string, string>;
  requests = 0;

  private constructor(server: string, agent: Agent, headers: Record<string, string>) {
    this.#server = new URL(server);
    this.#agent = agent;
    this.#headers = headers;
  }

  static async create(kc: KubeConfig, sockets = 32): Promise<Loader> {
    const opts: import('node:https').RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    const agent = new Agent({ keepAlive: true, maxSockets: sockets, ca: opts.ca, cert: opts.cert, key: opts.key });
    return new Loader(kc.getCurrentCluster()!.server, agent, (opts.headers ?? {}) as Record<string, string>);
  }

  send(method: string, path: string, body?: object, contentType = 'application/json'): Promise<{ status: number; body: string }> {
    this.requests++;
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        { host: this.#server.hostname, port: this.#server.port, path, method, agent: this.#agent, headers: { ...this.#headers, Accept: 'application/json', ...(data ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(data) } : {}) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  /** Sends and fails on anything but 2xx (409 AlreadyExists is fine when `exists` is true: a rerun). */
  async must(method: string, path: string, body?: object, contentType?: string, exists = false): Promise<void> {
    const r = await this.send(method, path, body, contentType);
    if (r.status >= 200 && r.status < 300) return;
    if (exists && r.status === 409) return;
    throw new Error(`${method} ${path}: HTTP ${r.status} ${r.body.slice(0, 300)}`);
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** Runs `work(i)` for i in [from, to) with `concurrency` in flight. */
export async function parallel(from: number, to: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = from;
  const worker = async () => {
    while (next < to) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, to - from) }, worker));
}

/** Everything the loader has put in the cluster, so churn can replace pods and rewrite their slices. */
export class ClusterState {
  pods = 0;
  nodes = 0;
  workloads = 0;
  nextSlot = 0;
  slot = new Int32Array(400_000);
  gen = new Int32Array(400_000);
  readonly loader: Loader;
  constructor(loader: Loader) {
    this.loader = loader;
  }

  members(w: number): Array<[number, number, number]> {
    const out: Array<[number, number, number]> = [];
    for (let p = w * PODS_PER_WORKLOAD; p < Math.min((w + 1) * PODS_PER_WORKLOAD, this.pods); p++) out.push([p, this.slot[p]!, this.gen[p]!]);
    return out;
  }

  async createPod(p: number): Promise<void> {
    const w = workloadOf(p);
    await this.loader.must('POST', `/api/v1/namespaces/${ns(w)}/pods`, pod(p, this.gen[p]), undefined, true);
    this.slot[p] = this.nextSlot++;
    await this.loader.must('PATCH', `/api/v1/namespaces/${ns(w)}/pods/${podName(p, this.gen[p])}/status`, podStatus(this.slot[p]!), 'application/merge-patch+json');
  }

  async putSlice(w: number, create: boolean): Promise<void> {
    const body = endpointSlice(w, this.members(w));
    if (create) await this.loader.must('POST', `/apis/discovery.k8s.io/v1/namespaces/${ns(w)}/endpointslices`, body, undefined, true);
    else await this.loader.must('PATCH', `/apis/discovery.k8s.io/v1/namespaces/${ns(w)}/endpointslices/web-${w}-abcde`, body, 'application/merge-patch+json');
  }

  /** Grows the cluster to `pods` pods with their nodes, workloads, Services and EndpointSlices. */
  async grow(pods: number): Promise<void> {
    const L = this.loader;
    if (this.pods === 0) await parallel(0, NAMESPACES, 16, (i) => L.must('POST', '/api/v1/namespaces', { metadata: { name: `team-${i}` } }, undefined, true));
    const nodes = Math.ceil(pods / PODS_PER_NODE);
    await parallel(this.nodes, nodes, 32, async (n) => {
      await L.must('POST', '/api/v1/nodes', node(n), undefined, true);
      await L.must('PATCH', `/api/v1/nodes/${nodeName(n)}/status`, nodeStatus(n), 'application/merge-patch+json');
    });
    this.nodes = nodes;
    const workloads = Math.ceil(pods / PODS_PER_WORKLOAD);
    await parallel(this.workloads, workloads, 32, async (w) => {
      if (isJob(w)) return L.must('POST', `/apis/batch/v1/namespaces/${ns(w)}/jobs`, job(w), undefined, true);
      await L.must('POST', `/apis/apps/v1/namespaces/${ns(w)}/replicasets`, replicaSet(w), undefined, true);
      await L.must('POST', `/api/v1/namespaces/${ns(w)}/services`, service(w), undefined, true);
    });
    const from = this.pods;
    await parallel(from, pods, 48, (p) => this.createPod(p));
    this.pods = pods;
    await parallel(Math.floor(from / PODS_PER_WORKLOAD), workloads, 32, (w) => (isJob(w) ? Promise.resolve() : this.putSlice(w, w >= this.workloads)));
    this.workloads = workloads;
  }

  /** Replaces pod p: delete, create the next generation with a new IP, rewrite its workload's EndpointSlice. */
  async replace(p: number): Promise<void> {
    const w = workloadOf(p);
    // Grace period 0: no kubelet runs here to finish a graceful delete, so the pod would stay Terminating, IP and all.
    await this.loader.must('DELETE', `/api/v1/namespaces/${ns(w)}/pods/${podName(p, this.gen[p])}?gracePeriodSeconds=0`);
    this.gen[p]!++;
    await this.createPod(p);
    if (!isJob(w)) await this.putSlice(w, false);
  }
}
