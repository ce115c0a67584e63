// The agent from src/ on the real tcpstates source, exporting OTLP gRPC to a gateway collector the test started, and
// the client side of the connects it measures. Shared by the tests that run the whole stack (collector e2e,
// dashboards).
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ManagedProcess, REPO_ROOT, descendantPids, freePort, sleep, waitFor, type RunningCollector } from './collector.ts';

const AGENT_CLI = join(REPO_ROOT, 'src/cli.ts');

export interface AgentIdentity {
  node: string;
  pod: string;
  namespace: string;
  cluster: string;
  /** OTEL_RESOURCE_ATTRIBUTES, merged over the Downward-API identity by the agent. */
  resourceAttributes?: string;
}

export interface GatewayAgentOptions {
  slowMs: number;
  exportIntervalMs: number;
}

/** Starts `node src/cli.ts --source tcpstates --export otlp` toward the gateway; resolves once /readyz says so. */
export async function startGatewayAgent(gateway: RunningCollector, id: AgentIdentity, opts: GatewayAgentOptions): Promise<ManagedProcess> {
  const healthPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/root',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://${gateway.grpc}`,
    CONNLAT_CLUSTER_NAME: id.cluster,
    NODE_NAME: id.node,
    POD_NAME: id.pod,
    POD_NAMESPACE: id.namespace,
    POD_UID: `00000000-0000-4000-8000-${String(healthPort).padStart(12, '0')}`,
    ...(id.resourceAttributes ? { OTEL_RESOURCE_ATTRIBUTES: id.resourceAttributes } : {}),
  };
  const args = [
    AGENT_CLI,
    '--source', 'tcpstates',
    '--export', 'otlp',
    '--slow-ms', String(opts.slowMs),
    '--export-interval-ms', String(opts.exportIntervalMs),
    '--health-addr', `127.0.0.1:${healthPort}`,
    '--view', 'off',
    '--kubernetes', 'off',
  ];
  const agent = new ManagedProcess(`connlat ${id.pod}`, process.execPath, args, { env });
  try {
    await waitFor(
      `agent ${id.pod} /readyz`,
      async () => {
        if (!agent.running) throw new Error('agent exited early');
        const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`, { signal: AbortSignal.timeout(1000) });
        return res.status === 200 ? true : undefined;
      },
      30_000,
    );
  } catch (err) {
    await agent.stop('SIGKILL');
    throw new Error(`${(err as Error).message}\nagent output:\n${agent.tail()}`);
  }
  // Ready means tcpstates printed its header; give the attached tracepoint a moment before connecting.
  await sleep(500);
  return agent;
}

/**
 * Stops an agent the way Kubernetes does (SIGTERM) and asserts it flushed and exited 0. Returns the PIDs of its
 * children (stdbuf/tcpstates), taken before the stop, for leak checks.
 */
export async function stopGatewayAgent(agent: ManagedProcess): Promise<number[]> {
  const children = agent.running ? descendantPids(agent.child.pid!) : [];
  const { code, signal } = await agent.stop('SIGTERM', 15_000);
  assert.equal(code, 0, `agent exited ${code ?? signal}:\n${agent.tail()}`);
  return children;
}

/** One TCP connect from the root namespace: true once established (then closed at once), false when it failed. */
export function attemptConnect(host: string, port: number, timeoutMs = 5000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, timeout: timeoutMs });
    sock.once('connect', () => (sock.destroy(), resolve(true)));
    sock.once('error', () => resolve(false));
    sock.once('timeout', () => (sock.destroy(), resolve(false)));
  });
}

/** n sequential connects that must all have the outcome `established` (true: accepted, false: refused). */
export async function connectN(host: string, port: number, n: number, established = true): Promise<void> {
  for (let i = 0; i < n; i++) {
    assert.equal(await attemptConnect(host, port), established, `connect ${i + 1}/${n} to ${host}:${port}`);
    await sleep(50);
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function assertWithin(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= expected * tolerance,
    `${what}: ${actual.toFixed(4)} is not within ${tolerance * 100}% of ${expected}`,
  );
}
