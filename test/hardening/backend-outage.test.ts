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
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { startAgent, type LiveAgent } from '../support/agent.ts';
import { findCollector, loopbackEnv, startCollector, waitFor, type RunningCollector } from '../support/collector/collector.ts';
import { FAKES, floodTotals, sleep } from './helpers.ts';
import { EXIT } from '../../src/exit-status.ts';
import { findBackends } from '../support/backends/backend.ts';
import { VICTORIA_LOGS_TENANTS, gatewayWithBackends } from '../support/backends/gateway.ts';
import { startVictoriaLogs } from '../support/backends/victoria-logs.ts';
import { startVictoriaMetrics } from '../support/backends/victoria-metrics.ts';
import { startJaeger, type Jaeger } from '../support/backends/jaeger.ts';

const OUTAGE_S = Number(process.env.OUTAGE_SECONDS ?? 60);
// b1 is tenant B's (k8s.namespace.name=tenant-b): its data goes through the tenant_b exporters' queues.
const AGENTS = [{ name: 'a1', tenantB: false }, { name: 'a2', tenantB: false }, { name: 'b1', tenantB: true }];
const RATE = 200;
const SLOW_EVERY = 10; // 20 log records/s per agent: within the default slow-log rate (100/s)

const collector = await findCollector();
const backends = await findBackends();
const skip = collector.skip ?? backends['victoria-logs'].skip ?? backends['victoria-metrics'].skip ?? backends.jaeger.skip ?? false;

/** One gauge/counter of the gateway's own metrics (Prometheus text), summed over the series that match `labels`. */
async function selfMetric(col: RunningCollector, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(col.selfMetricsUrl)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

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
  let gateway = await startCollector({ binary: collector.path!, configs: gatewayConfigs, env: gatewayEnv });
  const agents = new Map<string, { agent: LiveAgent; totals: string; tenantB: boolean }>();
  t.after(async () => {
    for (const a of agents.values()) await a.agent.stop('SIGKILL', 1000);
    await gateway.stop();
    await logs.backend.close();
    await metrics.backend.close();
    await traces.backend.close();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const { name, tenantB } of AGENTS) {
    const totals = join(dir, `${name}.totals`);
    const agent = startAgent(
      [
        '--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-flood.mjs'),
        '--export', 'otlp', '--otlp-endpoint', `http://${gateway.grpc}`,
        '--export-interval-ms', '2000', '--export-retry-max-ms', '2000',
        '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off',
      ],
      { FAKE_RATE: String(RATE), FAKE_SLOW_EVERY: String(SLOW_EVERY), FAKE_DESTS: '5', FAKE_TOTAL_FILE: totals, OTEL_RESOURCE_ATTRIBUTES: `test.run=${run},test.agent=${name}${tenantB ? ',k8s.namespace.name=tenant-b' : ''}` },
    );
    agents.set(name, { agent, totals, tenantB });
  }
  for (const a of agents.values()) await a.agent.waitForStderr(/reading tcpconnlat/, 30_000);
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
  await waitUntilAsync('the logs queues to drain after outage 1', async () => (await selfMetric(gateway, 'otelcol_exporter_queue_size', LOGS_QUEUE)) === 0, 120_000);
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
  assert.equal((await gateway.process.exited).code, 0, gateway.process.tail());
  const restartedAt = Date.now();
  gateway = await startCollector({ binary: collector.path!, configs: gatewayConfigs, env: gatewayEnv });
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
  await sleep(3000); // the gateway's batch (1 s) into the queues
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
  // Raw samples (/api/v1/export): a request delivered twice puts two samples at one timestamp in a series
  // (VictoriaMetrics keeps both without -dedup.minScrapeInterval; checked by importing a sample twice).
  const exported = await (await fetch(`${metrics.url}/api/v1/export?${new URLSearchParams({ 'match[]': `{test_run="${run}"}` })}`)).text();
  const series = exported.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { metric: Record<string, string>; timestamps: number[] });
  assert.ok(series.length > 0, 'series exported');
  const twice = series.filter((s) => new Set(s.timestamps).size !== s.timestamps.length);
  assert.deepEqual(twice.map((s) => s.metric), [], 'no series holds two samples at one timestamp');
  const failed = await selfMetric(gateway, 'otelcol_exporter_enqueue_failed_log_records_total');
  assert.equal(failed, 0, 'no record refused by a full queue');
  t.diagnostic(`sent ${sent.events} connects, ${sent.slow} slow records from ${AGENTS.length} agents (one of tenant B); all in the backends, none twice; ${series.length} series checked for duplicate samples`);
});

/** LogsQL: how many records match `filter`, and how many distinct ones (by agent and PID: the fake gives every slow
 * connect its own PID). */
async function logCountsIn(logs: Awaited<ReturnType<typeof startVictoriaLogs>>, filter: string, tenantB: boolean): Promise<{ total: number; distinct: number }> {
  const tenant = tenantB ? VICTORIA_LOGS_TENANTS.tenantB : VICTORIA_LOGS_TENANTS.default;
  const [row] = await logs.query(`${filter} | stats count() as total, count_uniq("test.agent", "process.pid") as distinct`, { tenant });
  return { total: Number(row?.total ?? 0), distinct: Number(row?.distinct ?? 0) };
}

/** How many of an agent's slow-connection records have their span in Jaeger exactly once (the record's trace holds
 * one span, the record's span id, of this agent). Throws on the first that does not. */
async function spansOnce(traces: Jaeger, logs: Awaited<ReturnType<typeof startVictoriaLogs>>, run: string, agent: string, tenantB: boolean): Promise<number> {
  const tenant = tenantB ? VICTORIA_LOGS_TENANTS.tenantB : VICTORIA_LOGS_TENANTS.default;
  const records = await logs.query(`"test.run":="${run}" "test.agent":="${agent}" | fields trace_id, span_id`, { tenant });
  let found = 0;
  for (let i = 0; i < records.length; i += 16) {
    await Promise.all(records.slice(i, i + 16).map(async (r) => {
      assert.ok(r.trace_id && r.span_id, `${agent}: a record without its span ids: ${JSON.stringify(r)}`);
      const spans = await traces.trace(r.trace_id);
      assert.deepEqual(spans.map((sp) => [sp.spanId, sp.resource['test.agent']]), [[r.span_id, agent]], `${agent}: trace ${r.trace_id}`);
      found++;
    }));
  }
  return found;
}

/** Waits until `pred` holds (errors count as not yet: a backend still starting). */
async function waitUntilAsync(what: string, pred: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  await waitFor(what, async () => ((await pred()) ? true : undefined), timeoutMs, 250);
}
