// The Kubernetes enricher: watches (kube-watch.ts) keep a ClusterIndex fresh, and enrich() fills event.src / event.dst
// from it synchronously. The source side uses this node's pods (field selector spec.nodeName) and, where the source
// address cannot tell (hostNetwork pods, loopback), the process's cgroup via its PID.
import type { KubeAccess } from './kube-access.ts';
import type { ConnectEvent, PeerIdentity } from '../event.ts';
import type { Logger } from '../log.ts';
import { ClusterIndex, type ListedKind } from './cluster-index.ts';
import { compactController, compactEndpointSlice, compactNode, compactPod, compactService, type Keyed, type PodRecord } from './compact.ts';
import type { Enricher } from './enricher.ts';
import type { BackoffOptions } from '../backoff.ts';
import { SupervisedWatch, type WatchSpec } from './kube-watch.ts';
import { PidResolver } from './proc.ts';

export interface KubeEnricherOptions {
  kubeConfig: KubeAccess;
  /** NODE_NAME (Downward API): selects this node's pods for the source side */
  nodeName: string | undefined;
  /** host /proc, for PID -> cgroup */
  hostProc: string;
  logger: Logger;
  /** how long start() waits for the first lists before letting the pipeline run (identities fill in as they land) */
  syncTimeoutMs?: number;
  backoff?: Partial<BackoffOptions>;
}

/** Counters for self-observability and tests. */
export type KubeEnricherCounters = {
  enriched: number;
  srcResolved: number;
  srcUnresolved: number;
  dstExternal: number;
  pidLookups: number;
  /** a connection whose process exited (or whose PID was reused) before its cgroup could be read */
  processGone: number;
  procUnreadable: number;
  watchErrors: number;
  watchRestarts: number;
};

/** "::ffff:10.0.0.1" (a v4 peer on a dual-stack socket) -> "10.0.0.1": the API lists the plain form. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

/** Pods that can be a destination: not finished (their IP may already be another pod's) and not hostNetwork. */
export const CLUSTER_POD_SELECTOR = 'status.phase!=Succeeded,status.phase!=Failed,spec.hostNetwork=false';

export class KubeEnricher implements Enricher {
  readonly enabled = true;
  readonly description: string;
  readonly index: ClusterIndex;
  readonly pids: PidResolver;
  readonly watches: SupervisedWatch<Keyed>[] = [];
  readonly #logger: Logger;
  readonly #syncTimeoutMs: number;
  readonly #stats = { enriched: 0, srcResolved: 0, srcUnresolved: 0, dstExternal: 0 };

  constructor(opts: KubeEnricherOptions) {
    const { kubeConfig: kc, nodeName, logger } = opts;
    this.#logger = logger;
    this.#syncTimeoutMs = opts.syncTimeoutMs ?? 10_000;
    this.index = new ClusterIndex(nodeName);
    this.pids = new PidResolver(opts.hostProc);
    const idx = this.index;
    const backoff = opts.backoff ?? {};
    const listing = (kind: ListedKind) => ({ beginList: () => idx.beginList(kind), endList: () => idx.endList(kind) });
    const add = <R extends Keyed>(spec: WatchSpec<R>) => this.watches.push(new SupervisedWatch<R>(kc, spec, logger, backoff) as unknown as SupervisedWatch<Keyed>);

    // Cluster-wide, only pods that can be a destination: the server filters out finished and hostNetwork pods
    // (they hold no IP of their own), so they cost neither the agent's memory nor watch events.
    add<PodRecord>({
      name: 'pods',
      path: '/api/v1/pods',
      fieldSelector: CLUSTER_POD_SELECTOR,
      compact: (o) => compactPod(o, false),
      upsert: (r) => idx.upsertPod(r),
      remove: (r) => idx.deletePod(r),
      ...listing('pods'),
    });
    if (nodeName) {
      add<PodRecord>({
        name: `pods on ${nodeName}`,
        path: '/api/v1/pods',
        fieldSelector: `spec.nodeName=${nodeName}`,
        compact: (o) => compactPod(o, true),
        upsert: (r) => idx.upsertLocalPod(r),
        remove: (r) => idx.deleteLocalPod(r),
        ...listing('localPods'),
      });
    }
    add({
      name: 'services',
      path: '/api/v1/services',
      compact: compactService,
      upsert: (r) => idx.upsertService(r),
      remove: (r) => idx.deleteService(r),
      ...listing('services'),
    });
    add({
      name: 'nodes',
      path: '/api/v1/nodes',
      compact: compactNode,
      upsert: (r) => idx.upsertNode(r),
      remove: (r) => idx.deleteNode(r),
      ...listing('nodes'),
    });
    add({
      name: 'endpointslices',
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      compact: compactEndpointSlice,
      upsert: (r) => idx.upsertEndpointSlice(r),
      remove: (r) => idx.deleteEndpointSlice(r),
      ...listing('endpointslices'),
    });
    // Only owner references are read from ReplicaSets and Jobs: metadata-only lists and watches.
    add({
      name: 'replicasets',
      path: '/apis/apps/v1/replicasets',
      metadataOnly: true,
      compact: compactController,
      upsert: (r) => idx.upsertController('ReplicaSet', r),
      remove: (r) => idx.deleteController('ReplicaSet', r),
      ...listing('replicasets'),
    });
    add({
      name: 'jobs',
      path: '/apis/batch/v1/jobs',
      metadataOnly: true,
      compact: compactController,
      upsert: (r) => idx.upsertController('Job', r),
      remove: (r) => idx.deleteController('Job', r),
      ...listing('jobs'),
    });
    const server = kc.getCurrentCluster()?.server ?? 'unknown server';
    const where = nodeName
      ? `node ${nodeName}`
      : 'NODE_NAME unset, so sources resolve by pod IP only (no hostNetwork pods, no containers)';
    this.description = `Kubernetes enrichment on: ${server}, ${where}; watching ${this.watches.map((w) => w.spec.name).join(', ')}`;
  }

  get counters(): KubeEnricherCounters {
    const p = this.pids.counters;
    return {
      ...this.#stats,
      pidLookups: p.lookups,
      processGone: p.processGone,
      procUnreadable: p.unreadable,
      watchErrors: this.watches.reduce((n, w) => n + w.errors, 0),
      watchRestarts: this.watches.reduce((n, w) => n + w.restarts, 0),
    };
  }

  /** true once every watch has completed its first list */
  get synced(): boolean {
    return this.watches.every((w) => w.isListed);
  }

  async start(): Promise<void> {
    for (const w of this.watches) w.start();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.#syncTimeoutMs)));
    const all = Promise.all(this.watches.map((w) => w.listed)).then(() => 'synced' as const);
    const outcome = await Promise.race([all, timeout]);
    clearTimeout(timer);
    if (outcome === 'synced') {
      const s = this.index.sizes();
      this.#logger.info(`Kubernetes index ready: ${s.pods} pods (${s.localPods} on this node), ${s.services} services, ${s.nodes} nodes, ${s.endpointIps} endpoint IPs, ${s.controllers} ReplicaSets/Jobs not named by convention`);
    } else {
      const pending = this.watches.filter((w) => !w.isListed).map((w) => `${w.spec.name}${w.lastError ? ` (${w.lastError})` : ''}`);
      this.#logger.warn(`Kubernetes index not complete after ${this.#syncTimeoutMs} ms, still listing: ${pending.join(', ')}; events are enriched as it fills`);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.watches.map((w) => w.stop()));
  }

  enrich(event: ConnectEvent): void {
    this.#stats.enriched++;
    const src = this.#source(event);
    if (src !== undefined) {
      event.src = src;
      this.#stats.srcResolved++;
    } else this.#stats.srcUnresolved++;
    const daddr = normalizeIp(event.daddr);
    // A connect to loopback stays inside the caller's network namespace: the destination is the source itself.
    const dst = isLoopback(daddr) ? src : this.index.resolveDestination(daddr);
    if (dst !== undefined) {
      event.dst = dst;
      if (dst.type === 'External') this.#stats.dstExternal++;
    }
  }

  #source(event: ConnectEvent): PeerIdentity | undefined {
    const idx = this.index;
    const saddr = normalizeIp(event.saddr);
    if (idx.nodeName === undefined) {
      return idx.podIdentityByIp(saddr);
    }
    const pod = idx.localPodByIp(saddr);
    if (pod !== undefined) {
      const containers = pod.containers ?? [];
      if (containers.length === 1) return idx.containerIdentity(pod, containers[0]!);
      // Several containers share the pod's IP: the PID tells which, if it really is in this pod.
      const found = this.pids.resolve(event.pid);
      if (found.kind === 'pod' && (found.podUid === pod.metadata.uid || found.podUid === pod.mirrorHash)) {
        const c = containers.find((x) => x.id === found.containerId);
        if (c !== undefined) return idx.containerIdentity(pod, c);
      }
      return idx.podIdentity(pod);
    }
    // hostNetwork pods share the node's address, and loopback says nothing: ask the process's cgroup.
    const found = this.pids.resolve(event.pid);
    if (found.kind === 'pod') {
      const owner = idx.localPodByUid(found.podUid);
      if (owner === undefined) return undefined; // a pod this node's watch has not delivered yet
      const c = owner.containers?.find((x) => x.id === found.containerId);
      return c !== undefined ? idx.containerIdentity(owner, c) : idx.podIdentity(owner);
    }
    if (found.kind === 'host') return idx.thisNode();
    return undefined;
  }
}
