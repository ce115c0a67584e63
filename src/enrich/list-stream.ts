// Pure: a Kubernetes list response ({"metadata":{...},"items":[{...},...]}) split as its bytes arrive, one item at a
// time. Each item is parsed on its own (a few KiB, in the young generation) instead of the whole page (~1.5 MB of
// pods: a flat string and an object tree big enough to land in the old generation, which set the agent's peak RSS
// during a sync at 150k pods; BENCHMARKS.md, issue 14). Everything outside "items" is kept and parsed at the end
// (with "items" as []), so metadata.continue and resourceVersion are read as before. The bytes that structure JSON
// (quotes, backslash, brackets) never occur inside a UTF-8 multi-byte sequence, so scanning bytes is exact.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
/** An item larger than this is refused: no pod, Service or EndpointSlice the API server stores comes near it. */
export const MAX_ITEM_BYTES = 16 * 1024 * 1024;

export class ListSplitter {
  readonly #onItem: (item: unknown) => void;
  #depth = 0;
  #inString = false;
  /** the previous chunk ended inside a string on a backslash: the next byte is escaped */
  #escaped = false;
  /** the last string closed at depth 1 (the key of the value that follows), while collecting it */
  #key = '';
  #keyParts: string | undefined;
  /** depth of the "items" array's elements while inside it, else -1 */
  #itemsDepth = -1;
  #item: Buffer[] = [];
  #itemBytes = 0;
  #rest: Buffer[] = [];
  items = 0;

  constructor(onItem: (item: unknown) => void) {
    this.#onItem = onItem;
  }

  push(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    let itemStart = this.#item.length > 0 ? 0 : -1;
    let restStart = this.#itemsDepth < 0 ? 0 : -1;
    let keyStart = this.#keyParts !== undefined ? 0 : -1;
    let nextBackslash = -1;
    if (this.#escaped) (this.#escaped = false), (i = 1);
    while (i < n) {
      if (this.#inString) {
        const q = chunk.indexOf(QUOTE, i);
        if (nextBackslash < i) nextBackslash = chunk.indexOf(BACKSLASH, i);
        if (nextBackslash < 0) nextBackslash = n;
        if (nextBackslash < (q < 0 ? n : q)) {
          i = nextBackslash + 2;
          if (i > n) (this.#escaped = true), (i = n);
          continue;
        }
        if (q < 0) {
          i = n;
          break;
        }
        this.#inString = false;
        i = q + 1;
        if (keyStart >= 0) {
          this.#key = this.#keyParts + chunk.toString('utf8', keyStart, q);
          this.#keyParts = undefined;
          keyStart = -1;
        }
        continue;
      }
      const b = chunk[i]!;
      if (b === QUOTE) {
        this.#inString = true;
        if (this.#depth === 1) (this.#keyParts = ''), (keyStart = i + 1);
      } else if (b === OPEN_OBJ || b === OPEN_ARR) {
        this.#depth++;
        if (this.#depth === this.#itemsDepth && b === OPEN_OBJ) itemStart = i;
        else if (this.#depth === 2 && b === OPEN_ARR && this.#key === 'items' && this.#itemsDepth < 0) {
          this.#keepRest(chunk.subarray(restStart, i + 1));
          restStart = -1;
          this.#itemsDepth = 3;
        }
      } else if (b === CLOSE_OBJ || b === CLOSE_ARR) {
        if (this.#depth === this.#itemsDepth && itemStart >= 0) {
          this.#item.push(chunk.subarray(itemStart, i + 1));
          itemStart = -1;
          this.#emit();
        } else if (this.#depth === 2 && this.#itemsDepth > 0) {
          this.#itemsDepth = -2; // the items array is done; a second "items" key is not split again
          restStart = i;
        }
        this.#depth--;
        if (this.#depth < 0) throw new Error('list response: unbalanced JSON');
      }
      i++;
    }
    if (itemStart >= 0) this.#addItemBytes(chunk.subarray(itemStart));
    if (restStart >= 0) this.#keepRest(chunk.subarray(restStart));
    if (keyStart >= 0) this.#keyParts += chunk.toString('utf8', keyStart);
  }

  /** The response without its items (`"items":[]`), parsed; throws when the JSON ended early. */
  end(): unknown {
    if (this.#depth !== 0 || this.#inString) throw new Error('list response: JSON ended early');
    return JSON.parse(Buffer.concat(this.#rest).toString('utf8'));
  }

  /** a copy: a view would keep the whole chunk (and a pooled one may be reused) */
  #keepRest(part: Buffer): void {
    if (part.length > 0) this.#rest.push(Buffer.from(part));
  }

  #addItemBytes(part: Buffer): void {
    this.#itemBytes += part.length;
    if (this.#itemBytes > MAX_ITEM_BYTES) throw new Error(`list response: an item over ${MAX_ITEM_BYTES} bytes`);
    // the chunk may be a pooled buffer reused after this call: keep a copy of what is still needed
    this.#item.push(Buffer.from(part));
  }

  #emit(): void {
    const parts = this.#item;
    const text = parts.length === 1 ? parts[0]!.toString('utf8') : Buffer.concat(parts).toString('utf8');
    this.#item = [];
    this.#itemBytes = 0;
    this.items++;
    this.#onItem(JSON.parse(text));
  }
}
