// connlat on the dev cluster (scripts/dev-cluster.sh): installed the way a user does it (helm, kubectl built from the
// pinned Kubernetes module), then watched through the API: which pods are Ready, when, and what they log.
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import type { DevCluster } from '../cluster.ts';
import { KubeApiError, kubeCall, kubeRequest } from '../kube/client.ts';
import { sleep } from '../collector/collector.ts';
import { CAPS, type CapName } from '../../../src/sources/stderr.ts';
import { chartDir, kustomizeDir, type RenderTools } from '../../deploy/support/render.ts';

export { chartDir, kustomizeDir };

/** What the install helpers need of a running dev cluster (test/support/cluster.ts). */
export type ClusterAccess = Pick<DevCluster, 'kubeconfig' | 'nodeName' | 'hostIp'>;

export interface Pod {
  metadata: { name: string; namespace: string; uid: string; labels?: Record<string, string>; creationTimestamp?: string; deletionTimestamp?: string };
  spec: { nodeName?: string; containers: Array<{ name: string; image: string }> };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: Array<{ type: string; status: string; lastTransitionTime?: string }>;
    containerStatuses?: Array<{ name: string; ready: boolean; restartCount: number; containerID?: string; image: string; state?: Record<string, unknown> }>;
  };
}

export function kubeConfigOf(cluster: ClusterAccess): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  return kc;
}

/** Runs a command to completion; rejects with its output when it exits non-zero (the message names the command). */
export function runTool(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: timeoutMs, maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file.split('/').pop()} ${args.join(' ')}: ${(stderr || stdout || err.message).trim()}`));
      else resolve(stdout);
    });
  });
}

// Helm keeps its caches out of $HOME, as test/deploy/support/render.ts does.
const helmHome = { HELM_CACHE_HOME: '/tmp/connlat-helm/cache', HELM_CONFIG_HOME: '/tmp/connlat-helm/config', HELM_DATA_HOME: '/tmp/connlat-helm/data' };

export function helm(cluster: ClusterAccess, tools: RenderTools, args: string[]): Promise<string> {
  return runTool(tools.helm, args, { ...process.env, ...helmHome, KUBECONFIG: cluster.kubeconfig });
}

export async function listPods(kc: KubeConfig, namespace: string, selector?: string): Promise<Pod[]> {
  const list = await kubeCall<{ items: Pod[] }>(kc, 'GET', `/api/v1/namespaces/${namespace}/pods`, { query: { labelSelector: selector } });
  return list.items;
}

export const isReady = (p: Pod): boolean => p.metadata.deletionTimestamp === undefined && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

export const AGENT_SELECTOR = 'app.kubernetes.io/name=connlat,app.kubernetes.io/component=agent';
export const GATEWAY_SELECTOR = 'app.kubernetes.io/name=connlat,app.kubernetes.io/component=gateway';

interface WorkloadStatus {
  metadata: { generation?: number };
  spec: { replicas?: number };
  status?: {
    observedGeneration?: number;
    desiredNumberScheduled?: number;
    numberReady?: number;
    updatedNumberScheduled?: number;
    readyReplicas?: number;
    updatedReplicas?: number;
    replicas?: number;
  };
}

/** One line per workload that is not rolled out and Ready yet (empty: everything is). */
export async function notReady(kc: KubeConfig, namespace: string): Promise<string[]> {
  const out: string[] = [];
  const ds = await kubeCall<{ items: Array<WorkloadStatus & { metadata: { name: string } }> }>(kc, 'GET', `/apis/apps/v1/namespaces/${namespace}/daemonsets`);
  for (const d of ds.items) {
    const s = d.status ?? {};
    const want = s.desiredNumberScheduled ?? 0;
    if (s.observedGeneration !== d.metadata.generation || want === 0 || s.numberReady !== want || s.updatedNumberScheduled !== want) {
      out.push(`DaemonSet ${d.metadata.name}: ${s.numberReady ?? 0}/${want} ready, ${s.updatedNumberScheduled ?? 0} updated`);
    }
  }
  const deps = await kubeCall<{ items: Array<WorkloadStatus & { metadata: { name: string } }> }>(kc, 'GET', `/apis/apps/v1/namespaces/${namespace}/deployments`);
  for (const d of deps.items) {
    const s = d.status ?? {};
    const want = d.spec.replicas ?? 1;
    if (s.observedGeneration !== d.metadata.generation || s.readyReplicas !== want || s.updatedReplicas !== want || s.replicas !== want) {
      out.push(`Deployment ${d.metadata.name}: ${s.readyReplicas ?? 0}/${want} ready, ${s.updatedReplicas ?? 0} updated, ${s.replicas ?? 0} total`);
    }
  }
  for (const p of await listPods(kc, namespace)) {
    if (!isReady(p) && p.status?.phase !== 'Succeeded') out.push(`Pod ${p.metadata.name}: ${describePod(p)}`);
  }
  return out;
}

/** A pod's state in one line, for failure messages. */
export function describePod(p: Pod): string {
  const cs = (p.status?.containerStatuses ?? []).map((c) => `${c.name} ready=${c.ready} restarts=${c.restartCount} ${JSON.stringify(c.state ?? {})}`);
  const conds = (p.status?.conditions ?? []).map((c) => `${c.type}=${c.status}`).join(',');
  return `${p.status?.phase ?? 'no phase'} [${conds}] ${cs.join('; ')}${p.metadata.deletionTimestamp ? ' (terminating)' : ''}`;
}

/** Waits until every workload and pod of the namespace is Ready (notReady() empty); the failure lists what is not. */
export async function waitAllReady(kc: KubeConfig, namespace: string, timeoutMs: number, diag?: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string[] = ['nothing listed yet'];
  while (Date.now() < deadline) {
    try {
      last = await notReady(kc, namespace);
      if (last.length === 0) return;
    } catch (err) {
      last = [(err as Error).message];
    }
    await sleep(500);
  }
  throw new Error(`namespace ${namespace} not Ready after ${timeoutMs} ms:\n  ${last.join('\n  ')}${diag ? `\n${await diag()}` : ''}`);
}

/** A container's log through the API (kubelet). `previous` reads the last terminated instance. */
export async function podLog(kc: KubeConfig, namespace: string, pod: string, container: string, previous = false): Promise<string> {
  const res = await kubeRequest(kc, 'GET', `/api/v1/namespaces/${namespace}/pods/${pod}/log`, { query: { container, previous: previous || undefined } });
  if (res.status !== 200) throw new KubeApiError('GET', `pods/${pod}/log`, res);
  return res.text;
}

/** Host PIDs of the processes of one container (by its containerd id), from /proc/<pid>/cgroup. */
export function containerPids(containerId: string): number[] {
  const id = containerId.replace(/^[a-z]+:\/\//, '');
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cgroup`, 'utf8').includes(id)) out.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

export interface ProcessSecurity {
  pid: number;
  comm: string;
  capEff: string;
  capPrm: string;
  capBnd: string;
  capAmb: string;
  noNewPrivs: string;
  /** 0 none, 1 strict, 2 filter */
  seccomp: string;
  /** mount options of the process's / (e.g. "ro,relatime") */
  rootMountOptions: string;
}

/** What the kernel says about a running process: capabilities, no_new_privs, seccomp mode, its root mount. */
export function processSecurity(pid: number): ProcessSecurity {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(status)?.[1] ?? '';
  // mountinfo: "id parent major:minor root mountpoint options ..."; the process's / is the last mount on "/".
  const rootMounts = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').map((l) => l.split(' ')).filter((f) => f[4] === '/');
  return {
    pid,
    comm: readFileSync(`/proc/${pid}/comm`, 'utf8').trim(),
    capEff: field('CapEff'),
    capPrm: field('CapPrm'),
    capBnd: field('CapBnd'),
    capAmb: field('CapAmb'),
    noNewPrivs: field('NoNewPrivs'),
    seccomp: field('Seccomp'),
    rootMountOptions: rootMounts.at(-1)?.[5] ?? '',
  };
}

/** The /proc/<pid>/status hex mask of a set of capability names as the manifests spell them (BPF, PERFMON), as
 * the kernel prints it (16 hex digits). */
export function capabilityMask(names: string[]): string {
  let mask = 0n;
  for (const n of names) {
    const bit = CAPS[`CAP_${n}` as CapName];
    if (bit === undefined) throw new Error(`unknown capability ${n}`);
    mask |= 1n << BigInt(bit);
  }
  return mask.toString(16).padStart(16, '0');
}

/** What a user of this cluster writes in a values file: the images (the names the chart defaults to, imported by
 * the cluster script) and where the gateway sends (backends on the host, which pods reach at HOST_IP). */
export function userValues(hostIp: string, backends: { loki?: string; mimirOtlp?: string; remoteWrite?: string } = {}): Record<string, unknown> {
  return {
    agent: { image: { repository: 'ghcr.io/connlat/connlat-agent', tag: '0.1.0' } },
    gateway: {
      image: { repository: 'ghcr.io/connlat/connlat-gateway', tag: '0.1.0' },
      ...(backends.remoteWrite ? { overlays: ['mimir-remote-write'] } : {}),
      extraEnv: [
        { name: 'CONNLAT_LOKI_OTLP_ENDPOINT', value: backends.loki ?? `http://${hostIp}:3100/otlp` },
        { name: 'CONNLAT_MIMIR_OTLP_ENDPOINT', value: backends.mimirOtlp ?? `http://${hostIp}:9009/otlp` },
        ...(backends.remoteWrite ? [{ name: 'CONNLAT_MIMIR_REMOTE_WRITE_URL', value: backends.remoteWrite }] : []),
        { name: 'CONNLAT_TEMPO_OTLP_GRPC_ENDPOINT', value: `${hostIp}:4317` },
      ],
    },
  };
}
