// The whole product on the dev node, for the node tests: the cluster (scripts/dev-cluster.sh), backends on the host
// where pods reach it (Prometheus with remote write standing in for Mimir, an OTLP/HTTP endpoint for Loki), a server
// behind a 40 ms delay line inside the node's network, and connlat installed with helm and a user's values file.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeRequest } from '../kube/client.ts';
import { startPrometheus, type RunningPrometheus } from '../collector/prometheus.ts';
import { startOtlpHttpLogsReceiver, type OtlpHttpLogsReceiver } from '../otlp/http-logs-receiver.ts';
import type { RenderTools } from '../../deploy/support/render.ts';
import { startDevClusterRun, type DevClusterRun } from './cluster-run.ts';
import { startDelayedServer, type DelayedServer } from './delayed-server.ts';
import { clusterIp } from './observe.ts';
import { chartDir, describePod, helm, kubeConfigOf, listPods, userValues, waitAllReady } from './install.ts';

export const NS = 'connlat';
export const DELAY_MS = 40;
export const SLOW_MS = 30; // under DELAY_MS: every connect through the delay line is logged as slow
export const DELAYED_PORT = 7040;

export interface ProductStack {
  cluster: DevClusterRun;
  kc: KubeConfig;
  tools: RenderTools;
  prom: RunningPrometheus;
  logs: OtlpHttpLogsReceiver;
  delayed: DelayedServer;
  /** helm upgrade --reuse-values with more --set args; waits until the namespace is Ready again unless told not to. */
  upgrade(args: string[], waitReady?: boolean): Promise<void>;
  diag(): Promise<string>;
  stop(): Promise<string[]>;
}

export async function startProductStack(tools: RenderTools): Promise<ProductStack> {
  const cleanups: Array<[string, () => Promise<unknown>]> = [];
  const stop = async () => {
    const errors: string[] = [];
    for (const [what, fn] of cleanups.reverse()) await fn().catch((err: Error) => errors.push(`${what}: ${err.message}`));
    return errors;
  };
  try {
    const dir = await mkdtemp(join(tmpdir(), 'connlat-node-'));
    cleanups.push(['temp dir', () => rm(dir, { recursive: true, force: true })]);
    const cluster = await startDevClusterRun();
    cleanups.push(['dev cluster', () => cluster.stop()]);
    const kc = kubeConfigOf(cluster);
    const prom = await startPrometheus({ host: cluster.hostIp });
    cleanups.push(['prometheus', () => prom.stop()]);
    const logs = await startOtlpHttpLogsReceiver(cluster.hostIp);
    cleanups.push(['logs receiver', () => logs.close()]);
    const delayed = await startDelayedServer(DELAY_MS, DELAYED_PORT, cluster.netnsPath);
    cleanups.push(['delayed server', () => delayed.stop()]);

    const diag = async () => {
      const pods = await listPods(kc, NS).catch(() => []);
      return pods.map((p) => `pod ${p.metadata.name}: ${describePod(p)}`).join('\n');
    };
    const values = join(dir, 'values.yaml');
    const user = userValues(cluster.hostIp, { loki: logs.url, remoteWrite: prom.remoteWriteUrl });
    (user.agent as Record<string, unknown>).slowMs = SLOW_MS;
    (user.agent as Record<string, unknown>).clusterName = 'connlat-dev';
    await writeFile(values, stringify(user));
    await helm(cluster, tools, ['install', 'connlat', chartDir, '--namespace', NS, '--create-namespace', '-f', values]);
    await waitAllReady(kc, NS, 5 * 60_000, diag);

    const upgrade = async (args: string[], waitReady = true) => {
      await helm(cluster, tools, ['upgrade', 'connlat', chartDir, '--namespace', NS, '--reuse-values', ...args]);
      if (waitReady) await waitAllReady(kc, NS, 5 * 60_000, diag);
    };
    // A dev cluster without DNS (no kube-dns Service) cannot resolve the chart's default endpoint
    // connlat-gateway.connlat.svc: point the agents at the gateway Service's ClusterIP instead (a chart value).
    if ((await kubeRequest(kc, 'GET', '/api/v1/namespaces/kube-system/services/kube-dns')).status === 404) {
      await upgrade(['--set-string', `agent.otlpEndpoint=http://${await clusterIp(kc, NS, 'connlat-gateway')}:4317`]);
    }
    return { cluster, kc, tools, prom, logs, delayed, upgrade, diag, stop };
  } catch (err) {
    const errors = await stop();
    throw new Error(`${(err as Error).message}${errors.length ? `\n(cleanup: ${errors.join('; ')})` : ''}`);
  }
}
