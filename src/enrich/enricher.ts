import type { ConnectEvent } from '../event.ts';

/**
 * The enrich stage: adds Kubernetes identity (event.src / event.dst) between parse and record. It must be
 * synchronous and cheap (a lookup in an in-memory index kept fresh by watches), never blocking the pipeline.
 */
export interface Enricher {
  /** Why it is on or off, said once at start. */
  readonly description: string;
  /** false: events pass through untouched (no cluster, or --kubernetes off). */
  readonly enabled: boolean;
  /** Self-observability counters (listed in docs/enrichment.md); absent when enrichment is off. */
  readonly counters?: Readonly<Record<string, number>>;
  start(): Promise<void>;
  enrich(event: ConnectEvent): void;
  stop(): Promise<void>;
}

/** Used on a plain host (no cluster) or with --kubernetes off: events pass through untouched. */
export class DisabledEnricher implements Enricher {
  readonly description: string;
  readonly enabled = false;
  constructor(reason: string) {
    this.description = `Kubernetes enrichment off: ${reason}`;
  }
  async start(): Promise<void> {}
  enrich(_event: ConnectEvent): void {}
  async stop(): Promise<void> {}
}
