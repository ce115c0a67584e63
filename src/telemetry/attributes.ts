// ConnectEvent -> OpenTelemetry attributes. Metric attributes go through a small bounded cache keyed by a cheap
// string so the hot path (record) does not build a fresh object for every event to the same destination.
import type { Attributes } from '@opentelemetry/api';
import type { ConnectEvent } from '../event.ts';
import { detached, newSeriesRef, seriesAttributes, type SeriesRef } from './aggregation/series.ts';
import { ATTRIBUTES, METRIC_ATTRIBUTES, type AttributeSpec, type AttributeValue } from './schema.ts';

export { METRIC_ATTRIBUTE_KEYS } from './schema.ts';

const LOG_ATTRIBUTES = ATTRIBUTES;

function hasIdentity(event: ConnectEvent): boolean {
  return event.src !== undefined || event.dst !== undefined;
}

function collect(specs: readonly AttributeSpec[], event: ConnectEvent, out: Record<string, AttributeValue>): Record<string, AttributeValue> {
  const identity = hasIdentity(event);
  for (const a of specs) {
    if (a.identity && !identity) continue;
    const v = a.get(event);
    if (v !== undefined) out[a.key] = v;
  }
  return out;
}

/** All metric attributes of an event, not filtered by any allow list (logs carry all of them). */
export function allMetricAttributes(event: ConnectEvent): Record<string, string | number> {
  return collect(METRIC_ATTRIBUTES, event, {});
}

/** Attributes of a slow-connection log record: all metric attributes plus pid, client side and full identity. */
export function logAttributes(event: ConnectEvent): Attributes {
  return collect(LOG_ATTRIBUTES, event, {});
}

/** The cache-key attributes other than server.address (the cache's map key), and the identity ones among them. */
const CHAIN_KEY = METRIC_ATTRIBUTES.filter((a) => a.cacheKey && !a.identity && a.key !== 'server.address').map((a) => a.get);
const IDENTITY_KEY = METRIC_ATTRIBUTES.filter((a) => a.cacheKey).map((a) => a.get);

/** Cache key of an event with identity: its cache-key values, NUL-separated (a NUL inside comm, attacker text, could
 * at worst make two odd names share one cache entry). */
function identityKey(event: ConnectEvent): string {
  let key = '';
  for (const get of IDENTITY_KEY) key += `${get(event) ?? '\u0001'}\u0000`;
  return key;
}

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
  const allowed = METRIC_ATTRIBUTES.filter((a) => allowList.includes(a.key));
  const keys = allowed.map((a) => a.key);
  const numeric = allowed.map((a) => a.type === 'int');
  const plainGetters = allowed.filter((a) => !a.identity).map((a) => a.get);
  const identityGetters = allowed.filter((a) => a.identity).map((a) => a.get);
  // every allowed identity value absent: the common event without identity
  const noIdentity = identityGetters.map(() => ABSENT + SEP).join('');
  const text = (v: string | number): string => (typeof v === 'number' ? String(v) : plain(v) ? v : ESCAPED + JSON.stringify(v));
  // each allowed value followed by SEP, in schema order; identity values only when the event has some
  const keyOf = (event: ConnectEvent): string => {
    let key = '';
    for (let i = 0; i < plainGetters.length; i++) {
      const v = plainGetters[i]!(event);
      key += (v === undefined ? ABSENT : text(v)) + SEP;
    }
    if (!hasIdentity(event)) return key + noIdentity;
    for (let i = 0; i < identityGetters.length; i++) {
      const v = identityGetters[i]!(event);
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

/** One cached destination of an event without identity: server.address -> chain of the other cache-key values. */
interface PlainEntry {
  // the chain values as fields (one load each on the hot path), at most three (see chainMatches)
  readonly v0: AttributeValue | undefined;
  readonly v1: AttributeValue | undefined;
  readonly v2: AttributeValue | undefined;
  /** beyond three */
  readonly more: readonly (AttributeValue | undefined)[] | undefined;
  readonly ref: SeriesRef;
  readonly next: PlainEntry | undefined;
}

function chainValues(event: ConnectEvent): Pick<PlainEntry, 'v0' | 'v1' | 'v2' | 'more'> {
  // copied: a value sliced from a line would keep its read chunk alive
  const values = CHAIN_KEY.map((get) => {
    const v = get(event);
    return typeof v === 'string' ? detached(v) : v;
  });
  return { v0: values[0], v1: values[1], v2: values[2], more: values.length > 3 ? values : undefined };
}

/**
 * entry's chain values equal the event's (the lookup runs per event). Compiled once from the schema: a direct field
 * comparison (`ev.dport === e.v0 && ...`) for attributes that are an event field as it is, which V8 optimizes as well
 * as hand-written code; a getter call for the others. The field names come from schema.ts, never from input.
 */
const chainMatches = ((): ((entry: PlainEntry, event: ConnectEvent) => boolean) => {
  const chain = METRIC_ATTRIBUTES.filter((a) => a.cacheKey && !a.identity && a.key !== 'server.address');
  if (chain.length > 3) return (e, ev) => CHAIN_KEY.every((get, i) => get(ev) === e.more![i]);
  for (const a of chain) if (a.field !== undefined && !/^[a-z]+$/i.test(a.field)) throw new Error(`schema: field ${a.field} of ${a.key} is not a plain name`);
  const terms = chain.map((a, i) => (a.field !== undefined ? `ev.${a.field} === e.v${i}` : `g[${i}](ev) === e.v${i}`));
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function('g', `return (e, ev) => ${terms.join(' && ') || 'true'};`)(CHAIN_KEY) as (entry: PlainEntry, event: ConnectEvent) => boolean;
})();

/**
 * Allow-listed metric attributes per event, cached so the hot path neither builds an object nor a key per event.
 * Events without Kubernetes identity (the common case) are looked up by server.address, then the other cache-key
 * values (schema.ts: server.port, process.executable.name) in a short chain,
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
    if (!hasIdentity(event)) {
      for (let e = this.#byDaddr.get(event.daddr); e !== undefined; e = e.next) if (chainMatches(e, event)) return e.ref;
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
    if (!hasIdentity(event)) {
      const head = cleared ? undefined : this.#byDaddr.get(event.daddr);
      // Map.set keeps the key it already has: only a new daddr key is stored (copied)
      this.#byDaddr.set(head === undefined ? detached(event.daddr) : event.daddr, { ...chainValues(event), ref, next: head });
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
