// Pure: Kubernetes objects -> the few fields the enricher needs. Every object from a list or a watch goes through
// here before anything keeps it, so the informer caches and the index hold these small records, never whole pods.
// Input may be the client's deserialized classes (lists: dates as Date) or raw watch JSON (dates as strings).
import type { PeerIdentity } from '../event.ts';

/** What the index keys an object by (the watch reads resourceVersion from the raw event, nothing keeps it). */
export interface CompactMeta {
  name: string;
  namespace: string | undefined;
  uid: string;
}

/** What deletes and relists need of an object: the namespace and name a watch keys it by. */
export type Keyed = { metadata: { namespace: string | undefined; name: string } };

export interface ContainerRef {
  /** 64 hex digits, without the "containerd://" scheme */
  id: string;
  name: string;
}

export interface PodRecord {
  metadata: CompactMeta;
  nodeName: string;
  /** status.podIPs (status.podIP when that is all there is) */
  ips: string[];
  hostNetwork: boolean;
  phase: string;
  createdMs: number;
  /** the controller owner reference (kind and name); undefined for a bare pod */
  ownerKind: string | undefined;
  ownerName: string | undefined;
  /** label pod-template-hash: lets ReplicaSet -> Deployment be inferred before ReplicaSets are listed */
  templateHash: string | undefined;
  /** annotation kubernetes.io/config.mirror: a static pod's config hash, the UID its cgroup is named after */
  mirrorHash: string | undefined;
  /** only kept for pods on this node (source side); undefined otherwise */
  containers: ContainerRef[] | undefined;
  /** identity cache, filled lazily by the index (see ClusterIndex) */
  identity: PeerIdentity | undefined;
  identityEpoch: number;
  containerIdentities: Map<string, PeerIdentity> | undefined;
}

export interface ServiceRecord {
  metadata: CompactMeta;
  /** ClusterIPs (both families), spec.externalIPs and load-balancer ingress IPs */
  ips: string[];
  identity: PeerIdentity;
}

export interface NodeRecord {
  metadata: CompactMeta;
  /** InternalIP and ExternalIP addresses */
  ips: string[];
  identity: PeerIdentity;
}

export interface EndpointSliceRecord {
  metadata: CompactMeta;
  /** label kubernetes.io/service-name */
  serviceName: string | undefined;
  /** endpoint addresses, and at the same position the targetRef's pod name (undefined when not a pod) */
  ips: string[];
  podNames: Array<string | undefined>;
  /** identities of addresses looked up as endpoints (rare: a pod not in the index, a manual endpoint) */
  identities: Map<string, PeerIdentity> | undefined;
}

/** A ReplicaSet or Job, reduced to its controller (Deployment, CronJob, ...). */
export interface ControllerRecord {
  metadata: CompactMeta;
  ownerKind: string | undefined;
  ownerName: string | undefined;
  /** label pod-template-hash (ReplicaSets a Deployment made carry it, like their pods) */
  templateHash: string | undefined;
}

// Loose shapes of what arrives: only the fields read, all optional, because watch JSON is untyped.
interface OwnerReferenceLike {
  kind?: string;
  name?: string;
  controller?: boolean;
}
interface MetaLike {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: Date | string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReferenceLike[];
}
interface ObjectLike {
  metadata?: MetaLike;
}

/**
 * Strings interned so 50k pods of one namespace share one namespace string (watch JSON makes fresh copies). The
 * table is bounded and, once full, starts again empty: a string then stays shared by those that already hold it.
 */
class InternTable {
  #map = new Map<string, string>();
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  get(s: string): string {
    const hit = this.#map.get(s);
    if (hit !== undefined) return hit;
    if (this.#map.size >= this.#max) this.#map = new Map();
    this.#map.set(s, s);
    return s;
  }
}
const small = new InternTable(100_000);
/** Owner (ReplicaSet, Job) names and template hashes: shared by a workload's replicas. */
const owners = new InternTable(50_000);

export function intern(s: string): string;
export function intern(s: string | undefined): string | undefined;
export function intern(s: string | undefined): string | undefined {
  return s === undefined ? undefined : small.get(s);
}
const internOwner = (s: string | undefined) => (s === undefined ? undefined : owners.get(s));

function meta(obj: ObjectLike): CompactMeta {
  const m = obj.metadata ?? {};
  return { name: m.name ?? '', namespace: intern(m.namespace), uid: m.uid ?? '' };
}

function controllerOf(m: MetaLike | undefined): OwnerReferenceLike | undefined {
  const refs = m?.ownerReferences;
  if (!Array.isArray(refs) || refs.length === 0) return undefined;
  return refs.find((r) => r.controller === true) ?? refs[0];
}

function timeMs(t: Date | string | undefined): number {
  if (t === undefined) return 0;
  const ms = t instanceof Date ? t.getTime() : Date.parse(t);
  return Number.isFinite(ms) ? ms : 0;
}

/** An array grown by push keeps spare capacity (17 slots for one element): kept arrays are copied to their size. */
const exact = <T>(a: T[]): T[] => a.slice();

function uniqueStrings(values: Array<string | undefined>): string[] {
  const out: string[] = [];
  for (const v of values) if (typeof v === 'string' && v !== '' && v !== 'None' && !out.includes(v)) out.push(v);
  return exact(out);
}

/** "containerd://<64 hex>" -> "<64 hex>" */
export function containerIdFromStatus(id: string | undefined): string | undefined {
  if (typeof id !== 'string') return undefined;
  const at = id.indexOf('://');
  const bare = at >= 0 ? id.slice(at + 3) : id;
  return /^[0-9a-f]{64}$/.test(bare) ? bare : undefined;
}

interface ContainerStatusLike {
  name?: string;
  containerID?: string;
}
interface PodLike extends ObjectLike {
  spec?: { nodeName?: string; hostNetwork?: boolean };
  status?: {
    phase?: string;
    podIP?: string;
    podIPs?: Array<{ ip?: string }>;
    containerStatuses?: ContainerStatusLike[];
    initContainerStatuses?: ContainerStatusLike[];
    ephemeralContainerStatuses?: ContainerStatusLike[];
  };
}

export function compactPod(obj: unknown, keepContainers: boolean): PodRecord {
  const pod = obj as PodLike;
  const owner = controllerOf(pod.metadata);
  const status = pod.status ?? {};
  let containers: ContainerRef[] | undefined;
  if (keepContainers) {
    containers = [];
    for (const list of [status.containerStatuses, status.initContainerStatuses, status.ephemeralContainerStatuses]) {
      if (!Array.isArray(list)) continue;
      for (const c of list) {
        const id = containerIdFromStatus(c.containerID);
        if (id !== undefined && typeof c.name === 'string') containers.push({ id, name: c.name });
      }
    }
  }
  return {
    metadata: meta(pod),
    nodeName: intern(pod.spec?.nodeName ?? ''),
    ips: uniqueStrings([...(status.podIPs ?? []).map((p) => p.ip), status.podIP]),
    hostNetwork: pod.spec?.hostNetwork === true,
    phase: intern(status.phase ?? 'Unknown'),
    createdMs: timeMs(pod.metadata?.creationTimestamp),
    ownerKind: intern(owner?.kind),
    ownerName: internOwner(owner?.name),
    templateHash: internOwner(pod.metadata?.labels?.['pod-template-hash']),
    mirrorHash: pod.metadata?.annotations?.['kubernetes.io/config.mirror'],
    containers,
    identity: undefined,
    identityEpoch: -1,
    containerIdentities: undefined,
  };
}

interface ServiceLike extends ObjectLike {
  spec?: { clusterIP?: string; clusterIPs?: string[]; externalIPs?: string[] };
  status?: { loadBalancer?: { ingress?: Array<{ ip?: string }> } };
}

export function compactService(obj: unknown): ServiceRecord {
  const svc = obj as ServiceLike;
  const m = meta(svc);
  const ips = uniqueStrings([
    ...(svc.spec?.clusterIPs ?? []),
    svc.spec?.clusterIP,
    ...(svc.spec?.externalIPs ?? []),
    ...(svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip),
  ]);
  const identity: PeerIdentity = Object.freeze({
    namespace: m.namespace,
    name: m.name,
    type: 'Service',
    ownerName: m.name,
    ownerType: 'Service',
    serviceName: m.name,
  });
  return { metadata: m, ips, identity };
}

interface NodeLike extends ObjectLike {
  status?: { addresses?: Array<{ type?: string; address?: string }> };
}

export function nodeIdentity(name: string): PeerIdentity {
  return Object.freeze({ name, type: 'Node', ownerName: name, ownerType: 'Node', nodeName: name });
}

export function compactNode(obj: unknown): NodeRecord {
  const node = obj as NodeLike;
  const m = meta(node);
  const addresses = node.status?.addresses ?? [];
  const ips = uniqueStrings(addresses.filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address));
  return { metadata: m, ips, identity: nodeIdentity(m.name) };
}

interface EndpointSliceLike extends ObjectLike {
  endpoints?: Array<{ addresses?: string[]; targetRef?: { kind?: string; name?: string } }>;
}

export function compactEndpointSlice(obj: unknown): EndpointSliceRecord {
  const slice = obj as EndpointSliceLike;
  const ips: string[] = [];
  const podNames: Array<string | undefined> = [];
  for (const e of slice.endpoints ?? []) {
    const podName = e.targetRef?.kind === 'Pod' ? e.targetRef.name : undefined;
    for (const ip of e.addresses ?? []) {
      if (typeof ip !== 'string' || ip === '') continue;
      ips.push(ip);
      podNames.push(podName);
    }
  }
  const serviceName = intern(slice.metadata?.labels?.['kubernetes.io/service-name']);
  return { metadata: meta(slice), serviceName, ips: exact(ips), podNames: exact(podNames), identities: undefined };
}

/** ReplicaSet or Job (full object or PartialObjectMetadata): only its controller reference matters. */
export function compactController(obj: unknown): ControllerRecord {
  const o = obj as ObjectLike;
  const owner = controllerOf(o.metadata);
  return { metadata: meta(o), ownerKind: intern(owner?.kind), ownerName: owner?.name, templateHash: o.metadata?.labels?.['pod-template-hash'] };
}
