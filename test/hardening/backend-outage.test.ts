// Backend outages behind our gateway: three real agents (one of them tenant B's), each reading a fake tcpconnlat
// printing 200 connects/s (1 in 10 slow: a log record and a span each), export OTLP gRPC to our gateway
// (otelcol-connlat, gateway.yaml + victoria-logs.yaml + victoria-metrics.yaml + jaeger.yaml, every exporter with its
// persistent sending queue), which sends logs to VictoriaLogs, metrics to VictoriaMetrics and spans to Jaeger v2.
//   1. VictoriaLogs is stopped for OUTAGE_SECONDS (60) while the agents send, then started again on the same data.
//   2. All three backends are stopped; midway the gateway is restarted (SIGTERM, then a new process on the same ports
//      and the same queue folder); the agents are stopped (their last data goes into the new gateway's queues); then
//      the backends come back.
// After recovery every slow-connection log record is in VictoriaLogs once, under its tenant's account only (LogsQL
// count and count_uniq), each record's span is in Jaeger exactly once (its trace holds that one span), and every
// connect is in VictoriaMetrics' histogram count, with no series holding two samples at one timestamp. The figures
// (queue bytes, file sizes, recovery times) are printed as diagnostics and recorded in RELIABILITY.md.
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { findCollector, loopbackEnv, reportingCrashes, startCollector, type RunningCollector } from '../support/collector/collector.ts';
import { floodTotals, sleep } from './helpers.ts';
import { startFloodAgents, tearDown, type FloodAgent } from './flood-agents.ts';
import { EXIT } from '../../src/exit-status.ts';
import { findBackends } from '../support/backends/backend.ts';
import { gatewayWithBackends } from '../support/backends/gateway.ts';
import { logCountsIn, selfMetric, seriesWithDuplicateSamples, spansOnce, waitUntilAsync } from '../support/backends/checks.ts';
import { startVictoriaLogs } from '../support/backends/victoria-logs.ts';
import { startVictoriaMetrics } from '../support/backends/victoria-metrics.ts';
import { startJaeger } from '../support/backends/jaeger.ts';

const OUTAGE_S = Number(process.env.OUTAGE_SECONDS ?? 60);
// b1 is tenant B's (k8s.namespace.name=tenant-b): its data goes through the tenant_b exporters' queues.
const AGENTS = [{ name: 'a1', tenantB: false }, { name: 'a2', tenantB: false }, { name: 'b1', tenantB: true }];
const RATE = 200;
const SLOW_EVERY = 10; // 20 log records/s per agent: within the default slow-log rate (100/s)
// The exporters batch in their queues (sending_queue.batch, 1 s): while the agents send, the open batch's records
// count in the queue until it is delivered, so a drained logs queue holds about one second of them (3 agents x 20
// records x ~410 B = 25 KB, measured), never 0. Drained = below twice that.
const OPEN_BATCH_BYTES = 64 * 1024;

const collector = await findCollector();
const backends = await findBackends();
const skip = collector.skip ?? backends['victoria-logs'].skip ?? backends['victoria-metrics'].skip ?? backends.jaeger.skip ?? false;

// The queues of otel-config/victoria-logs.yaml's and victoria-metrics.yaml's exporters, both tenants together.
const LOGS_QUEUE = { data_type: 'logs' };
const METRICS_QUEUE = { data_type: 'metrics' };
const TRACES_QUEUE = { data_type: 'traces' };

test(`backend outages behind the gateway: VictoriaLogs down ${OUTAGE_S} s, then all three backends down across a gateway restart; nothing lost, nothing twice`, { skip, timeout: (OUTAGE_S + 300) * 1000 }, async (t) => {
  const run = randomUUID();
  const dir = mkdtempSync(join(tmpdir(), 'connlat-backend-outage-'));
  const queueDir = join(dir, 'queue');
  const logs = await startVictoriaLogs(backends['victoria-logs'].path!);
  const metrics = await startVictoriaMetrics(backends['victoria-metrics'].path!);
  const traces = await startJaeger(backends.jaeger.path!, { storage: 'badger' }); // badger: survives its restart
  const { configs: gatewayConfigs, env: backendEnv } = gatewayWithBackends({ logs, metrics, traces });
  // The gateway's listeners are pinned so the restarted gateway is where the agents already send.
  const { grpc: _g, http: _h, health: _he, selfMetrics: _s, ...ports } = await loopbackEnv();
  const gatewayEnv = {
    ...ports,
    ...backendEnv,
    CONNLAT_GATEWAY_STORAGE_DIR: queueDir,
    CONNLAT_GATEWAY_LOG_LEVEL: 'warn',
  };
  const logCounts = (filter: string, tenantB = false) => logCountsIn(logs, filter, tenantB);
  // Every gateway process's whole output goes to gateway-<n>.log in `dir`; a crash fails the test with its panic.
  const gateways: RunningCollector[] = [];
  const startGateway = async () => {
    const g = await startCollector({ binary: collector.path!, configs: gatewayConfigs, env: gatewayEnv, logFile: join(dir, `gateway-${gateways.length + 1}.log`) });
    gateways.push(g);
    return g;
  };
  let gateway = await startGateway();
  const agents = new Map<string, FloodAgent>();
  t.after(() => tearDown(agents, () => gateway, [logs, metrics, traces], dir));
  await reportingCrashes(() => gateways.map((g) => g.process), async () => {
    await startFloodAgents(AGENTS, { dir, run, gatewayGrpc: gateway.grpc, rate: RATE, slowEvery: SLOW_EVERY }, agents);
    await sleep(10_000);
    await logs.flush();
    assert.ok((await logCounts(`"test.run":="${run}"`)).total > 0, 'records reach VictoriaLogs before the outage');

    // 1. VictoriaLogs down for OUTAGE_S while the agents send.
    await logs.backend.stop();
    let peakQueueBytes = 0;
    let peakFileBytes = 0;
    const logsFiles = ['default', 'tenant_b'].map((t) => join(queueDir, `exporter_otlp_http_victorialogs_${t}_logs`));
    const outageEnd = Date.now() + OUTAGE_S * 1000;
    while (Date.now() < outageEnd) {
      peakQueueBytes = Math.max(peakQueueBytes, await selfMetric(gateway, 'otelcol_exporter_queue_size', LOGS_QUEUE));
      peakFileBytes = Math.max(peakFileBytes, logsFiles.reduce((sum, f) => sum + statSync(f).size, 0));
      await sleep(1000);
    }
    assert.ok(peakQueueBytes > 0, 'the logs queue held the outage');
    await logs.backend.start();
    const back = Date.now();
    await waitUntilAsync('the logs queues to drain after outage 1', async () => (await selfMetric(gateway, 'otelcol_exporter_queue_size', LOGS_QUEUE)) < OPEN_BATCH_BYTES, 120_000);
    const recovery1 = (Date.now() - back) / 1000;
    t.diagnostic(`outage 1 (VictoriaLogs down ${OUTAGE_S} s): logs queues peak ${peakQueueBytes} B (${(peakQueueBytes / 2 ** 20).toFixed(2)} MiB serialized OTLP), their files peak ${peakFileBytes} B; drained ${recovery1.toFixed(1)} s after VictoriaLogs was back`);

    // 2. Both backends down; the gateway restarts midway; the agents stop during the outage.
    await sleep(5000);
    await logs.backend.stop();
    await metrics.backend.stop();
    await traces.backend.stop();
    await sleep(10_000);
    const beforeRestart = {
      logs: await selfMetric(gateway, 'otelcol_exporter_queue_size', LOGS_QUEUE),
      metrics: await selfMetric(gateway, 'otelcol_exporter_queue_size', METRICS_QUEUE),
      traces: await selfMetric(gateway, 'otelcol_exporter_queue_size', TRACES_QUEUE),
    };
    await gateway.stop();
    assert.equal((await gateway.process.exited).code, 0, gateway.process.report());
    const restartedAt = Date.now();
    gateway = await startGateway();
    const restartS = (Date.now() - restartedAt) / 1000;
    const afterRestart = {
      logs: await selfMetric(gateway, 'otelcol_exporter_queue_size', LOGS_QUEUE),
      metrics: await selfMetric(gateway, 'otelcol_exporter_queue_size', METRICS_QUEUE),
      traces: await selfMetric(gateway, 'otelcol_exporter_queue_size', TRACES_QUEUE),
    };
    // An in-memory queue would start empty: the restarted gateway holds at least what the old one had queued.
    assert.ok(afterRestart.logs >= beforeRestart.logs && beforeRestart.logs > 0, `logs queue across the restart: ${JSON.stringify({ beforeRestart, afterRestart })}`);
    assert.ok(afterRestart.metrics >= beforeRestart.metrics && beforeRestart.metrics > 0, `metrics queue across the restart: ${JSON.stringify({ beforeRestart, afterRestart })}`);
    assert.ok(afterRestart.traces >= beforeRestart.traces && beforeRestart.traces > 0, `traces queue across the restart: ${JSON.stringify({ beforeRestart, afterRestart })}`);
    await sleep(10_000);
    for (const [name, a] of agents) assert.equal(await a.agent.stop('SIGTERM', 20_000), EXIT.ok.code, `${name}: ${a.agent.stderr().slice(-2000)}`);
    await sleep(3000); // the agents' last exports into the gateway's queues
    const queued2 = {
      logs: await selfMetric(gateway, 'otelcol_exporter_queue_size', LOGS_QUEUE),
      metrics: await selfMetric(gateway, 'otelcol_exporter_queue_size', METRICS_QUEUE),
      traces: await selfMetric(gateway, 'otelcol_exporter_queue_size', TRACES_QUEUE),
    };
    await logs.backend.start();
    await metrics.backend.start();
    await traces.backend.start();
    const back2 = Date.now();
    await waitUntilAsync(
      'every queue to drain after outage 2',
      async () => (await selfMetric(gateway, 'otelcol_exporter_queue_size')) === 0,
      120_000,
    );
    const recovery2 = (Date.now() - back2) / 1000;
    t.diagnostic(`outage 2 (both down, gateway restarted): queued before the restart logs ${beforeRestart.logs} B, metrics ${beforeRestart.metrics} B, traces ${beforeRestart.traces} B; after it ${afterRestart.logs} B, ${afterRestart.metrics} B, ${afterRestart.traces} B (restart ${restartS.toFixed(1)} s); at recovery ${queued2.logs} B, ${queued2.metrics} B, ${queued2.traces} B; drained ${recovery2.toFixed(1)} s after the backends were back`);

    // Everything, once.
    await logs.flush();
    await metrics.flush();
    let sent = { events: 0, slow: 0 };
    for (const [name, a] of agents) {
      const printed = floodTotals(a.totals);
      assert.ok(printed, `${name}: the fake tool wrote its totals`);
      sent = { events: sent.events + printed.events, slow: sent.slow + printed.slow };
      // Tenant B's records are under its own VictoriaLogs account only.
      const { total, distinct } = await logCounts(`"test.run":="${run}" "test.agent":="${name}"`, a.tenantB);
      assert.equal((await logCounts(`"test.run":="${run}" "test.agent":="${name}"`, !a.tenantB)).total, 0, `${name}: nothing under the other tenant`);
      assert.equal(distinct, printed.slow, `${name}: every slow record in VictoriaLogs (${distinct} distinct of ${printed.slow})`);
      assert.equal(total, distinct, `${name}: no record twice (${total} records, ${distinct} distinct)`);
      // Every slow connect's span once in Jaeger: each record names its span; its trace holds exactly that span.
      assert.equal(await spansOnce(traces, logs, run, name, a.tenantB), printed.slow, `${name}: every span in Jaeger once`);
      const count = await metrics.queryScalar(`sum(tcp_connect_duration_seconds_count{test_run="${run}",test_agent="${name}"})`);
      assert.equal(count, printed.events, `${name}: every connect in VictoriaMetrics' histogram count`);
    }
    const { series, twice } = await seriesWithDuplicateSamples(metrics.url, `{test_run="${run}"}`);
    assert.ok(series > 0, 'series exported');
    assert.deepEqual(twice, [], 'no series holds two samples at one timestamp');
    const failed = await selfMetric(gateway, 'otelcol_exporter_enqueue_failed_log_records_total');
    assert.equal(failed, 0, 'no record refused by a full queue');
    t.diagnostic(`sent ${sent.events} connects, ${sent.slow} slow records from ${AGENTS.length} agents (one of tenant B); all in the backends, none twice; ${series} series checked for duplicate samples`);
  });
});
