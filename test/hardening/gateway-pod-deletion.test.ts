// Gateway Pod deletions under traffic, with every backend up: three real agents (one of them tenant B's), each
// reading a fake tcpconnlat printing 200 connects/s (1 in 10 slow: a log record and a span each), export OTLP gRPC to
// our gateway (gateway.yaml + victoria-logs.yaml + victoria-metrics.yaml + jaeger.yaml), which sends logs to
// VictoriaLogs, metrics to VictoriaMetrics and spans to Jaeger v2. RESTARTS (3) times while the agents send, the
// gateway gets SIGTERM (what the kubelet sends a deleted Pod) and a new gateway starts on the same ports with an EMPTY
// queue folder (the new Pod's emptyDir); the agents reconnect by themselves. Whatever the old gateway accepted (the
// agent got its OK and will not resend) but left on its disk is gone with its emptyDir. After the agents stop and the
// last gateway's queues drain, every slow-connection record is in VictoriaLogs once, every span in Jaeger once and
// every connect in VictoriaMetrics' histogram count.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { findCollector, loopbackEnv, startCollector } from '../support/collector/collector.ts';
import { floodTotals, sleep } from './helpers.ts';
import { startFloodAgents, tearDown, type FloodAgent } from './flood-agents.ts';
import { EXIT } from '../../src/exit-status.ts';
import { findBackends } from '../support/backends/backend.ts';
import { gatewayWithBackends } from '../support/backends/gateway.ts';
import { logCountsIn, selfMetric, seriesWithDuplicateSamples, spansOnce, waitUntilAsync } from '../support/backends/checks.ts';
import { startVictoriaLogs } from '../support/backends/victoria-logs.ts';
import { startVictoriaMetrics } from '../support/backends/victoria-metrics.ts';
import { startJaeger } from '../support/backends/jaeger.ts';

const RESTARTS = Number(process.env.RESTARTS ?? 8);
const AGENTS = [{ name: 'a1', tenantB: false }, { name: 'a2', tenantB: false }, { name: 'b1', tenantB: true }];
const RATE = 200;
const SLOW_EVERY = 10;
const BETWEEN_MS = 4000; // traffic into each gateway before the next deletion

const collector = await findCollector();
const backends = await findBackends();
const skip = collector.skip ?? backends['victoria-logs'].skip ?? backends['victoria-metrics'].skip ?? backends.jaeger.skip ?? false;

test(`gateway Pod deleted ${RESTARTS} times under traffic, each new one on an empty queue folder, backends up: nothing lost, nothing twice`, { skip, timeout: (RESTARTS * 40 + 200) * 1000 }, async (t) => {
  const run = randomUUID();
  const dir = mkdtempSync(join(tmpdir(), 'connlat-pod-deletion-'));
  const logs = await startVictoriaLogs(backends['victoria-logs'].path!);
  const metrics = await startVictoriaMetrics(backends['victoria-metrics'].path!);
  const traces = await startJaeger(backends.jaeger.path!, { storage: 'memory' });
  const { configs, env: backendEnv } = gatewayWithBackends({ logs, metrics, traces });
  // Pinned listeners: the new gateway is where the agents already send (the Service in front of the Pods).
  const { grpc: _g, http: _h, health: _he, selfMetrics: _s, ...ports } = await loopbackEnv();
  const gatewayOn = (pod: number) => startCollector({
    binary: collector.path!,
    configs,
    env: { ...ports, ...backendEnv, CONNLAT_GATEWAY_STORAGE_DIR: join(dir, `pod-${pod}`), CONNLAT_GATEWAY_LOG_LEVEL: 'warn' },
    logFile: join(dir, `gateway-${pod}.log`), // the whole output; a crash's panic is in the assertion (report())
  });
  let gateway = await gatewayOn(0);
  const agents = new Map<string, FloodAgent>();
  t.after(() => tearDown(agents, () => gateway, [logs, metrics, traces], dir));
  await startFloodAgents(AGENTS, { dir, run, gatewayGrpc: gateway.grpc, rate: RATE, slowEvery: SLOW_EVERY }, agents);
  await sleep(BETWEEN_MS);

  const stops: string[] = [];
  for (let pod = 1; pod <= RESTARTS; pod++) {
    const stoppedAt = Date.now();
    await gateway.stop(); // SIGTERM; the old Pod's emptyDir (its queue folder) is never opened again
    const { code } = await gateway.process.exited;
    assert.equal(code, 0, gateway.process.report());
    stops.push(`${((Date.now() - stoppedAt) / 1000).toFixed(1)} s`);
    gateway = await gatewayOn(pod);
    await sleep(BETWEEN_MS);
  }
  for (const [name, a] of agents) assert.equal(await a.agent.stop('SIGTERM', 20_000), EXIT.ok.code, `${name}: ${a.agent.stderr().slice(-2000)}`);
  await waitUntilAsync('the last gateway to deliver everything', async () => {
    await sleep(2000); // anything still on its way into the queues
    return (await selfMetric(gateway, 'otelcol_exporter_queue_size')) === 0;
  }, 60_000);
  await logs.flush();
  await metrics.flush();

  // Count everything first, so a failure reports every loss at once.
  const rows: string[] = [];
  const wrong: string[] = [];
  for (const [name, a] of agents) {
    const printed = floodTotals(a.totals);
    assert.ok(printed, `${name}: the fake tool wrote its totals`);
    const { total, distinct } = await logCountsIn(logs, `"test.run":="${run}" "test.agent":="${name}"`, a.tenantB);
    const count = await metrics.queryScalar(`sum(tcp_connect_duration_seconds_count{test_run="${run}",test_agent="${name}"})`);
    const spans = await spansOnce(traces, logs, run, name, a.tenantB);
    rows.push(`${name}: ${distinct}/${printed.slow} records (${total} stored), ${spans} spans once, ${count}/${printed.events} connects`);
    if (distinct !== printed.slow) wrong.push(`${name}: ${printed.slow - distinct} of ${printed.slow} slow records lost`);
    if (total !== distinct) wrong.push(`${name}: ${total - distinct} records twice`);
    if (spans !== distinct) wrong.push(`${name}: ${distinct - spans} of the stored records' spans not in Jaeger exactly once`);
    if (count !== printed.events) wrong.push(`${name}: histogram count ${count}, ${printed.events} connects sent`);
  }
  t.diagnostic(`${RESTARTS} deletions (SIGTERM to exit: ${stops.join(', ')}): ${rows.join('; ')}`);
  assert.deepEqual(wrong, [], rows.join('; '));
  const { series, twice } = await seriesWithDuplicateSamples(metrics.url, `{test_run="${run}"}`);
  assert.ok(series > 0, 'series exported');
  assert.deepEqual(twice, [], 'no series holds two samples at one timestamp');
});
