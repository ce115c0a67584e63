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
  size = 0;

  get(namespace: string | undefined, name: string): V | undefined {
    return this.#byNs.get(namespace ?? '')?.get(name);
  }

  set(namespace: string | undefined, name: string, value: V): void {
    const ns = namespace ?? '';
    let inner = this.#byNs.get(ns);
    if (inner === undefined) this.#byNs.set(ns, (inner = new Map()));
    const before = inner.size;
    inner.set(name, value);
    this.size += inner.size - before;
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

