// The maps the index is made of: IP -> record(s), with an order for IPs several records claim, and namespace ->
// name -> value (values may be records or slots of a packed table, pod-table.ts); and records kept by both.
import type { Keyed } from './compact.ts';


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

/** Same items in the same order: what says a relisted record changed nothing the index reads. */
export function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Namespace -> name -> value: two levels of Map, so no "namespace/name" key string is built per object. */
export class ByName<V> {
  readonly #byNs = new Map<string, Map<string, V>>();
  /** while a relist marks (mark() .. sweep()): namespace -> names set since */
  #marked: Map<string, number> | undefined;
  size = 0;

  get(namespace: string | undefined, name: string): V | undefined {
    return this.#byNs.get(namespace ?? '')?.get(name);
  }

  set(namespace: string | undefined, name: string, value: V): void {
    const ns = namespace ?? '';
    let inner = this.#byNs.get(ns);
    if (inner === undefined) this.#byNs.set(ns, (inner = new Map()));
    const before = inner.size;
    if (this.#marked !== undefined) {
      inner.delete(name); // to the end of the insertion order: after every name not set since mark()
      this.#marked.set(ns, (this.#marked.get(ns) ?? 0) + 1);
    }
    inner.set(name, value);
    this.size += inner.size - before;
  }

  /**
   * Starts a relist's mark: from now each set() moves its name to the end of its namespace's insertion order (a Map
   * keeps that order) and counts it, so the names not set again are the first (size - count) of each namespace. The
   * mark costs a number per namespace, not an entry per object. A relist sets each name once (a list is one snapshot).
   */
  mark(): void {
    this.#marked = new Map();
  }

  /** Ends the mark: calls `remove` for every name not set since mark() (removing it is the caller's part). */
  sweep(remove: (namespace: string | undefined, name: string) => void): void {
    const marked = this.#marked;
    this.#marked = undefined;
    if (marked === undefined) return;
    const gone: Array<[string, string]> = []; // collected first: `remove` changes the maps being read
    for (const [ns, inner] of this.#byNs) {
      let stale = inner.size - (marked.get(ns) ?? 0);
      for (const name of inner.keys()) {
        if (stale-- <= 0) break;
        gone.push([ns, name]);
      }
    }
    for (const [ns, name] of gone) remove(ns || undefined, name);
  }

  delete(namespace: string | undefined, name: string): boolean {
    const ns = namespace ?? '';
    const inner = this.#byNs.get(ns);
    if (inner === undefined || !inner.delete(name)) return false;
    if (inner.size === 0) this.#byNs.delete(ns);
    this.size--;
    return true;
  }

  *values(): IterableIterator<V> {
    for (const inner of this.#byNs.values()) yield* inner.values();
  }

  entries(): IterableIterator<[string, Map<string, V>]> {
    return this.#byNs.entries();
  }
}

/**
 * Records by namespace and name, and by IP for those that
 * `indexIps` says hold their IPs. A record `keep` rejects is not stored at all (and replaces, so removes, the old).
 */
export class IndexedRecords<T extends { metadata: { namespace: string | undefined; name: string }; ips: string[] }> {
  readonly #byName = new ByName<T>();
  readonly byIp: IpTable<T>;
  readonly #keep: (rec: T) => boolean;
  readonly #indexIps: (rec: T) => boolean;
  readonly #same: ((stored: T, rec: T) => boolean) | undefined;

  /** `same`: `rec` changes nothing the index reads of the stored record, which then stays (and counts as listed). */
  constructor(compare: (a: T, b: T) => number, opts: { keep?: (rec: T) => boolean; indexIps?: (rec: T) => boolean; same?: (stored: T, rec: T) => boolean } = {}) {
    this.byIp = new IpTable(compare);
    this.#keep = opts.keep ?? (() => true);
    this.#indexIps = opts.indexIps ?? (() => true);
    this.#same = opts.same;
  }

  get size(): number {
    return this.#byName.size;
  }

  values(): IterableIterator<T> {
    return this.#byName.values();
  }

  upsert(rec: T): void {
    const { namespace, name } = rec.metadata;
    const stored = this.#same !== undefined ? this.#byName.get(namespace, name) : undefined;
    // Unchanged (a relist, mostly): the stored record stays and `rec` dies young (see PodTable.upsert).
    if (stored !== undefined && this.#same!(stored, rec)) return void this.#byName.set(namespace, name, stored);
    this.delete(rec);
    if (!this.#keep(rec)) return;
    this.#byName.set(rec.metadata.namespace, rec.metadata.name, rec);
    if (this.#indexIps(rec)) for (const ip of rec.ips) this.byIp.add(ip, rec);
  }

  /** A relist starts marking (ByName.mark); sweep() then names what it did not store again. */
  mark(): void {
    this.#byName.mark();
  }

  sweep(remove: (namespace: string | undefined, name: string) => void): void {
    this.#byName.sweep(remove);
  }

  /** Removes the stored version of `rec` (same namespace and name) and returns it. */
  delete(rec: Keyed): T | undefined {
    const { namespace, name } = rec.metadata;
    const old = this.#byName.get(namespace, name);
    if (old === undefined) return undefined;
    this.#byName.delete(namespace, name);
    for (const ip of old.ips) this.byIp.remove(ip, old);
    return old;
  }
}
