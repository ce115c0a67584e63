// The two maps the index is made of: IP -> record(s), with an order for IPs several records claim, and namespace ->
// name -> value. Values may be records or slots of a packed table (pod-table.ts).

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

