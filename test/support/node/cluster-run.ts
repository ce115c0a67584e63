// The dev cluster for the node tests, through the same script users run (scripts/dev-cluster.sh up|down), plus
// what those tests need besides it: connlat's images built and imported, helm/kustomize for the install.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../collector/collector.ts';
import { renderTools, type RenderTools } from '../../deploy/support/render.ts';
import type { ClusterAccess } from './install.ts';

export interface DevClusterRun extends ClusterAccess {
  stateDir: string;
  /** The node's network namespace (its holder process's), where pod traffic is routed. */
  netnsPath: string;
  /** containerd's socket, for `ctr` (image tags). */
  containerdSocket: string;
  /** Seconds `up` took. */
  upSeconds: number;
  stop(): Promise<void>;
}

const SCRIPT = join(REPO_ROOT, 'scripts/dev-cluster.sh');

function run(file: string, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 << 20, env: process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr: stderr || (err && code !== 0 ? err.message : '') });
    });
  });
}

/** Why the node tests cannot run here (with the command that fixes it), or the render tools when they can. */
export async function nodeTestSkipReason(): Promise<{ skip: string | false; tools?: RenderTools }> {
  if (process.getuid?.() !== 0) return { skip: 'needs root (the dev cluster makes namespaces, cgroups and mounts)' };
  if (!existsSync(SCRIPT)) return { skip: 'scripts/dev-cluster.sh is not there' };
  const kube = await run(join(REPO_ROOT, 'scripts/build-kube.sh'), ['--check'], 30_000);
  if (kube.code !== 0) return { skip: `Kubernetes binaries not built: run scripts/build-kube.sh (${kube.stderr.trim().split('\n').pop()})` };
  const images = await run(join(REPO_ROOT, 'scripts/build-images.sh'), ['--check'], 60_000).catch(() => ({ code: 1, stdout: '', stderr: 'scripts/build-images.sh missing' }));
  if (images.code !== 0) return { skip: `connlat's images not built: run scripts/build-images.sh (${images.stderr.trim().split('\n').pop()})` };
  const tools = await renderTools();
  if (typeof tools === 'string') return { skip: tools };
  const status = await run(SCRIPT, ['status'], 30_000);
  if (status.code !== 3) return { skip: `a dev cluster is already up or left over (scripts/dev-cluster.sh status: ${status.stdout.trim().split('\n')[0]}); run scripts/dev-cluster.sh down` };
  return { skip: false, tools };
}

export async function startDevClusterRun(): Promise<DevClusterRun> {
  const started = Date.now();
  const up = await run(SCRIPT, ['up'], 15 * 60_000);
  const stop = async () => {
    const down = await run(SCRIPT, ['down'], 5 * 60_000);
    if (down.code !== 0) throw new Error(`dev-cluster.sh down exited ${down.code}: ${down.stderr.trim()}`);
  };
  if (up.code !== 0) {
    await stop().catch(() => undefined);
    throw new Error(`scripts/dev-cluster.sh up exited ${up.code}:\n${up.stderr.trim().split('\n').slice(-15).join('\n')}`);
  }
  const kv = Object.fromEntries(up.stdout.trim().split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  for (const key of ['KUBECONFIG', 'KUBECTL', 'NODE_NAME', 'HOST_IP', 'STATE_DIR']) {
    if (!kv[key]) {
      await stop().catch(() => undefined);
      throw new Error(`scripts/dev-cluster.sh up printed no ${key}=: ${up.stdout}`);
    }
  }
  const stateDir = kv.STATE_DIR!;
  const holder = readFileSync(join(stateDir, 'holder.pid'), 'utf8').trim();
  return {
    kubeconfig: kv.KUBECONFIG!,
    kubectl: kv.KUBECTL!,
    nodeName: kv.NODE_NAME!,
    hostIp: kv.HOST_IP!,
    stateDir,
    netnsPath: `/proc/${holder}/ns/net`,
    containerdSocket: join(stateDir, 'containerd/containerd.sock'),
    upSeconds: (Date.now() - started) / 1000,
    stop,
  };
}
