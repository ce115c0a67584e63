// The dev cluster for the node tests (test/support/cluster.ts: scripts/dev-cluster.sh up|down) plus what those tests
// need besides it: connlat's images built (`up` imports them), helm/kustomize for the install, and where the node's
// network namespace and containerd socket are.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../collector/collector.ts';
import { devClusterSkipReason, startDevCluster, stopDevCluster, type DevCluster } from '../cluster.ts';
import { renderTools, type RenderTools } from '../../deploy/support/render.ts';

/**
 * The timeout for the node tests' before/after hooks. Hooks inherit the runner's --test-timeout (300 s in
 * scripts/test.sh), and a cold dev cluster plus an install can take longer; when a hook times out, the runner abandons
 * it, and the cluster it was bringing up would outlive the file unless `after` waits for it.
 */
export const NODE_HOOK_TIMEOUT_MS = 15 * 60_000;

export interface DevClusterRun extends DevCluster {
  /** The node's network namespace (its holder process's), where pod traffic is routed. */
  netnsPath: string;
  /** containerd's socket, for `ctr` (image tags). */
  containerdSocket: string;
  stop(): Promise<void>;
}

function check(file: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60_000 }, (err, _stdout, stderr) => resolve(err ? (stderr.trim().split('\n').pop() ?? err.message) : undefined));
  });
}

/** Why the node tests cannot run here (with the command that fixes it), or the render tools when they can. */
export async function nodeTestSkipReason(): Promise<{ skip: string | false; tools?: RenderTools }> {
  if (process.getuid?.() !== 0) return { skip: 'needs root (the dev cluster makes namespaces, cgroups and mounts)' };
  const cluster = devClusterSkipReason();
  if (cluster) return { skip: cluster };
  const images = await check(join(REPO_ROOT, 'scripts/build-images.sh'), ['--check']);
  if (images !== undefined) return { skip: `connlat's images not built: run scripts/build-images.sh (${images})` };
  const tools = await renderTools();
  if (typeof tools === 'string') return { skip: tools };
  return { skip: false, tools };
}

export async function startDevClusterRun(): Promise<DevClusterRun> {
  const cluster = await startDevCluster();
  const holder = readFileSync(join(cluster.stateDir, 'holder.pid'), 'utf8').trim();
  return {
    ...cluster,
    netnsPath: `/proc/${holder}/ns/net`,
    containerdSocket: join(cluster.stateDir, 'containerd/containerd.sock'),
    stop: async () => void (await stopDevCluster()),
  };
}
