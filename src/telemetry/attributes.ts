// ConnectEvent -> OpenTelemetry attributes. Metric attributes go through a small bounded cache keyed by a cheap
// string so the hot path (record) does not build a fresh object for every event to the same destination.
import type { Attributes } from '@opentelemetry/api';
import type { ConnectEvent, PeerIdentity } from '../event.ts';

/** Every metric attribute key connlat can record (the allow list picks from these). */
export const METRIC_ATTRIBUTE_KEYS = [
  'network.type',
  'network.transport',
  'server.address',
  'server.port',
  'process.executable.name',
  'k8s.src.namespace',
  'k8s.src.name',
  'k8s.src.type',
  'k8s.src.owner.name',
  'k8s.src.owner.type',
  'k8s.dst.namespace',
  'k8s.dst.name',
  'k8s.dst.type',
  'k8s.dst.owner.name',
  'k8s.dst.owner.type',
] as const;

function addPeer(out: Record<string, string>, side: 'src' | 'dst', peer: PeerIdentity | undefined): void {
  if (peer === undefined) return;
  if (peer.namespace !== undefined) out[`k8s.${side}.namespace`] = peer.namespace;
  if (peer.name !== undefined) out[`k8s.${side}.name`] = peer.name;
  if (peer.type !== undefined) out[`k8s.${side}.type`] = peer.type;
  if (peer.ownerName !== undefined) out[`k8s.${side}.owner.name`] = peer.ownerName;
  if (peer.ownerType !== undefined) out[`k8s.${side}.owner.type`] = peer.ownerType;
}

/** All metric attributes of an event, not filtered by any allow list (logs carry all of them). */
export function allMetricAttributes(event: ConnectEvent): Record<string, string | number> {
  const out: Record<string, string | number> = {
    'network.type': event.ipVersion === 6 ? 'ipv6' : 'ipv4',
    'network.transport': 'tcp',
    'server.address': event.daddr,
    'server.port': event.dport,
    'process.executable.name': event.comm,
  };
  addPeer(out as Record<string, string>, 'src', event.src);
  addPeer(out as Record<string, string>, 'dst', event.dst);
  return out;
}

function addPeerDetail(out: Record<string, string>, side: 'src' | 'dst', peer: PeerIdentity | undefined): void {
  if (peer === undefined) return;
  if (peer.podName !== undefined) out[`k8s.${side}.pod.name`] = peer.podName;
  if (peer.podUid !== undefined) out[`k8s.${side}.pod.uid`] = peer.podUid;
  if (peer.containerName !== undefined) out[`k8s.${side}.container.name`] = peer.containerName;
  if (peer.containerId !== undefined) out[`k8s.${side}.container.id`] = peer.containerId;
  if (peer.serviceName !== undefined) out[`k8s.${side}.service.name`] = peer.serviceName;
  if (peer.nodeName !== undefined) out[`k8s.${side}.node.name`] = peer.nodeName;
}

/** Attributes of a slow-connection log record: all metric attributes plus pid, client side and full identity. */
export function logAttributes(event: ConnectEvent): Attributes {
  const out: Record<string, string | number> = allMetricAttributes(event);
  out['process.pid'] = event.pid;
  out['client.address'] = event.saddr;
  if (event.sport !== undefined) out['client.port'] = event.sport;
  addPeerDetail(out as Record<string, string>, 'src', event.src);
  addPeerDetail(out as Record<string, string>, 'dst', event.dst);
  return out;
}

function peerKey(peer: PeerIdentity | undefined): string {
  if (peer === undefined) return '';
  return `${peer.namespace ?? ''}\u0001${peer.name ?? ''}\u0001${peer.type ?? ''}\u0001${peer.ownerName ?? ''}\u0001${peer.ownerType ?? ''}`;
}

/**
 * Allow-listed metric attributes per event, cached so the hot path does not build an object per event. Events
 * without Kubernetes identity (the common case) are looked up by daddr -> dport -> comm in nested Maps, which hashes
 * the event's own strings instead of concatenating a key; events with identity use a joined string key. The cache
 * holds at most maxEntries attribute objects and is cleared when full: with more distinct destinations than that it
 * still works, only slower (the SDK's cardinality limit bounds the exported series either way).
 */
export class MetricAttributeCache {
  readonly #allow: ReadonlySet<string>;
  readonly #maxEntries: number;
  #byDaddr = new Map<string, Map<number, Map<string, Attributes>>>();
  #byKey = new Map<string, Attributes>();
  #size = 0;

  constructor(allowList: readonly string[], maxEntries = 4096) {
    this.#allow = new Set(allowList);
    this.#maxEntries = Math.max(1, maxEntries);
  }

  get size(): number {
    return this.#size;
  }

  get(event: ConnectEvent): Attributes {
    if (event.src === undefined && event.dst === undefined) {
      const byPort = this.#byDaddr.get(event.daddr);
      const byComm = byPort?.get(event.dport);
      const hit = byComm?.get(event.comm);
      if (hit !== undefined) return hit;
      const attrs = this.#build(event);
      this.#makeRoom();
      let ports = this.#byDaddr.get(event.daddr);
      if (ports === undefined) this.#byDaddr.set(event.daddr, (ports = new Map()));
      let comms = ports.get(event.dport);
      if (comms === undefined) ports.set(event.dport, (comms = new Map()));
      comms.set(event.comm, attrs);
      this.#size++;
      return attrs;
    }
    // NUL-separated: a NUL inside comm (attacker text) could at worst make two odd names share one cache entry.
    const key = `${event.ipVersion}\u0000${event.daddr}\u0000${event.dport}\u0000${event.comm}\u0000${peerKey(event.src)}\u0000${peerKey(event.dst)}`;
    const hit = this.#byKey.get(key);
    if (hit !== undefined) return hit;
    const attrs = this.#build(event);
    this.#makeRoom();
    this.#byKey.set(key, attrs);
    this.#size++;
    return attrs;
  }

  #build(event: ConnectEvent): Attributes {
    const all = allMetricAttributes(event);
    const attrs: Record<string, string | number> = {};
    for (const k in all) if (this.#allow.has(k)) attrs[k] = all[k] as string | number;
    return attrs;
  }

  #makeRoom(): void {
    if (this.#size < this.#maxEntries) return;
    this.#byDaddr = new Map();
    this.#byKey = new Map();
    this.#size = 0;
  }
}
