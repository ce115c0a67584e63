// Reading back what connlat on the dev node reported: connect and failure counts per (source workload -> destination)
// from Prometheus (the gateway's remote write), and the state of the agent pod and its processes on the host.
import { readdirSync, readlinkSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeCall } from '../kube/client.ts';
import { sleep, waitFor } from '../collector/collector.ts';
import type { RunningPrometheus } from '../collector/prometheus.ts';
import { AGENT_SELECTOR, containerPids, isReady, listPods, podLog, type Pod } from './install.ts';

/** "ns/owner -> type/name" for one (k8s.src.namespace, k8s.src.owner.name) -> (k8s.dst.type, k8s.dst.owner.name). */
export type FlowKey = string;
export const flowKey = (srcNs: string, srcOwner: string, dstType: string, dstOwner: string): FlowKey => `${srcNs}/${srcOwner} -> ${dstType}/${dstOwner}`;

export const CONNECTS = 'tcp_connect_duration_seconds_count';
export const FAILURES = 'tcp_connect_failures_total';

/** Sum per flow of a counter over every series whose source namespace matches `srcNamespaces` (a regex). */
export async function flowCounts(prom: RunningPrometheus, metric: string, srcNamespaces: string): Promise<Record<FlowKey, number>> {
  const q = `sum by (k8s_src_namespace, k8s_src_owner_name, k8s_dst_type, k8s_dst_owner_name) (${metric}{k8s_src_namespace=~"${srcNamespaces}"})`;
  const out: Record<FlowKey, number> = {};
  for (const s of await prom.query(q)) {
    const m = s.metric;
    out[flowKey(m.k8s_src_namespace ?? '', m.k8s_src_owner_name ?? '', m.k8s_dst_type ?? '', m.k8s_dst_owner_name ?? '')] = s.value;
  }
  return out;
}

/**
 * Waits until the counts reach `expected` for every flow, then waits `settleMs` more (later cumulative exports
 * must not add anything) and returns the final counts, which the caller compares exactly.
 */
export async function settledFlowCounts(
  prom: RunningPrometheus,
  metric: string,
  srcNamespaces: string,
  expected: Record<FlowKey, number>,
  timeoutMs: number,
  settleMs: number,
): Promise<Record<FlowKey, number>> {
  const reached = (c: Record<FlowKey, number>) => Object.entries(expected).every(([k, v]) => (c[k] ?? 0) >= v);
  await waitFor(`${metric} reaching the expected counts`, async () => (reached(await flowCounts(prom, metric, srcNamespaces)) ? true : undefined), timeoutMs, 1000).catch(() => undefined);
  await sleep(settleMs);
  return flowCounts(prom, metric, srcNamespaces);
}

export async function waitJobComplete(kc: KubeConfig, namespace: string, name: string, timeoutMs: number): Promise<void> {
  await waitFor(
    `Job ${namespace}/${name} complete`,
    async () => {
      const job = await kubeCall<{ status?: { succeeded?: number; failed?: number } }>(kc, 'GET', `/apis/batch/v1/namespaces/${namespace}/jobs/${name}`);
      if ((job.status?.failed ?? 0) > 0) throw new Error(`Job ${name} failed`);
      return job.status?.succeeded === 1 ? true : undefined;
    },
    timeoutMs,
    250,
  );
}

/** The one agent pod (not terminating), or undefined. */
export async function agentPod(kc: KubeConfig, namespace: string): Promise<Pod | undefined> {
  const pods = (await listPods(kc, namespace, AGENT_SELECTOR)).filter((p) => p.metadata.deletionTimestamp === undefined);
  if (pods.length > 1) throw new Error(`${pods.length} agent pods on a one-node cluster: ${pods.map((p) => p.metadata.name).join(', ')}`);
  return pods[0];
}

/** Waits for a Ready agent pod other than `notName` (after a rollout or a delete) and returns it. */
export async function waitNewReadyAgent(kc: KubeConfig, namespace: string, notName: string, timeoutMs: number): Promise<Pod> {
  return waitFor(
    `a Ready agent pod replacing ${notName}`,
    async () => {
      const pods = await listPods(kc, namespace, AGENT_SELECTOR);
      if (pods.some((p) => p.metadata.name === notName)) return undefined; // the old one is still terminating
      const ready = pods.filter(isReady);
      return ready.length === 1 ? ready[0] : undefined;
    },
    timeoutMs,
    250,
  );
}

/** The host PIDs of a pod's (single) container, and the container id. */
export function podProcesses(pod: Pod): { containerId: string; pids: number[] } {
  const containerId = pod.status?.containerStatuses?.[0]?.containerID;
  if (!containerId) throw new Error(`pod ${pod.metadata.name} has no container id yet`);
  return { containerId, pids: containerPids(containerId) };
}

/** What a process's file descriptors point at, by kind ("anon_inode:bpf-prog", "anon_inode:[perf_event]", ...). */
export function anonFdKinds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith('anon_inode:')) out[target] = (out[target] ?? 0) + 1;
    } catch {
      // closed while we looked
    }
  }
  return out;
}

export async function clusterIp(kc: KubeConfig, namespace: string, service: string): Promise<string> {
  return (await kubeCall<{ spec: { clusterIP: string } }>(kc, 'GET', `/api/v1/namespaces/${namespace}/services/${service}`)).spec.clusterIP;
}

/** What a connect client of test/support/workload says it made ("connect ok=N failed=M ...", printed when done). */
export interface ClientReport {
  ok: number;
  failed: number;
  /** The client's own median connect time (ms) over its successful connects: the ground truth connlat must match. */
  medianMs: number | undefined;
}

/** Waits for the one pod of `app` in `namespace` to print its report, and returns it. */
export async function clientReport(kc: KubeConfig, namespace: string, app: string, timeoutMs: number): Promise<ClientReport> {
  return waitFor(
    `the report of ${namespace}/${app}`,
    async () => {
      const [pod] = await listPods(kc, namespace, `app=${app}`);
      if (pod === undefined) return undefined;
      const m = /^connect ok=(\d+) failed=(\d+)(?: median_ms=([\d.]+))?/m.exec(await podLog(kc, namespace, pod.metadata.name, app).catch(() => ''));
      return m ? { ok: Number(m[1]), failed: Number(m[2]), medianMs: m[3] === undefined ? undefined : Number(m[3]) } : undefined;
    },
    timeoutMs,
    1000,
  );
}
