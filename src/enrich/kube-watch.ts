// One supervised watch per resource: a Reflector (reflector.ts) lists and watches, compacting every object as it
// arrives (compact.ts) into the index, which is the only store. A round ends when the server closes the stream (then
// it watches again at once, from the last resourceVersion) or on an error (API server down, 403, network): then it
// starts again with capped exponential backoff and jitter, from the last resourceVersion when there is one (a 410
// Gone makes it relist and reconcile deletes).
import type { KubeAccess } from './kube-access.ts';
import { Backoff, type BackoffOptions } from '../backoff.ts';
import type { Logger } from '../log.ts';
import { SampledLog } from '../log.ts';
import type { Keyed } from './compact.ts';
import { Reflector, type ReflectorSpec } from './reflector.ts';

export interface WatchSpec<R extends Keyed> extends ReflectorSpec<R> {
  /** for logs: "pods", "pods on node-1", "replicasets" */
  name: string;
}

export function describeError(err: unknown): string {
  if (err === null || err === undefined) return 'connection closed';
  const e = err as { statusCode?: number; code?: number | string; message?: string; body?: unknown; cause?: { code?: string; message?: string } };
  const status = e.statusCode ?? (typeof e.code === 'number' ? e.code : undefined);
  const cause = e.cause?.code ?? e.cause?.message;
  const message = (e.message ?? String(err)).split('\n')[0]!.slice(0, 200);
  return [status !== undefined ? `HTTP ${status}` : undefined, message, cause].filter(Boolean).join(': ');
}

export class SupervisedWatch<R extends Keyed> {
  readonly spec: WatchSpec<R>;
  /** resolves after the first complete list */
  readonly listed: Promise<void>;
  errors = 0;
  restarts = 0;
  lastError: string | undefined;
  #isListed = false;
  #markListed!: () => void;
  readonly #reflector: Reflector<R>;
  readonly #logger: Logger;
  readonly #log = new SampledLog(60_000);
  readonly #backoff: Backoff;
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;

  /** backoff: initialMs and maxMs (default 500 ms .. 30 s); reset by any successful list or event, not by time. */
  constructor(config: KubeAccess, spec: WatchSpec<R>, logger: Logger, backoff: Partial<BackoffOptions> = {}) {
    this.spec = spec;
    this.#logger = logger;
    this.#backoff = new Backoff({ ...backoff, resetAfterMs: Number.POSITIVE_INFINITY }, Math.random, 'equal');
    this.listed = new Promise((resolve) => (this.#markListed = resolve));
    // Any object delivered means the connection works: the next failure starts the backoff from the beginning.
    const ok = () => this.#backoff.reset();
    this.#reflector = new Reflector<R>(config, {
      ...spec,
      upsert: (rec) => (ok(), spec.upsert(rec)),
      remove: (rec) => (ok(), spec.remove(rec)),
    });
  }

  get isListed(): boolean {
    return this.#isListed;
  }

  #onListed(count: number): void {
    this.#backoff.reset();
    if (this.#isListed) return void this.#logger.debug(`Kubernetes ${this.spec.name}: relisted ${count}`);
    this.#isListed = true;
    this.#logger.debug(`Kubernetes ${this.spec.name}: listed ${count}`);
    this.#markListed();
  }

  /** Rounds of list/watch until stopped or failed; a clean end of the stream is followed by the next round at once. */
  async #run(): Promise<void> {
    try {
      while (!this.#stopped) await this.#reflector.run((n) => this.#onListed(n));
    } catch (err) {
      this.#failed(err);
    }
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
      void this.#run();
    }, delay);
    this.#timer.unref();
  }

  start(): void {
    this.#stopped = false;
    void this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#reflector.stop();
  }
}
