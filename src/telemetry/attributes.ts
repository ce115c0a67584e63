// ConnectEvent -> OpenTelemetry attributes. Metric attributes go through a small bounded cache keyed by a cheap
// string so the hot path (record) does not build a fresh object for every event to the same destination.
import type { Attributes } from '@opentelemetry/api';
import type { ConnectEvent, PeerIdentity } from '../event.ts';
import { detached, newSeriesRef, seriesAttributes, type SeriesRef } from './aggregate.ts';

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

/** Cache key of an event with identity. NUL-separated: a NUL inside comm (attacker text) could at worst make two odd
 * names share one cache entry. */
function identityKey(event: ConnectEvent): string {
  return `${event.ipVersion}\u0000${event.daddr}\u0000${event.dport}\u0000${event.comm}\u0000${peerKey(event.src)}\u0000${peerKey(event.dst)}`;
}

function peerKey(peer: PeerIdentity | undefined): string {
  if (peer === undefined) return '';
  return `${peer.namespace ?? ''}\u0001${peer.name ?? ''}\u0001${peer.type ?? ''}\u0001${peer.ownerName ?? ''}\u0001${peer.ownerType ?? ''}`;
}

type Getter = (event: ConnectEvent) => string | number | undefined;

const GETTERS: Record<(typeof METRIC_ATTRIBUTE_KEYS)[number], Getter> = {
  'network.type': (e) => (e.ipVersion === 6 ? 'ipv6' : 'ipv4'),
  'network.transport': () => 'tcp',
  'server.address': (e) => e.daddr,
  'server.port': (e) => e.dport,
  'process.executable.name': (e) => e.comm,
  'k8s.src.namespace': (e) => e.src?.namespace,
  'k8s.src.name': (e) => e.src?.name,
  'k8s.src.type': (e) => e.src?.type,
  'k8s.src.owner.name': (e) => e.src?.ownerName,
  'k8s.src.owner.type': (e) => e.src?.ownerType,
  'k8s.dst.namespace': (e) => e.dst?.namespace,
  'k8s.dst.name': (e) => e.dst?.name,
  'k8s.dst.type': (e) => e.dst?.type,
  'k8s.dst.owner.name': (e) => e.dst?.ownerName,
  'k8s.dst.owner.type': (e) => e.dst?.ownerType,
};

const SEP = '\u0000';
const ABSENT = '\u0001';
const ESCAPED = '\u0002';

function plain(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) <= 2) return false;
  return true;
}

/**
 * The series key of the allow-listed metric attributes of an event, and its inverse. The key is short (it is built
 * and hashed for every event whose destination is not cached): the values in METRIC_ATTRIBUTE_KEYS order, each
 * followed by NUL, \u0001 for an absent value, and a value holding a character below \u0003 as \u0002 + its JSON. Equal
 * attribute sets give equal keys, different ones different keys, and decode gives the attributes back with their
 * keys in the order allMetricAttributes inserts them.
 */
export function seriesKeyCodec(allowList: readonly string[]): { keyOf: (event: ConnectEvent) => string; decode: (key: string) => Attributes } {
  const keys = METRIC_ATTRIBUTE_KEYS.filter((k) => allowList.includes(k));
  const numeric = keys.map((k) => k === 'server.port');
  const has = (k: string): boolean => allowList.includes(k);
  const [type, transport, address, port, exe] = METRIC_ATTRIBUTE_KEYS.slice(0, 5).map(has);
  const k8sGetters = keys.filter((k) => k.startsWith('k8s.')).map((k) => GETTERS[k]);
  // every allowed k8s.* value absent: the common event without identity
  const noIdentity = k8sGetters.map(() => ABSENT + SEP).join('');
  const text = (v: string): string => (plain(v) ? v : ESCAPED + JSON.stringify(v));
  // each allowed value followed by SEP, in METRIC_ATTRIBUTE_KEYS order; no per-field calls for the plain event
  const keyOf = (event: ConnectEvent): string => {
    let key = '';
    if (type) key += event.ipVersion === 6 ? 'ipv6\u0000' : 'ipv4\u0000';
    if (transport) key += 'tcp\u0000';
    if (address) key += text(event.daddr) + SEP;
    if (port) key += event.dport + SEP;
    if (exe) key += text(event.comm) + SEP;
    if (event.src === undefined && event.dst === undefined) return key + noIdentity;
    for (let i = 0; i < k8sGetters.length; i++) {
      const v = k8sGetters[i]!(event) as string | undefined;
      key += (v === undefined ? ABSENT : text(v)) + SEP;
    }
    return key;
  };
  const decode = (key: string): Attributes => {
    const parts = key.split(SEP);
    const attrs: Record<string, string | number> = {};
    for (let i = 0; i < keys.length; i++) {
      const part = parts[i]!;
      if (part === ABSENT) continue;
      attrs[keys[i]!] = numeric[i] ? Number(part) : part.charCodeAt(0) === 2 ? (JSON.parse(part.slice(1)) as string) : detached(part);
    }
    return attrs;
  };
  return { keyOf, decode };
}

/** One cached destination of an event without identity: daddr -> (dport, comm) chain. */
interface PlainEntry {
  readonly dport: number;
  readonly comm: string;
  readonly ref: SeriesRef;
  readonly next: PlainEntry | undefined;
}

/**
 * Allow-listed metric attributes per event, cached so the hot path neither builds an object nor a key per event.
 * Events without Kubernetes identity (the common case) are looked up by daddr, then (dport, comm) in a short chain,
 * which hashes the event's own string instead of concatenating a key; events with identity use a joined string key.
 * The cache holds at most maxEntries entries and is cleared when full: with more distinct destinations than that it
 * still works, only slower (the cardinality limit bounds the exported series either way). Each entry is a SeriesRef:
 * the canonical key of the attribute set (destinations that differ only in a key the allow list drops share it),
 * the attributes (parsed from the key when first needed), and the series slot each pre-aggregator gave it. Nothing
 * cached holds a string sliced from a line (see seriesAttributes; the chain keys are compared, and a daddr key is
 * copied), so the cache never keeps a read chunk alive.
 */
export class MetricAttributeCache {
  readonly #keyOf: (event: ConnectEvent) => string;
  readonly #decode: (key: string) => Attributes;
  readonly #maxEntries: number;
  #byDaddr = new Map<string, PlainEntry>();
  #byKey = new Map<string, SeriesRef>();
  #size = 0;

  constructor(allowList: readonly string[], maxEntries = 4096) {
    ({ keyOf: this.#keyOf, decode: this.#decode } = seriesKeyCodec(allowList));
    this.#maxEntries = Math.max(1, maxEntries);
  }

  get size(): number {
    return this.#size;
  }

  /** The allow-listed attributes of the event (the same object for every event of one cached destination). */
  get(event: ConnectEvent): Attributes {
    return seriesAttributes(this.ref(event));
  }

  /** The cached ref of the event's destination, or a new one, cached. */
  ref(event: ConnectEvent): SeriesRef {
    const hit = this.lookup(event);
    if (hit !== undefined) return hit;
    const ref = this.create(event);
    this.insert(event, ref);
    return ref;
  }

  /** The cached ref of the event's destination, if any. */
  lookup(event: ConnectEvent): SeriesRef | undefined {
    if (event.src === undefined && event.dst === undefined) {
      for (let e = this.#byDaddr.get(event.daddr); e !== undefined; e = e.next) if (e.dport === event.dport && e.comm === event.comm) return e.ref;
      return undefined;
    }
    return this.#byKey.get(identityKey(event));
  }

  /** The series key of the event's attributes (see seriesKeyCodec). */
  keyOf(event: ConnectEvent): string {
    return this.#keyOf(event);
  }

  /** A new ref for the event's attributes (key: keyOf(event), if already computed), not cached (see insert). */
  create(event: ConnectEvent, key = this.#keyOf(event)): SeriesRef {
    return newSeriesRef(key, this.#decode);
  }

  /** Caches ref (from create) for the event's destination. */
  insert(event: ConnectEvent, ref: SeriesRef): void {
    ref.key = detached(ref.key);
    const cleared = this.#makeRoom();
    if (event.src === undefined && event.dst === undefined) {
      const head = cleared ? undefined : this.#byDaddr.get(event.daddr);
      // Map.set keeps the key it already has: only a new daddr key is stored (copied)
      this.#byDaddr.set(head === undefined ? detached(event.daddr) : event.daddr, { dport: event.dport, comm: detached(event.comm), ref, next: head });
    } else {
      this.#byKey.set(detached(identityKey(event)), ref);
    }
    this.#size++;
  }

  /** Clears the cache when full; true when it did. */
  #makeRoom(): boolean {
    if (this.#size < this.#maxEntries) return false;
    this.#byDaddr = new Map();
    this.#byKey = new Map();
    this.#size = 0;
    return true;
  }
}
