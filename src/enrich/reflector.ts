// List, then watch, one resource, compacting every object as it is parsed, with the index as the only store (no
// informer cache beside it). Lists are paginated and each item goes into the index as its bytes arrive; after a relist
// (410 Gone) the records the index still holds but the list no longer had are removed: the index marks what a list
// upserts and sweeps the rest (beginList/endList), collecting nothing per object. ReplicaSets and Jobs are
// fetched as metadata only (PartialObjectMetadata): the server sends their owner references without the pod
// template, a tenth of the bytes to serialize and parse.
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import type { KubeAccess } from './kube-access.ts';
import type { Keyed } from './compact.ts';
import { ListSplitter } from './list-stream.ts';
// Not `import ... from 'node:http'`: an ES import of node:http reads every export for its namespace, and its lazy
// WebSocket/EventSource getters load Node's undici bundle (~9 MB RSS) that the agent never uses (BENCHMARKS.md).
const { request: httpRequest } = process.getBuiltinModule('node:http');

export interface ReflectorSpec<R extends Keyed> {
  /** collection path, e.g. /api/v1/pods */
  path: string;
  fieldSelector?: string | undefined;
  /** ask for PartialObjectMetadata: name, namespace, labels, annotations, owners; no spec or status */
  metadataOnly?: boolean | undefined;
  compact: (obj: unknown) => R;
  upsert: (rec: R) => void;
  /** by namespace and name: a delete event's object, or a stored one a relist no longer has */
  remove: (rec: Keyed) => void;
  /** a list starts: the store marks what the list upserts from now (cluster-index.ts beginList) */
  beginList: () => void;
  /** the list is complete: the store removes what it holds that the list did not upsert */
  endList: () => void;
}

/** An error with the HTTP status when the API server answered one (403, 410, 500, ...). */
export class KubeHttpError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.statusCode = statusCode;
  }
}

export const PAGE_SIZE = 500;
/** Server-side watch timeout, spread so that N agents do not reconnect in step. */
const WATCH_SECONDS = 300;
/** No byte (not even a bookmark, which the server sends about once a minute) for this long: the stream is dead. */
const INACTIVITY_MS = 150_000;
const METADATA_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json';
const METADATA_WATCH_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

/**
 * One list at a time in this process. After an API server restart every watch gets 410 Gone at once, and the seven
 * relists running together held their pages and parse garbage together: the agent's peak at 150k pods
 * (BENCHMARKS.md, issue 14). A list waits for the one before it; watches are not held back.
 */
let lists: Promise<unknown> = Promise.resolve();
function oneListAtATime<T>(list: () => Promise<T>): Promise<T> {
  const turn = lists.then(list, list);
  lists = turn.catch(() => undefined);
  return turn;
}

async function get(kc: KubeAccess, path: string, query: Record<string, string>, accept: string, signal: AbortSignal): Promise<IncomingMessage> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('no current cluster in the kubeconfig');
  const url = new URL(server.replace(/\/$/, '') + path);
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const opts: RequestOptions = { method: 'GET', headers: { Accept: accept }, signal };
  await kc.applyToHTTPSOptions(opts);
  opts.headers = { ...opts.headers, Accept: accept };
  const send = url.protocol === 'http:' ? httpRequest : request;
  return new Promise((resolve, reject) => {
    const req = send(url, opts, (res) => {
      if (res.statusCode === 200) return resolve(res);
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body.length < 4096 ? (body += c) : undefined));
      res.on('end', () => {
        let message = body.slice(0, 200);
        try {
          message = (JSON.parse(body) as { message?: string }).message ?? message;
        } catch {}
        reject(new KubeHttpError(res.statusCode ?? 0, message || (res.statusMessage ?? '')));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

interface ListBody {
  metadata?: { resourceVersion?: string; continue?: string };
}
interface WatchLine {
  type?: string;
  object?: { metadata?: { resourceVersion?: string }; code?: number; message?: string };
}

export class Reflector<R extends Keyed> {
  readonly #kc: KubeAccess;
  readonly #spec: ReflectorSpec<R>;
  /** where the next watch resumes; '' means list first */
  resourceVersion = '';
  #abort: AbortController | undefined;

  constructor(kc: KubeAccess, spec: ReflectorSpec<R>) {
    this.#kc = kc;
    this.#spec = spec;
  }

  #query(extra: Record<string, string>): Record<string, string> {
    return this.#spec.fieldSelector ? { ...extra, fieldSelector: this.#spec.fieldSelector } : extra;
  }

  /**
   * One round: lists first when there is no resourceVersion to resume from (calling `listed` with the count), then
   * watches until the server ends the stream (resolves) or something fails (rejects). A 410 Gone, on connect or as
   * an ERROR event, clears resourceVersion and resolves: the next round relists.
   */
  async run(listed: (count: number) => void): Promise<void> {
    const abort = (this.#abort = new AbortController());
    if (this.resourceVersion === '') listed(await oneListAtATime(() => this.#list(abort.signal)));
    if (!abort.signal.aborted) await this.#watch(abort.signal);
  }

  /**
   * Lists every page into the index, item by item as the bytes arrive (list-stream.ts), then has the index remove
   * what it held that the list did not have. Returns the count.
   */
  async #list(signal: AbortSignal): Promise<number> {
    this.#spec.beginList();
    let count = 0;
    let cont: string | undefined;
    let rv: string | undefined;
    const accept = this.#spec.metadataOnly ? METADATA_ACCEPT : 'application/json';
    do {
      const query = this.#query({ limit: String(PAGE_SIZE), ...(cont ? { continue: cont } : {}) });
      const res = await get(this.#kc, this.#spec.path, query, accept, signal);
      const split = new ListSplitter((item) => this.#spec.upsert(this.#spec.compact(item)));
      for await (const chunk of res) split.push(chunk as Buffer);
      const page = split.end() as ListBody;
      count += split.items;
      rv ??= page.metadata?.resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont !== undefined);
    this.#spec.endList();
    this.resourceVersion = rv ?? '';
    return count;
  }

  async #watch(signal: AbortSignal): Promise<void> {
    const accept = this.#spec.metadataOnly ? METADATA_WATCH_ACCEPT : 'application/json';
    const timeoutSeconds = String(Math.round(WATCH_SECONDS * (0.75 + Math.random() / 2)));
    const query = this.#query({ watch: 'true', allowWatchBookmarks: 'true', resourceVersion: this.resourceVersion, timeoutSeconds });
    let res: IncomingMessage;
    try {
      res = await get(this.#kc, this.#spec.path, query, accept, signal);
    } catch (err) {
      if ((err as KubeHttpError).statusCode === 410) return void (this.resourceVersion = '');
      throw err;
    }
    await new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (err?: unknown) => {
        clearTimeout(timer);
        lines.close();
        res.destroy();
        if (err !== undefined) reject(err);
        else resolve();
      };
      const alive = () => {
        clearTimeout(timer);
        timer = setTimeout(() => finish(new Error(`watch of ${this.#spec.path} silent for ${INACTIVITY_MS / 1000} s`)), INACTIVITY_MS);
        timer.unref();
      };
      const lines = createInterface({ input: res, crlfDelay: Infinity });
      alive();
      res.on('data', alive);
      res.on('error', (e) => finish(e));
      lines.on('error', (e) => finish(e)); // readline re-emits the input's errors
      res.on('end', () => finish());
      res.on('close', () => finish()); // a killed server closes without 'end'
      lines.on('line', (line) => {
        let ev: WatchLine;
        try {
          ev = JSON.parse(line) as WatchLine;
        } catch {
          return finish(new Error(`watch of ${this.#spec.path}: unparseable event`));
        }
        const obj = ev.object;
        if (ev.type === 'ERROR') {
          if (obj?.code === 410) {
            this.resourceVersion = '';
            return finish();
          }
          return finish(new KubeHttpError(obj?.code ?? 0, `watch ERROR event: ${obj?.message ?? ''}`));
        }
        if (ev.type === 'ADDED' || ev.type === 'MODIFIED') this.#spec.upsert(this.#spec.compact(obj));
        else if (ev.type === 'DELETED') this.#spec.remove(this.#spec.compact(obj));
        const rv = obj?.metadata?.resourceVersion;
        if (rv) this.resourceVersion = rv;
      });
    });
  }

  stop(): void {
    this.#abort?.abort();
    this.#abort = undefined;
  }
}
