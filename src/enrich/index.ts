import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { DisabledEnricher, type Enricher } from './enricher.ts';

/** In a pod, Kubernetes injects KUBERNETES_SERVICE_HOST; on a plain host there is no cluster to ask. */
export async function createEnricher(config: Config, env: NodeJS.ProcessEnv, _logger: Logger): Promise<Enricher> {
  if (config.kubernetes === 'off') return new DisabledEnricher('--kubernetes off');
  if (!env.KUBERNETES_SERVICE_HOST && config.kubernetes === 'auto') {
    return new DisabledEnricher('not running in a cluster (KUBERNETES_SERVICE_HOST unset)');
  }
  return new DisabledEnricher('Kubernetes identity lookup is not part of this build yet');
}
