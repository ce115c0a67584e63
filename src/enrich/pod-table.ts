// The cluster's pods (destinations), packed: one slot per pod, its fields in columns instead of an object per pod.
// At 150k pods a PodRecord cost ~310 B of heap of its own (the record, its metadata object, an IP array, a 36-char
// UID string and a boxed creation time; no pointer compression in Node's builds); here a pod is 8 B per string column
// (the strings themselves interned and shared with its EndpointSlice entry), its UID as 16 bytes, its creation time
// as 8 (BENCHMARKS.md, issue 14). Only what a destination's identity and the IP-reuse order read is kept.
import type { PeerIdentity } from '../event.ts';
import type { Keyed, PodRecord } from './compact.ts';
import { ByName, IpTable, sameItems } from './tables.ts';

/** What the owner and identity of a pod are made from (PodRecord has them; a slot is read into one). */
export interface PodOwnerFields {
  metadata: { namespace: string | undefined; name: string; uid: string };
  nodeName: string;
  ownerKind: string | undefined;
  ownerName: string | undefined;
  templateHash: string | undefined;
  createdMs: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Byte offsets in the 36-char UUID text where each of its 16 bytes' two hex digits start. */
const UUID_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

export class PodTable {
  readonly #byName = new ByName<number>();
  readonly byIp = new IpTable<number>((a, b) => this.#order(a, b));
  readonly #free: number[] = [];
  #slots = 0;
  // string columns: values are interned (compact.ts) or shared with EndpointSlices, so a slot holds pointers only
  readonly #namespace: Array<string | undefined> = [];
  readonly #name: string[] = [];
  readonly #node: string[] = [];
  readonly #ownerKind: Array<string | undefined> = [];
  readonly #ownerName: Array<string | undefined> = [];
  readonly #hash: Array<string | undefined> = [];
  /** one IP as the string itself (almost every pod), several (dual stack) as an array */
  readonly #ips: Array<string | string[]> = [];
  #uid = new Uint8Array(0);
  /** a UID that is not a lower-case UUID (never from a real API server; kept exact anyway) */
  readonly #uidText = new Map<number, string>();
  #created = new Float64Array(0);
  #running = new Uint8Array(0);
  /** 1 for a slot upserted since beginList(): after a relist, a stored pod still 0 is gone (endList) */
  #listed = new Uint8Array(0);
  /** identities built for slots looked up as destinations, with the index epoch they were built at */
  readonly #identity = new Map<number, [PeerIdentity, number]>();

  get size(): number {
    return this.#byName.size;
  }

  /** Replaces the pod of that namespace and name; a pod that holds no IP of its own is only removed. */
  upsert(rec: PodRecord, keep: boolean): void {
    const { namespace, name, uid } = rec.metadata;
    const stored = keep ? this.#byName.get(namespace, name) : undefined;
    // Unchanged (most of a relist, every status-only update): the slot stays as it is, and `rec` with its strings dies
    // young instead of replacing what the old generation holds (a relist at 150k pods, BENCHMARKS.md).
    if (stored !== undefined && this.#same(stored, rec)) return void (this.#listed[stored] = 1);
    this.delete(rec);
    if (!keep) return;
    const slot = this.#alloc();
    this.#listed[slot] = 1;
    this.#namespace[slot] = namespace;
    this.#name[slot] = name;
    this.#node[slot] = rec.nodeName;
    this.#ownerKind[slot] = rec.ownerKind;
    this.#ownerName[slot] = rec.ownerName;
    this.#hash[slot] = rec.templateHash;
    this.#ips[slot] = rec.ips.length === 1 ? rec.ips[0]! : rec.ips;
    if (UUID.test(uid)) for (let i = 0; i < 16; i++) this.#uid[slot * 16 + i] = parseInt(uid.slice(UUID_AT[i]!, UUID_AT[i]! + 2), 16);
    else this.#uidText.set(slot, uid);
    this.#created[slot] = rec.createdMs;
    this.#running[slot] = rec.phase === 'Running' ? 1 : 0;
    this.#byName.set(namespace, name, slot);
    for (const ip of rec.ips) this.byIp.add(ip, slot);
  }

  delete(rec: Keyed): void {
    const { namespace, name } = rec.metadata;
    const slot = this.#byName.get(namespace, name);
    if (slot === undefined) return;
    this.#byName.delete(namespace, name);
    for (const ip of this.ips(slot)) this.byIp.remove(ip, slot);
    this.#namespace[slot] = this.#ownerKind[slot] = this.#ownerName[slot] = this.#hash[slot] = undefined;
    this.#name[slot] = this.#node[slot] = this.#ips[slot] = '';
    this.#uidText.delete(slot);
    this.#identity.delete(slot);
    this.#free.push(slot);
  }

  ips(slot: number): readonly string[] {
    const v = this.#ips[slot]!;
    return typeof v === 'string' ? [v] : v;
  }

  name(slot: number): string {
    return this.#name[slot]!;
  }

  uid(slot: number): string {
    const text = this.#uidText.get(slot);
    if (text !== undefined) return text;
    const b = this.#uid;
    const o = slot * 16;
    const hex = (from: number, to: number) => {
      let s = '';
      for (let i = from; i < to; i++) s += HEX[b[o + i]!];
      return s;
    };
    return `${hex(0, 4)}-${hex(4, 6)}-${hex(6, 8)}-${hex(8, 10)}-${hex(10, 16)}`;
  }

  /** The slot's fields as one object, to build its identity from (only on a cache miss). */
  fields(slot: number): PodOwnerFields {
    return {
      metadata: { namespace: this.#namespace[slot], name: this.#name[slot]!, uid: this.uid(slot) },
      nodeName: this.#node[slot]!,
      ownerKind: this.#ownerKind[slot],
      ownerName: this.#ownerName[slot],
      templateHash: this.#hash[slot],
      createdMs: this.#created[slot]!,
    };
  }

  cachedIdentity(slot: number, epoch: number): PeerIdentity | undefined {
    const hit = this.#identity.get(slot);
    return hit !== undefined && hit[1] === epoch ? hit[0] : undefined;
  }

  cacheIdentity(slot: number, epoch: number, id: PeerIdentity): void {
    this.#identity.set(slot, [id, epoch]);
  }

  /** A relist starts: every stored pod counts as gone until upserted again. */
  beginList(): void {
    this.#listed.fill(0);
  }

  /** A relist ended: removes the pods it did not upsert, in place (no key per pod); returns how many. */
  endList(): number {
    let removed = 0;
    for (let slot = 0; slot < this.#slots; slot++) {
      if (this.#listed[slot] === 1 || this.#name[slot] === '') continue; // listed, or a free slot
      this.delete({ metadata: { namespace: this.#namespace[slot], name: this.#name[slot]! } });
      removed++;
    }
    return removed;
  }

  #same(slot: number, rec: PodRecord): boolean {
    const ips = this.#ips[slot]!;
    const sameIps = typeof ips === 'string' ? rec.ips.length === 1 && rec.ips[0] === ips : sameItems(ips, rec.ips);
    return sameIps && this.#node[slot] === rec.nodeName && this.#ownerKind[slot] === rec.ownerKind && this.#ownerName[slot] === rec.ownerName &&
      this.#hash[slot] === rec.templateHash && this.#created[slot] === rec.createdMs && this.#running[slot] === (rec.phase === 'Running' ? 1 : 0) &&
      this.uid(slot) === rec.metadata.uid;
  }

  /** Namespace and name of every stored pod. */
  *keys(): Iterable<Keyed> {
    for (const [namespace, inner] of this.#byName.entries()) for (const name of inner.keys()) yield { metadata: { namespace: namespace || undefined, name } };
  }

  /** On IP reuse the newest running pod wins: Running first, then newest, then by UID for a stable order (podOrder). */
  #order(a: number, b: number): number {
    return this.#running[b]! - this.#running[a]! || this.#created[b]! - this.#created[a]! || (this.uid(a) < this.uid(b) ? -1 : 1);
  }

  #alloc(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    const slot = this.#slots++;
    if (slot >= this.#created.length) {
      const cap = Math.max(1024, Math.ceil(this.#created.length * 1.5));
      const grow = <A extends Uint8Array | Float64Array>(old: A, size: number): A => {
        const next = new (old.constructor as new (n: number) => A)(size);
        next.set(old);
        return next;
      };
      this.#uid = grow(this.#uid, cap * 16);
      this.#created = grow(this.#created, cap);
      this.#running = grow(this.#running, cap);
      this.#listed = grow(this.#listed, cap);
    }
    // grow the string columns by one, keeping them packed arrays (no holes)
    this.#namespace.push(undefined);
    this.#name.push('');
    this.#node.push('');
    this.#ownerKind.push(undefined);
    this.#ownerName.push(undefined);
    this.#hash.push(undefined);
    this.#ips.push('');
    return slot;
  }
}
