// One supervised informer per resource: @kubernetes/client-node's ListWatch, fed through a Watch that compacts every
// object as it arrives (compact.ts) so neither the informer cache nor the index ever holds a whole object. Lists are
// paginated and compacted page by page. ListWatch reconnects by itself after a clean close but gives up after an
// error (API server down, 403, network): then we start it again with capped exponential backoff and jitter, from
// the last resourceVersion when there is one (a 410 Gone makes it relist and reconcile deletes).
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { Backoff, type BackoffOptions } from '../backoff.ts';
import type { Logger } from '../log.ts';
import { SampledLog } from '../log.ts';

export interface ListPage {
  items: unknown[];
  metadata?: { resourceVersion?: string; _continue?: string } | undefined;
}

export interface WatchSpec<R extends KubernetesObject> {
  /** for logs: "pods", "pods on node-1", "replicasets" */
  name: string;
  /** watch path, e.g. /api/v1/pods */
  path: string;
  fieldSelector?: string | undefined;
  /** one page of the list (limit/continue) */
  list: (page: { limit: number; _continue?: string }) => Promise<ListPage>;
  compact: (obj: unknown) => R;
  upsert: (rec: R) => void;
  remove: (rec: R) => void;
}

const PAGE_SIZE = 500;

/** A Watch whose callback sees compacted objects: the raw JSON is dropped as soon as it is parsed. */
class CompactingWatch extends Watch {
  readonly #compact: (obj: unknown) => KubernetesObject;
  constructor(config: KubeConfig, compact: (obj: unknown) => KubernetesObject) {
    super(config);
    this.#compact = compact;
  }
  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    // Bookmarks keep the resourceVersion fresh on quiet resources, so a restart rarely needs a full relist.
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true }, (phase, obj) => {
      const isObject = phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED';
      callback(phase, isObject ? this.#compact(obj) : obj);
    }, done);
  }
}

export function describeError(err: unknown): string {
  if (err === null || err === undefined) return 'connection closed';
  const e = err as { statusCode?: number; code?: number | string; message?: string; body?: unknown; cause?: { code?: string; message?: string } };
  const status = e.statusCode ?? (typeof e.code === 'number' ? e.code : undefined);
  const cause = e.cause?.code ?? e.cause?.message;
  const message = (e.message ?? String(err)).split('\n')[0]!.slice(0, 200);
  return [status !== undefined ? `HTTP ${status}` : undefined, message, cause].filter(Boolean).join(': ');
}

export class SupervisedWatch<R extends KubernetesObject> {
  readonly spec: WatchSpec<R>;
  /** resolves after the first complete list */
  readonly listed: Promise<void>;
  errors = 0;
  restarts = 0;
  lastError: string | undefined;
  #isListed = false;
  #markListed!: () => void;
  readonly #informer: ListWatch<R>;
  readonly #logger: Logger;
  readonly #log = new SampledLog(60_000);
  readonly #backoff: Backoff;
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;

  /** backoff: initialMs and maxMs (default 500 ms .. 30 s); reset by any successful list or event, not by time. */
  constructor(config: KubeConfig, spec: WatchSpec<R>, logger: Logger, backoff: Partial<BackoffOptions> = {}) {
    this.spec = spec;
    this.#logger = logger;
    this.#backoff = new Backoff({ ...backoff, resetAfterMs: Number.POSITIVE_INFINITY }, Math.random, 'equal');
    this.listed = new Promise((resolve) => (this.#markListed = resolve));
    const watch = new CompactingWatch(config, spec.compact as (obj: unknown) => KubernetesObject);
    this.#informer = new ListWatch<R>(spec.path, watch, () => this.#list(), false, undefined, spec.fieldSelector);
    const ok = () => this.#backoff.reset();
    this.#informer.on('add', (rec) => (ok(), spec.upsert(rec)));
    this.#informer.on('update', (rec) => (ok(), spec.upsert(rec)));
    this.#informer.on('delete', (rec) => (ok(), spec.remove(rec)));
    this.#informer.on('error', (err) => this.#failed(err));
  }

  get isListed(): boolean {
    return this.#isListed;
  }

  async #list(): Promise<KubernetesListObject<R>> {
    const items: R[] = [];
    let resourceVersion: string | undefined;
    let cont: string | undefined;
    do {
      const page = await this.spec.list(cont === undefined ? { limit: PAGE_SIZE } : { limit: PAGE_SIZE, _continue: cont });
      resourceVersion ??= page.metadata?.resourceVersion;
      for (const item of page.items) items.push(this.spec.compact(item));
      cont = page.metadata?._continue || undefined;
    } while (cont !== undefined);
    this.#backoff.reset();
    if (!this.#isListed) {
      this.#isListed = true;
      this.#logger.debug(`Kubernetes ${this.spec.name}: listed ${items.length}`);
      setImmediate(this.#markListed); // ListWatch applies the items synchronously once this promise settles
    }
    return { items, metadata: { resourceVersion: resourceVersion ?? '' } };
  }

  #failed(err: unknown): void {
    if (this.#stopped || this.#timer !== undefined) return;
    this.errors++;
    this.lastError = describeError(err);
    const delay = this.#backoff.next();
    const msg = this.#log.sample(this.spec.name, `Kubernetes watch of ${this.spec.name} failed (${this.lastError}); retrying in ${delay} ms`);
    if (msg) this.#logger.warn(msg);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#stopped) return;
      this.restarts++;
      this.#informer.start().catch((e: unknown) => this.#failed(e));
    }, delay);
    this.#timer.unref();
  }

  start(): void {
    this.#stopped = false;
    this.#informer.start().catch((e: unknown) => this.#failed(e));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#informer.stop();
  }
}
