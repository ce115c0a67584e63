// The in-memory index the enricher looks addresses up in: IP -> Service / Pod / Node / EndpointSlice endpoint, pod
// UID -> pod for this node, and ReplicaSet/Job -> their controllers. Watches keep it fresh (kube-watch.ts); lookups
// are a Map get or two and return shared, frozen PeerIdentity objects, so enriching allocates nothing per event.
import type { PeerIdentity } from '../event.ts';
import {
  nodeIdentity,
  type ContainerRef,
  type ControllerRecord,
  type EndpointSliceRecord,
  type Keyed,
  type NodeRecord,
  type PodRecord,
  type ServiceRecord,
} from './compact.ts';
import { PodTable, type PodOwnerFields } from './pod-table.ts';
import { ByName, IndexedRecords, IpTable, sameItems } from './tables.ts';

export { IpTable } from './tables.ts';

export const EXTERNAL: PeerIdentity = Object.freeze({ type: 'External' });

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
/** A cluster-wide pod matters only while it holds an IP: one without any cannot be a destination. */
const holdsIps = (p: PodRecord) => ownsIps(p) && p.ips.length > 0;

/** Namespace/name: what a watch keys by, so an object re-created under the same name replaces the old. */
const keyOf = (m: { namespace: string | undefined; name: string }) => (m.namespace === undefined ? m.name : `${m.namespace}/${m.name}`);

function endpointIdentity(slice: EndpointSliceRecord, ip: string): PeerIdentity {
  let id = slice.identities?.get(ip);
  if (id !== undefined) return id;
  const namespace = slice.metadata.namespace;
  const { serviceName } = slice;
  const podName = slice.podNames[slice.ips.indexOf(ip)];
  id =
    podName !== undefined
      ? freezeIdentity({ namespace, name: podName, type: 'Pod', podName, serviceName })
      : freezeIdentity({ namespace, name: serviceName, type: 'Service', ownerName: serviceName, ownerType: 'Service', serviceName });
  (slice.identities ??= new Map()).set(ip, id);
  return id;
}

/** A Service's or node's identity is made of its namespace and name: the same object with the same IPs is unchanged. */
const sameAddresses = (a: ServiceRecord | NodeRecord, b: ServiceRecord | NodeRecord) => a.metadata.uid === b.metadata.uid && sameItems(a.ips, b.ips);

function freezeIdentity(fields: PeerIdentity): PeerIdentity {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== '') out[k] = v;
  return Object.freeze(out) as PeerIdentity;
}

/** What one watch lists into the index (beginList/endList). */
export type ListedKind = 'pods' | 'localPods' | 'services' | 'nodes' | 'endpointslices' | 'replicasets' | 'jobs';

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

/** A ReplicaSet owned by the Deployment its name and pod-template-hash label name: what ownerOf infers anyway. */
function byConvention(rs: ControllerRecord): boolean {
  const hash = rs.templateHash;
  const name = rs.metadata.name;
  return rs.ownerKind === 'Deployment' && hash !== undefined && hash !== '' && rs.ownerName !== undefined &&
    name === `${rs.ownerName}-${hash}`;
}

export class ClusterIndex {
  /** The node this agent runs on; its own identity when a connection comes from a host process. */
  readonly nodeName: string | undefined;
  /** cluster-wide pods that hold an IP (destinations), packed */
  readonly #pods = new PodTable();
  readonly #localPods = new IndexedRecords<PodRecord>(podOrder, { indexIps: ownsIps });
  /** metadata.uid and, for static pods, the config hash their cgroups are named after */
  readonly #localByUid = new Map<string, PodRecord>();
  readonly #services = new IndexedRecords<ServiceRecord>(byKey, { same: sameAddresses });
  readonly #nodes = new IndexedRecords<NodeRecord>(byKey, { same: sameAddresses });
  readonly #slices = new ByName<EndpointSliceRecord>();
  readonly #endpointIps = new IpTable<EndpointSliceRecord>(byKey);
  /** ReplicaSets: a Deployment's by the length of its hash (see upsertController), any other as its record */
  readonly #replicaSets = new ByName<ControllerRecord | number>();
  readonly #jobs = new ByName<ControllerRecord>();
  /** Bumped when something a pod's identity depends on (its controllers, its services) changes. */
  #epoch = 0;
  readonly #thisNode: PeerIdentity | undefined;

  constructor(nodeName?: string) {
    this.nodeName = nodeName || undefined;
    this.#thisNode = this.nodeName ? nodeIdentity(this.nodeName) : undefined;
  }

  sizes(): IndexSizes {
    return {
      pods: this.#pods.size,
      podIps: this.#pods.byIp.size,
      localPods: this.#localPods.size,
      services: this.#services.size,
      serviceIps: this.#services.byIp.size,
      nodes: this.#nodes.size,
      endpointIps: this.#endpointIps.size,
      controllers: this.#replicaSets.size + this.#jobs.size,
    };
  }

  // ---- updates (from watches) ----

  upsertPod(rec: PodRecord): void {
    // The pod's EndpointSlice entry holds the same IP and name: keep one copy of each string.
    const ip = rec.ips[0];
    const slice = ip === undefined ? undefined : this.#endpointIps.get(ip);
    if (slice !== undefined) {
      const i = slice.ips.indexOf(ip!);
      rec.ips[0] = slice.ips[i]!;
      if (slice.podNames[i] === rec.metadata.name) rec.metadata.name = slice.podNames[i];
    }
    this.#pods.upsert(rec, holdsIps(rec));
  }

  deletePod(rec: Keyed): void {
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

  deleteLocalPod(rec: Keyed): void {
    const old = this.#localPods.delete(rec);
    if (old === undefined) return;
    if (old.metadata.uid && this.#localByUid.get(old.metadata.uid) === old) this.#localByUid.delete(old.metadata.uid);
    if (old.mirrorHash && this.#localByUid.get(old.mirrorHash) === old) this.#localByUid.delete(old.mirrorHash);
  }

  upsertService(rec: ServiceRecord): void {
    this.#services.upsert(rec);
  }

  deleteService(rec: Keyed): void {
    this.#services.delete(rec);
  }

  upsertNode(rec: NodeRecord): void {
    this.#nodes.upsert(rec);
  }

  deleteNode(rec: Keyed): void {
    this.#nodes.delete(rec);
  }

  upsertEndpointSlice(rec: EndpointSliceRecord): void {
    const { namespace, name, uid } = rec.metadata;
    const stored = this.#slices.get(namespace, name);
    // Unchanged (a relist, or only an endpoint's conditions changed): the stored slice stays, the epoch too.
    if (stored !== undefined && stored.metadata.uid === uid && stored.serviceName === rec.serviceName && sameItems(stored.ips, rec.ips) && sameItems(stored.podNames, rec.podNames)) {
      return void this.#slices.set(namespace, name, stored); // counts as listed during a relist (ByName.mark)
    }
    this.deleteEndpointSlice(rec);
    // Share the strings of pods already indexed (see upsertPod): one copy of each IP and name.
    for (let i = 0; i < rec.ips.length; i++) {
      const slot = this.#pods.byIp.get(rec.ips[i]!);
      if (slot === undefined) continue;
      const podIp = this.#pods.ips(slot)[0]!;
      if (podIp === rec.ips[i]) rec.ips[i] = podIp;
      if (rec.podNames[i] === this.#pods.name(slot)) rec.podNames[i] = this.#pods.name(slot);
    }
    this.#slices.set(rec.metadata.namespace, rec.metadata.name, rec);
    for (const ip of rec.ips) this.#endpointIps.add(ip, rec);
    this.#epoch++;
  }

  deleteEndpointSlice(rec: Keyed): void {
    const { namespace, name } = rec.metadata;
    const old = this.#slices.get(namespace, name);
    if (old === undefined) return;
    this.#slices.delete(namespace, name);
    for (const ip of old.ips) this.#endpointIps.remove(ip, old);
    this.#epoch++;
  }

  /**
   * A ReplicaSet a Deployment made is named "<deployment>-<pod-template-hash>" and carries that hash: for it only the
   * hash's length is kept (a number in the map, no record), from which ownerOf cuts the Deployment's name. At 150k
   * pods and ten revisions kept per Deployment that is 100k small entries instead of 100k records. Others (a
   * Rollout's, a bare one) and every Job keep their record.
   */
  upsertController(kind: 'ReplicaSet' | 'Job', rec: ControllerRecord): void {
    const { namespace, name } = rec.metadata;
    const before = this.#controllerOwner(kind, namespace, name);
    if (kind === 'Job') this.#jobs.set(namespace, name, rec);
    else this.#replicaSets.set(namespace, name, byConvention(rec) ? rec.templateHash!.length : rec);
    const after = this.#controllerOwner(kind, namespace, name);
    if (before === undefined || before[0] !== after![0] || before[1] !== after![1]) this.#epoch++;
  }

  deleteController(kind: 'ReplicaSet' | 'Job', rec: Keyed): void {
    const { namespace, name } = rec.metadata;
    if ((kind === 'Job' ? this.#jobs : this.#replicaSets).delete(namespace, name)) this.#epoch++;
  }

  /** The owner a known ReplicaSet or Job names ([itself] when it has none), or undefined when it is not known. */
  #controllerOwner(kind: 'ReplicaSet' | 'Job', namespace: string | undefined, name: string): [string, string] | undefined {
    const c = kind === 'Job' ? this.#jobs.get(namespace, name) : this.#replicaSets.get(namespace, name);
    if (c === undefined) return undefined;
    if (typeof c === 'number') return [name.slice(0, name.length - c - 1), 'Deployment'];
    return c.ownerKind !== undefined && c.ownerName !== undefined ? [c.ownerName, c.ownerKind] : [name, kind];
  }

  /**
   * A relist of one kind starts: what it upserts is marked in place (a byte per pod slot, insertion order per
   * namespace in the other stores: tables.ts), and endList removes what it did not, through the same deletes a watch
   * event takes. Nothing per object is collected, so a relist costs no memory beyond steady state (issue 14).
   */
  beginList(kind: ListedKind): void {
    if (kind === 'pods') this.#pods.beginList();
    else this.#store(kind).mark();
  }

  /** The relist of `kind` is complete: removes what it did not upsert. */
  endList(kind: ListedKind): void {
    if (kind === 'pods') return void this.#pods.endList();
    const remove: Record<Exclude<ListedKind, 'pods'>, (k: Keyed) => void> = {
      localPods: (k) => this.deleteLocalPod(k),
      services: (k) => this.deleteService(k),
      nodes: (k) => this.deleteNode(k),
      endpointslices: (k) => this.deleteEndpointSlice(k),
      replicasets: (k) => this.deleteController('ReplicaSet', k),
      jobs: (k) => this.deleteController('Job', k),
    };
    this.#store(kind).sweep((namespace, name) => remove[kind]({ metadata: { namespace, name } }));
  }

  #store(kind: Exclude<ListedKind, 'pods'>): Pick<ByName<unknown>, 'mark' | 'sweep'> {
    switch (kind) {
      case 'localPods': return this.#localPods;
      case 'services': return this.#services;
      case 'nodes': return this.#nodes;
      case 'endpointslices': return this.#slices;
      case 'replicasets': return this.#replicaSets;
      case 'jobs': return this.#jobs;
    }
  }

  // ---- lookups (hot path) ----

  /** The top-level workload of a pod: ReplicaSet -> Deployment and Job -> CronJob through the watched controllers;
   * by naming convention only while a controller is unknown (not listed yet, or forbidden). */
  ownerOf(pod: PodOwnerFields): [name: string, type: string] {
    const { ownerKind: kind, ownerName: name } = pod;
    if (kind === undefined || name === undefined || kind === 'Node') return [pod.metadata.name, 'Pod']; // bare or static pod
    if (kind === 'ReplicaSet' || kind === 'Job') {
      const known = this.#controllerOwner(kind, pod.metadata.namespace, name);
      if (known !== undefined) return known;
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

  /** A pod on this node (or any PodRecord): its identity, cached on the record until the epoch moves. */
  podIdentity(pod: PodRecord): PeerIdentity {
    if (pod.identity !== undefined && pod.identityEpoch === this.#epoch) return pod.identity;
    pod.identity = this.#buildPodIdentity(pod, pod.ips);
    pod.identityEpoch = this.#epoch;
    pod.containerIdentities = undefined;
    return pod.identity;
  }

  /** A cluster-wide pod by its slot, cached in the table until the epoch moves. */
  #slotIdentity(slot: number): PeerIdentity {
    const hit = this.#pods.cachedIdentity(slot, this.#epoch);
    if (hit !== undefined) return hit;
    const id = this.#buildPodIdentity(this.#pods.fields(slot), this.#pods.ips(slot));
    this.#pods.cacheIdentity(slot, this.#epoch, id);
    return id;
  }

  #buildPodIdentity(pod: PodOwnerFields, ips: readonly string[]): PeerIdentity {
    const [ownerName, ownerType] = this.ownerOf(pod);
    let serviceName: string | undefined;
    for (const ip of ips) {
      const slice = this.#endpointIps.get(ip);
      if (slice !== undefined && slice.metadata.namespace === pod.metadata.namespace) {
        serviceName = slice.serviceName;
        break;
      }
    }
    return freezeIdentity({
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
    const slot = this.#pods.byIp.get(ip);
    if (slot !== undefined) return this.#slotIdentity(slot);
    const node = this.#nodes.byIp.get(ip);
    if (node !== undefined) return node.identity;
    const slice = this.#endpointIps.get(ip);
    if (slice !== undefined) return endpointIdentity(slice, ip);
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

  /** Any pod's identity by IP, cluster-wide (source side when NODE_NAME is not known). */
  podIdentityByIp(ip: string): PeerIdentity | undefined {
    const slot = this.#pods.byIp.get(ip);
    return slot === undefined ? undefined : this.#slotIdentity(slot);
  }

  /** This node, as a peer: a connection from a host process outside any pod. */
  thisNode(): PeerIdentity | undefined {
    return this.#thisNode;
  }
}
