// Real agents reading the fake tcpconnlat flood (FAKE_RATE connects/s, 1 in FAKE_SLOW_EVERY slow: a log record and a
// span), exporting OTLP gRPC to a gateway, each tagged test.run/test.agent (tenant B's also k8s.namespace.name), and
// the teardown the gateway tests with real backends share.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startAgent, type LiveAgent } from '../support/agent.ts';
import type { RunningCollector } from '../support/collector/collector.ts';
import { FAKES } from './helpers.ts';

export interface FloodAgent { agent: LiveAgent; totals: string; tenantB: boolean }

/** Starts one agent per spec (totals file in `dir`) and resolves once every one is reading its tool. */
export async function startFloodAgents(
  specs: { name: string; tenantB: boolean }[],
  o: { dir: string; run: string; gatewayGrpc: string; rate: number; slowEvery: number },
  into: Map<string, FloodAgent>,
): Promise<void> {
  for (const { name, tenantB } of specs) {
    const totals = join(o.dir, `${name}.totals`);
    const agent = startAgent(
      [
        '--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-flood.mjs'),
        '--export', 'otlp', '--otlp-endpoint', `http://${o.gatewayGrpc}`,
        '--export-interval-ms', '2000', '--export-retry-max-ms', '2000',
        '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off',
      ],
      { FAKE_RATE: String(o.rate), FAKE_SLOW_EVERY: String(o.slowEvery), FAKE_DESTS: '5', FAKE_TOTAL_FILE: totals, OTEL_RESOURCE_ATTRIBUTES: `test.run=${o.run},test.agent=${name}${tenantB ? ',k8s.namespace.name=tenant-b' : ''}` },
    );
    into.set(name, { agent, totals, tenantB });
  }
  for (const a of into.values()) await a.agent.waitForStderr(/reading tcpconnlat/, 30_000);
}

/** Kills the agents, stops the current gateway and the backends, removes `dir` (kept, with the gateways' logs in
 * it, when the gateway had crashed). */
export async function tearDown(agents: Map<string, FloodAgent>, gateway: () => RunningCollector, backends: { backend: { close(): Promise<void> } }[], dir: string): Promise<void> {
  for (const a of agents.values()) await a.agent.stop('SIGKILL', 1000);
  const crashed = gateway().process.exitedUnexpectedly;
  await gateway().stop();
  for (const b of backends) await b.backend.close();
  if (crashed) console.error(`# the gateway crashed: its output and queue are kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
