// Chooses the enricher: Kubernetes identity when there is a cluster to ask (in a pod, or an explicit --kubeconfig),
// otherwise the disabled one with the reason, said once at start. The enricher's modules are loaded only when there
// is a cluster to ask; none of them loads @kubernetes/client-node (kube-access.ts says why).
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { DisabledEnricher, type Enricher } from './enricher.ts';
import type { KubeAccess } from './kube-access.ts';

/** In a pod, Kubernetes injects KUBERNETES_SERVICE_HOST; on a plain host there is no cluster to ask. */
export async function createEnricher(config: Config, env: NodeJS.ProcessEnv, logger: Logger): Promise<Enricher> {
  if (config.kubernetes === 'off') return new DisabledEnricher('--kubernetes off');
  if (config.kubeconfig === undefined && !env.KUBERNETES_SERVICE_HOST) {
    if (config.kubernetes === 'auto') return new DisabledEnricher('not running in a cluster (KUBERNETES_SERVICE_HOST unset) and no --kubeconfig given');
    throw new Error('--kubernetes on, but not running in a cluster (KUBERNETES_SERVICE_HOST unset): give --kubeconfig FILE');
  }
  const { inClusterAccess, kubeconfigAccess } = await import('./kube-access.ts');
  let kubeConfig: KubeAccess;
  if (config.kubeconfig !== undefined) {
    try {
      kubeConfig = kubeconfigAccess(config.kubeconfig);
    } catch (err) {
      throw new Error(`cannot load --kubeconfig ${config.kubeconfig}: ${(err as Error).message.split('\n')[0]}`);
    }
  } else {
    try {
      kubeConfig = inClusterAccess(env);
    } catch (err) {
      throw new Error(`in-cluster Kubernetes config failed (ServiceAccount token mounted?): ${(err as Error).message.split('\n')[0]}`);
    }
  }
  const { KubeEnricher } = await import('./kube-enricher.ts');
  return new KubeEnricher({ kubeConfig, nodeName: config.nodeName ?? env.NODE_NAME, hostProc: config.hostProc, logger });
}
