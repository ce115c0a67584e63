// What an event's metric attributes resolve to, cached per destination by the attribute cache (attributes.ts), and
// the series slot each metric storage gave it (storage.ts): a record is then a few typed-array writes.
import type { Attributes } from '@opentelemetry/api';

export interface SeriesRef {
  /** Canonical text of the attribute set: equal attribute sets have equal keys, different ones different keys. */
  key: string;
  /** key -> the attributes */
  readonly decode: (key: string) => Attributes;
  /** The attributes, decoded from key when first needed (shared, never modified). */
  attrs: Attributes | undefined;
  /** Per metric storage (by its index): the slot it gave this attribute set, valid while gens[index] is its generation. */
  readonly slots: number[];
  readonly gens: number[];
}

export function newSeriesRef(key: string, decode: (key: string) => Attributes): SeriesRef {
  // two entries to start with (the storages of tcp.connect.duration and tcp.connect.failures); more grow on demand
  return { key, decode, attrs: undefined, slots: [0, 0], gens: [0, 0] };
}

/** The attributes of a ref (decoded strings share no memory with the line they came from). */
export function seriesAttributes(ref: SeriesRef): Attributes {
  return (ref.attrs ??= ref.decode(ref.key));
}

/**
 * A copy of s that shares no memory with the string it was cut from. Strings the parser slices out of a line are
 * V8 sliced strings (13 chars and more) that keep the whole 64 KiB read chunk alive; a string held for longer than
 * the line (a cache or series key) is copied first.
 */
export function detached(s: string): string {
  return s.length < 13 ? s : (' ' + s).slice(1);
}
