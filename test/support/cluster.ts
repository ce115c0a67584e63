// The single-node dev cluster (scripts/dev-cluster.sh) for tests: the same script a user runs, so tests start the
// node exactly as documented. One cluster per machine (it uses the machine's kubepods cgroups): start it in a
// suite's `before`, stop it in `after`.
import { execFile, execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '..', '..');
export const devClusterScript = resolve(repoRoot, 'scripts', 'dev-cluster.sh');

export interface DevCluster {
  /** Admin kubeconfig (group system:masters). */
  kubeconfig: string;
  /** kubectl built from the same pinned Kubernetes release. */
  kubectlPath: string;
  nodeName: string;
  /** The machine's end of the node's link: pods reach it, so test backends on the machine listen there. */
  hostIp: string;
  /** Everything the cluster keeps (logs/ holds each daemon's log); removed by stop. */
  stateDir: string;
  /** Wall time of `dev-cluster.sh up` (node Ready and ServiceAccounts made), in milliseconds. */
  upMs: number;
  /** What `up` said on stderr: its steps, each with the seconds since it started. */
  upLog: string;
  /** Runs kubectl as the admin; resolves to stdout, rejects with kubectl's stderr. */
  kubectl(args: string[], options?: { input?: string; timeoutMs?: number }): Promise<string>;
}

/** Why the dev cluster cannot start here (for `skip`), or undefined when it can: the script's own requirement check. */
export function devClusterSkipReason(): string | undefined {
  try {
    execFileSync(devClusterScript, ['check'], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    return undefined;
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? '').trim();
    return stderr.replace(/^dev-cluster: /, '') || `scripts/dev-cluster.sh check failed: ${String(error)}`;
  }
}

/** Parses the KEY=VALUE lines `up` prints; throws naming any key that is missing. */
export function parseUpOutput(stdout: string): Record<'KUBECONFIG' | 'KUBECTL' | 'NODE_NAME' | 'HOST_IP' | 'STATE_DIR', string> {
  const values = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) values.set(match[1], match[2]);
  }
  const keys = ['KUBECONFIG', 'KUBECTL', 'NODE_NAME', 'HOST_IP', 'STATE_DIR'] as const;
  const missing = keys.filter((key) => !values.get(key));
  if (missing.length > 0) throw new Error(`dev-cluster.sh up printed no ${missing.join(', ')}: ${JSON.stringify(stdout)}`);
  return Object.fromEntries(keys.map((key) => [key, values.get(key) as string])) as Record<(typeof keys)[number], string>;
}

function failure(what: string, error: unknown): Error {
  const stderr = String((error as { stderr?: string }).stderr ?? '').trim();
  return new Error(`${what} failed: ${stderr.split('\n').slice(-15).join('\n') || String(error)}`);
}

/** Runs `dev-cluster.sh up` (minutes on a cold image cache) and returns the cluster. Throws with the script's last lines. */
export async function startDevCluster(options: { timeoutMs?: number } = {}): Promise<DevCluster> {
  const started = performance.now();
  let stdout: string;
  let stderr: string;
  try {
    ({ stdout, stderr } = await run(devClusterScript, ['up'], { timeout: options.timeoutMs ?? 1_200_000, maxBuffer: 16 << 20 }));
  } catch (error) {
    throw failure('scripts/dev-cluster.sh up', error);
  }
  const upMs = Math.round(performance.now() - started);
  const values = parseUpOutput(stdout);
  const kubectl = async (args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> => {
    try {
      const child = run(values.KUBECTL, ['--kubeconfig', values.KUBECONFIG, ...args], {
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 64 << 20,
      });
      child.child.stdin?.end(opts.input ?? '');
      return (await child).stdout;
    } catch (error) {
      throw failure(`kubectl ${args.join(' ')}`, error);
    }
  };
  return {
    kubeconfig: values.KUBECONFIG,
    kubectlPath: values.KUBECTL,
    nodeName: values.NODE_NAME,
    hostIp: values.HOST_IP,
    stateDir: values.STATE_DIR,
    upMs,
    upLog: stderr,
    kubectl,
  };
}

/** Runs `dev-cluster.sh down`: every process, mount, cgroup and byte of state goes. Resolves to its wall time (ms). */
export async function stopDevCluster(): Promise<number> {
  const started = performance.now();
  try {
    await run(devClusterScript, ['down'], { timeout: 120_000 });
  } catch (error) {
    throw failure('scripts/dev-cluster.sh down', error);
  }
  return Math.round(performance.now() - started);
}
