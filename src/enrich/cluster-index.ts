// The in-memory index the enricher looks addresses up in: IP -> Service / Pod / Node / EndpointSlice endpoint, pod
// UID -> pod for this node, and ReplicaSet/Job -> their controllers. Watches keep it fresh (kube-watch.ts); lookups
// are a Map get or two and return shared, frozen PeerIdentity objects, so enriching allocates nothing per event.
import type { PeerIdentity } from '../event.ts';
import {
  nodeIdentity,
  type ContainerRef,
  type ControllerRecord,
  type EndpointSliceRecord,
  type NodeRecord,
  type PodRecord,
  type ServiceRecord,
} from './compact.ts';

export const EXTERNAL: PeerIdentity = Object.freeze({ type: 'External' });

/**
 * IP -> record. Several records may claim one IP (a pod IP reused while the old pod is still listed, a service IP
 * moving): all are kept, ordered best first by `compare`, so deleting the winner reveals the next.
 */
export class IpTable<T> {
  readonly #map = new Map<string, T | T[]>();
  readonly #compare: (a: T, b: T) => number;

  constructor(compare: (a: T, b: T) => number) {
    this.#compare = compare;
  }

  get size(): number {
    return this.#map.size;
  }

  get(ip: string): T | undefined {
    const v = this.#map.get(ip);
    return Array.isArray(v) ? v[0] : v;
  }

  add(ip: string, rec: T): void {
    const v = this.#map.get(ip);
    if (v === undefined) this.#map.set(ip, rec);
    else if (Array.isArray(v)) {
      if (!v.includes(rec)) v.push(rec);
      v.sort(this.#compare);
    } else if (v !== rec) this.#map.set(ip, [v, rec].sort(this.#compare));
  }

  remove(ip: string, rec: T): void {
    const v = this.#map.get(ip);
    if (v === rec) this.#map.delete(ip);
    else if (Array.isArray(v)) {
      const rest = v.filter((x) => x !== rec);
      this.#map.set(ip, rest.length === 1 ? rest[0]! : rest);
    }
  }
}

const phaseRank = (p: PodRecord) => (p.phase === 'Running' ? 0 : 1);
/** On IP reuse the newest running pod wins: Running before Pending/Unknown, then newest, then by UID for a stable order. */
export function podOrder(a: PodRecord, b: PodRecord): number {
  return phaseRank(a) - phaseRank(b) || b.createdMs - a.createdMs || (a.metadata.uid < b.metadata.uid ? -1 : 1);
}
const byKey = <T extends { metadata: { namespace: string | undefined; name: string } }>(a: T, b: T) => (keyOf(a.metadata) < keyOf(b.metadata) ? -1 : 1);

/** Pods that no longer own their IP (Succeeded/Failed) and hostNetwork pods (their IP is the node's) are not indexed by IP. */
function ownsIps(p: PodRecord): boolean {
  return !p.hostNetwork && p.phase !== 'Succeeded' && p.phase !== 'Failed';
}
const terminated = (p: PodRecord) => p.phase === 'Succeeded' || p.phase === 'Failed';

/** One address of an EndpointSlice; its identity is made on first lookup (most are never looked up as such). */
interface EndpointEntry {
  ip: string;
  slice: EndpointSliceRecord;
  podName: string | undefined;
  identity: PeerIdentity | undefined;
}

/** Namespace/name: what the informer cache keys by, so an object re-created under the same name replaces the old. */
const keyOf = (m: { namespace: string | undefined; name: string }) => (m.namespace === undefined ? m.name : `${m.namespace}/${m.name}`);

function endpointIdentity(e: EndpointEntry): PeerIdentity {
  const namespace = e.slice.metadata.namespace;
  const serviceName = e.slice.serviceName;
  e.identity ??=
    e.podName !== undefined
      ? freezeIdentity({ namespace, name: e.podName, type: 'Pod', podName: e.podName, serviceName })
      : freezeIdentity({ namespace, name: serviceName, type: 'Service', ownerName: serviceName, ownerType: 'Service', serviceName });
  return e.identity;
}

/** Records by key, and by IP for those that `ownsIps` says hold their IPs. */
class IndexedRecords<T extends { metadata: { uid: string; namespace: string | undefined; name: string }; ips: string[] }> {
  readonly byKey = new Map<string, T>();
  readonly byIp: IpTable<T>;
  readonly #ownsIps: (rec: T) => boolean;

  constructor(compare: (a: T, b: T) => number, ownsIps: (rec: T) => boolean = () => true) {
    this.byIp = new IpTable(compare);
    this.#ownsIps = ownsIps;
  }

  upsert(rec: T): void {
    this.delete(rec);
    this.byKey.set(keyOf(rec.metadata), rec);
    if (this.#ownsIps(rec)) for (const ip of rec.ips) this.byIp.add(ip, rec);
  }

  /** Removes the stored version of `rec` (same key) and returns it. */
  delete(rec: T): T | undefined {
    const key = keyOf(rec.metadata);
    const old = this.byKey.get(key);
    if (old === undefined) return undefined;
    this.byKey.delete(key);
    for (const ip of old.ips) this.byIp.remove(ip, old);
    return old;
  }
}

function freezeIdentity(fields: PeerIdentity): PeerIdentity {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== '') out[k] = v;
  return Object.freeze(out) as PeerIdentity;
}

/** Counts of what the index holds, for logs and the benchmark. */
export interface IndexSizes {
  pods: number;
  podIps: number;
  localPods: number;
  services: number;
  serviceIps: number;
  nodes: number;
  endpointIps: number;
  controllers: number;
}

/**
 * CronJob names its Jobs "<cronjob>-<scheduled time in minutes since the epoch>". A bare Job named with a date
 * ("report-20260101") must not pass for one, so the number must be a schedule time shortly before the pod started.
 */
export function cronJobOfJobName(jobName: string, podCreatedMs: number): string | undefined {
  const dash = jobName.lastIndexOf('-');
  const digits = jobName.slice(dash + 1);
  if (dash <= 0 || !/^\d{8,10}$/.test(digits)) return undefined;
  const scheduledMs = Number(digits) * 60_000;
  const startedMs = podCreatedMs > 0 ? podCreatedMs : Date.now();
  const ageMs = startedMs - scheduledMs;
  return ageMs >= -3_600_000 && ageMs <= 30 * 86_400_000 ? jobName.slice(0, dash) : undefined;
}

export class ClusterIndex {
  /** The node this agent runs on; its own identity when a connection comes from a host process. */
  readonly nodeName: string | undefined;
  readonly #pods = new IndexedRecords<PodRecord>(podOrder, ownsIps);
  readonly #localPods = new IndexedRecords<PodRecord>(podOrder, ownsIps);
  /** metadata.uid and, for static pods, the config hash their cgroups are named after */
  readonly #localByUid = new Map<string, PodRecord>();
  readonly #services = new IndexedRecords<ServiceRecord>(byKey);
  readonly #nodes = new IndexedRecords<NodeRecord>(byKey);
  readonly #slices = new Map<string, EndpointEntry[]>();
  readonly #endpointIps = new IpTable<EndpointEntry>((a, b) => (keyOf(a.slice.metadata) < keyOf(b.slice.metadata) ? -1 : 1));
  readonly #controllers = new Map<string, ControllerRecord>();
  /** Bumped when something a pod's identity depends on (its controllers, its services) changes. */
  #epoch = 0;
  readonly #thisNode: PeerIdentity | undefined;

  constructor(nodeName?: string) {
    this.nodeName = nodeName || undefined;
    this.#thisNode = this.nodeName ? nodeIdentity(this.nodeName) : undefined;
  }

  sizes(): IndexSizes {
    return {
      pods: this.#pods.byKey.size,
      podIps: this.#pods.byIp.size,
      localPods: this.#localPods.byKey.size,
      services: this.#services.byKey.size,
      serviceIps: this.#services.byIp.size,
      nodes: this.#nodes.byKey.size,
      endpointIps: this.#endpointIps.size,
      controllers: this.#controllers.size,
    };
  }

  // ---- updates (from watches) ----

  upsertPod(rec: PodRecord): void {
    this.#pods.upsert(rec);
  }

  deletePod(rec: PodRecord): void {
    this.#pods.delete(rec);
  }

  /** A pod on this node, with its containers (source side). */
  upsertLocalPod(rec: PodRecord): void {
    this.deleteLocalPod(rec);
    if (terminated(rec)) return; // its processes are gone; a new pod may reuse its IP
    this.#localPods.upsert(rec);
    if (rec.metadata.uid) this.#localByUid.set(rec.metadata.uid, rec);
    if (rec.mirrorHash) this.#localByUid.set(rec.mirrorHash, rec);
  }

  deleteLocalPod(rec: PodRecord): void {
    const old = this.#localPods.delete(rec);
    if (old === undefined) return;
    if (old.metadata.uid && this.#localByUid.get(old.metadata.uid) === old) this.#localByUid.delete(old.metadata.uid);
    if (old.mirrorHash && this.#localByUid.get(old.mirrorHash) === old) this.#localByUid.delete(old.mirrorHash);
  }

  upsertService(rec: ServiceRecord): void {
    this.#services.upsert(rec);
  }

  deleteService(rec: ServiceRecord): void {
    this.#services.delete(rec);
  }

  upsertNode(rec: NodeRecord): void {
    this.#nodes.upsert(rec);
  }

  deleteNode(rec: NodeRecord): void {
    this.#nodes.delete(rec);
  }

  upsertEndpointSlice(rec: EndpointSliceRecord): void {
    this.deleteEndpointSlice(rec);
    const entries = rec.endpoints.map((e): EndpointEntry => ({ ip: e.ip, slice: rec, podName: e.podName, identity: undefined }));
    this.#slices.set(keyOf(rec.metadata), entries);
    for (const entry of entries) this.#endpointIps.add(entry.ip, entry);
    this.#epoch++;
  }

  deleteEndpointSlice(rec: EndpointSliceRecord): void {
    const sliceKey = keyOf(rec.metadata);
    const old = this.#slices.get(sliceKey);
    if (old === undefined) return;
    this.#slices.delete(sliceKey);
    for (const entry of old) this.#endpointIps.remove(entry.ip, entry);
    this.#epoch++;
  }

  upsertController(kind: 'ReplicaSet' | 'Job', rec: ControllerRecord): void {
    const key = `${kind}/${rec.metadata.namespace ?? ''}/${rec.metadata.name}`;
    const old = this.#controllers.get(key);
    this.#controllers.set(key, rec);
    if (old === undefined || old.ownerKind !== rec.ownerKind || old.ownerName !== rec.ownerName) this.#epoch++;
  }

  deleteController(kind: 'ReplicaSet' | 'Job', rec: ControllerRecord): void {
    if (this.#controllers.delete(`${kind}/${rec.metadata.namespace ?? ''}/${rec.metadata.name}`)) this.#epoch++;
  }

  // ---- lookups (hot path) ----

  /** The top-level workload of a pod: ReplicaSet -> Deployment and Job -> CronJob through the watched controllers;
   * by naming convention only while a controller is unknown (not listed yet, or forbidden). */
  ownerOf(pod: PodRecord): [name: string, type: string] {
    const { ownerKind: kind, ownerName: name } = pod;
    const ns = pod.metadata.namespace ?? '';
    if (kind === undefined || name === undefined || kind === 'Node') return [pod.metadata.name, 'Pod']; // bare or static pod
    if (kind === 'ReplicaSet' || kind === 'Job') {
      const c = this.#controllers.get(`${kind}/${ns}/${name}`);
      if (c !== undefined) return c.ownerKind !== undefined && c.ownerName !== undefined ? [c.ownerName, c.ownerKind] : [name, kind];
      if (kind === 'ReplicaSet') {
        const hash = pod.templateHash;
        if (hash && name.length > hash.length + 1 && name.endsWith(`-${hash}`)) return [name.slice(0, -hash.length - 1), 'Deployment'];
      } else {
        const cronJob = cronJobOfJobName(name, pod.createdMs);
        if (cronJob !== undefined) return [cronJob, 'CronJob'];
      }
    }
    return [name, kind];
  }

  podIdentity(pod: PodRecord): PeerIdentity {
    if (pod.identity !== undefined && pod.identityEpoch === this.#epoch) return pod.identity;
    const [ownerName, ownerType] = this.ownerOf(pod);
    let serviceName: string | undefined;
    for (const ip of pod.ips) {
      const ep = this.#endpointIps.get(ip);
      if (ep !== undefined && ep.slice.metadata.namespace === pod.metadata.namespace) {
        serviceName = ep.slice.serviceName;
        break;
      }
    }
    pod.identity = freezeIdentity({
      namespace: pod.metadata.namespace,
      name: pod.metadata.name,
      type: 'Pod',
      ownerName,
      ownerType,
      podName: pod.metadata.name,
      podUid: pod.metadata.uid,
      nodeName: pod.nodeName,
      serviceName,
    });
    pod.identityEpoch = this.#epoch;
    pod.containerIdentities = undefined;
    return pod.identity;
  }

  containerIdentity(pod: PodRecord, container: ContainerRef): PeerIdentity {
    const base = this.podIdentity(pod); // resets containerIdentities when the epoch moved
    pod.containerIdentities ??= new Map();
    let id = pod.containerIdentities.get(container.id);
    if (id === undefined) {
      id = Object.freeze({ ...base, containerName: container.name, containerId: container.id });
      pod.containerIdentities.set(container.id, id);
    }
    return id;
  }

  /** Destination: Service (ClusterIP, external/LB IP) > Pod > Node > EndpointSlice endpoint > External. */
  resolveDestination(ip: string): PeerIdentity {
    const svc = this.#services.byIp.get(ip);
    if (svc !== undefined) return svc.identity;
    const pod = this.#pods.byIp.get(ip);
    if (pod !== undefined) return this.podIdentity(pod);
    const node = this.#nodes.byIp.get(ip);
    if (node !== undefined) return node.identity;
    const ep = this.#endpointIps.get(ip);
    if (ep !== undefined) return endpointIdentity(ep);
    return EXTERNAL;
  }

  /** A pod on this node that owns this IP (not hostNetwork, not terminated). */
  localPodByIp(ip: string): PodRecord | undefined {
    return this.#localPods.byIp.get(ip);
  }

  /** A pod on this node by metadata.uid, or by the config hash a static pod's cgroup is named after. */
  localPodByUid(uid: string): PodRecord | undefined {
    return this.#localByUid.get(uid);
  }

  /** Any pod by IP, cluster-wide (source side when NODE_NAME is not known). */
  podByIp(ip: string): PodRecord | undefined {
    return this.#pods.byIp.get(ip);
  }

  /** This node, as a peer: a connection from a host process outside any pod. */
  thisNode(): PeerIdentity | undefined {
    return this.#thisNode;
  }
}
