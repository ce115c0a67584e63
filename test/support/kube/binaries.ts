// Where scripts/build-kube.sh caches the Kubernetes binaries, derived from the same pinned manifest
// (tools/kube/go.mod) so the harness and the build script can never disagree on the version.
import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

const repoRoot = resolve(import.meta.dirname, '..', '..', '..');
export const buildKubeCommand = 'scripts/build-kube.sh';

export interface KubeBinaries {
  /** Pinned Kubernetes release, e.g. "v1.35.4". */
  k8sVersion: string;
  /** etcd release the Kubernetes release pins, e.g. "v3.6.5". */
  etcdVersion: string;
  kubeApiserver: string;
  etcd: string;
  /** The rest of the one build (scripts/dev-cluster.sh runs them): the node's programs and kubectl. */
  kubeControllerManager: string;
  kubeScheduler: string;
  kubelet: string;
  kubeProxy: string;
  kubectl: string;
}

function pinnedVersion(goMod: string, module: string): string {
  const line = goMod.split('\n').map((l) => l.trim().split(/\s+/)).find((w) => w[0] === module && w[1]?.startsWith('v'));
  if (line === undefined || line[1] === undefined) {
    throw new Error(`tools/kube/go.mod does not pin ${module}`);
  }
  return line[1];
}

export function kubeBinaries(): KubeBinaries {
  const goMod = readFileSync(join(repoRoot, 'tools', 'kube', 'go.mod'), 'utf8');
  const k8sVersion = pinnedVersion(goMod, 'k8s.io/kubernetes');
  const cache = process.env.CONNLAT_CACHE || join(homedir(), '.cache', 'connlat');
  const dir = join(cache, 'kube', k8sVersion);
  return {
    k8sVersion,
    etcdVersion: pinnedVersion(goMod, 'go.etcd.io/etcd/server/v3'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    etcd: join(dir, 'etcd'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubeScheduler: join(dir, 'kube-scheduler'),
    kubelet: join(dir, 'kubelet'),
    kubeProxy: join(dir, 'kube-proxy'),
    kubectl: join(dir, 'kubectl'),
  };
}

/** Why the harness cannot run here (for t.skip / describe's skip), or undefined when it can. */
export function kubeSkipReason(): string | undefined {
  const binaries = kubeBinaries();
  for (const path of [binaries.kubeApiserver, binaries.etcd]) {
    try {
      accessSync(path, constants.X_OK);
    } catch {
      return `kube-apiserver ${binaries.k8sVersion} / etcd ${binaries.etcdVersion} not built (${path} missing): run ${buildKubeCommand}`;
    }
  }
  return undefined;
}
