// End to end, all real processes, every assertion a query against a real backend: connlat agent (real tcpstates eBPF
// source) -> OTLP gRPC -> our gateway collector (otel-config/gateway.yaml + the VictoriaMetrics, VictoriaLogs, Jaeger,
// Mimir remote-write and vendor overlays) -> VictoriaMetrics (OTLP), Prometheus (remote write, standing in for Mimir;
// keeps exemplars), VictoriaLogs (OTLP, one AccountID per tenant), Jaeger v2 (OTLP gRPC). Connects cross a link with a
// 40 ms one-way delay into a network namespace: to a listener (slow), and to a closed port (refused after ~40 ms:
// failed, and slow).
//   Metrics:  VictoriaMetrics holds exactly N connects and F failures; the PromQL median and the mean within 10% of
//             40 ms; the series carry the agent's identity; Prometheus (remote write) holds the same counts.
//   Logs:     a LogsQL query returns every slow or failed connect, with its attributes and the agent's resource.
//   Traces:   every one of them has its span in Jaeger, found by the trace id on its log record; the histogram's
//             exemplar (Prometheus) points at one of those spans.
//   Routing:  an agent whose resource says k8s.namespace.name=tenant-b lands only under tenant B (VictoriaLogs
//             account, VictoriaMetrics tenant label).
//   Vendor:   with vendor-apm.yaml merged in, a local OTLP/HTTP endpoint gets both tenants' data with the headers.
//   Teardown: no process, namespace, device or qdisc left.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findBackends } from '../support/backends/backend.ts';
import { gatewayWithBackends, VICTORIA_LOGS_TENANTS } from '../support/backends/gateway.ts';
import { startJaeger, type Jaeger, type JaegerSpan } from '../support/backends/jaeger.ts';
import { startVictoriaLogs, type LogEntry, type VictoriaLogs } from '../support/backends/victoria-logs.ts';
import { startVictoriaMetrics, type VictoriaMetrics } from '../support/backends/victoria-metrics.ts';
import { ManagedProcess, OTEL_CONFIG_DIR, descendantPids, sleep, startCollector, waitFor, type RunningCollector } from '../support/collector/collector.ts';
import { assertWithin, connectN, median, startGatewayAgent, stopGatewayAgent } from '../support/collector/gateway-agent.ts';
import { startPrometheus, type RunningPrometheus } from '../support/collector/prometheus.ts';
import { stackSkipReason } from '../support/collector/stack.ts';
import { startVendorEndpoint, type VendorEndpoint } from '../support/collector/vendor-endpoint.ts';
import { createDelayedLink, listTestArtifacts, processAlive, removeStaleArtifacts, type DelayedLink } from '../support/netns/netns.ts';

const N = 20; // connects to the listener across the delayed link
const F = 5; // connects to a closed port across it: refused after the delay
const M = 5; // connects for the second tenant
const DELAY_MS = 40;
const SLOW_MS = 30; // under DELAY_MS: every connect across the link, refused ones too, is "slow"
const EXPORT_INTERVAL_MS = 1000;
const TENANT_B = 'tenant-b';
const CLUSTER = 'e2e-cluster';
const AGENT_OPTS = { slowMs: SLOW_MS, exportIntervalMs: EXPORT_INTERVAL_MS };
/** What the VictoriaMetrics overlay labels each tenant's series with (connlat_tenant, from CONNLAT_*_TENANT). */
const VM_TENANT = { default: 'connlat', tenantB: TENANT_B };
const METRICS_BOTH_OVERLAY = new URL('../support/collector/metrics-both-overlay.yaml', import.meta.url).pathname;

const { collector, skip: stackSkip } = await stackSkipReason();
const binaries = await findBackends();
const skip = stackSkip || (Object.values(binaries).find((b) => b.skip)?.skip ?? false);

/** The latency a slow-connection log body states: "... connect took 41.70 ms" or "... connect failed after 40.12 ms". */
function bodyLatencyMs(e: LogEntry): number {
  const m = /connect (?:took|failed after) ([\d.]+) ms/.exec(e._msg ?? '');
  assert.ok(m, `log body without a latency: ${e._msg}`);
  return Number(m[1]);
}

const spanMs = (s: JaegerSpan) => Number(s.endTimeUnixNano - s.startTimeUnixNano) / 1e6;

describe('end to end: agent (tcpstates) -> otelcol-connlat -> VictoriaMetrics, Prometheus, VictoriaLogs, Jaeger', { skip }, () => {
  let vm: VictoriaMetrics | undefined;
  let vl: VictoriaLogs | undefined;
  let jaeger: Jaeger | undefined;
  let prom: RunningPrometheus | undefined;
  let gateway: RunningCollector | undefined;
  let vendor: VendorEndpoint | undefined;
  let link: DelayedLink | undefined;
  const agents: ManagedProcess[] = [];
  /** PIDs of the agents' children (stdbuf/tcpstates), recorded before each agent stops, for the leak check. */
  const toolPids: number[] = [];
  const port = { slow: 0, refused: 0, tenantB: 0 };
  let tornDown: Promise<string[]> | undefined;

  const diag = () => `\ncollector:\n${gateway?.process.tail()}\n${agents.map((a) => `${a.name}:\n${a.tail()}`).join('\n')}`;
  /** LogsQL: every log entry of connects to `p` under a tenant's account. */
  const logsTo = async (p: number, tenant = VICTORIA_LOGS_TENANTS.default) => {
    await vl!.flush();
    return vl!.query(`"server.port":="${p}"`, { tenant });
  };

  /** The spans of a trace, once Jaeger has them (the gateway batches for up to 1 s). */
  const traceOf = (traceId: string) =>
    waitFor(`trace ${traceId} in Jaeger`, async () => {
      const spans = await jaeger!.trace(traceId);
      return spans.length ? spans : undefined;
    }, 15_000, 500);

  /**
   * Waits until VictoriaMetrics' `countQ` reaches `expected`. When it does not, stops the agent first: its last line
   * says what it read, rejected and lost (tcpstates sees every connect on the machine, and its perf buffer overflows
   * under another process's connect storm).
   */
  const awaitCount = (agent: ManagedProcess, countQ: string, expected: number) =>
    waitFor(`VictoriaMetrics: ${countQ} = ${expected}`, async () => ((await vm!.queryScalar(countQ)) >= expected ? true : undefined), 30_000, 500)
      .catch(async (err: Error) => {
        await agent.stop('SIGTERM', 15_000);
        assert.fail(`${err.message}: ${await vm!.queryScalar(countQ)}${diag()}`);
      });

  /** Stops everything this suite started; idempotent; returns what failed instead of throwing half-way. */
  const teardownAll = () => {
    tornDown ??= (async () => {
      const errors: string[] = [];
      const step = async (what: string, fn: () => Promise<unknown>) => {
        await fn().catch((err: unknown) => errors.push(`${what}: ${(err as Error).message}`));
      };
      for (const a of agents) await step(a.name, () => a.stop('SIGTERM', 15_000));
      if (gateway) await step('collector', () => gateway!.stop());
      for (const [what, b] of [['VictoriaMetrics', vm], ['VictoriaLogs', vl], ['Jaeger', jaeger]] as const) {
        if (b) await step(what, () => b.backend.close());
      }
      if (prom) await step('prometheus', () => prom!.stop());
      if (vendor) await step('vendor endpoint', () => vendor!.close());
      if (link) await step('netns link', () => link!.teardown());
      return errors;
    })();
    return tornDown;
  };

  before(async () => {
    await removeStaleArtifacts();
    try {
      [vm, vl, jaeger, prom, vendor] = await Promise.all([
        startVictoriaMetrics(binaries['victoria-metrics'].path!),
        startVictoriaLogs(binaries['victoria-logs'].path!),
        startJaeger(binaries.jaeger.path!),
        startPrometheus({ exemplars: true }),
        startVendorEndpoint(),
      ]);
      const backends = gatewayWithBackends({ metrics: vm, logs: vl, traces: jaeger });
      gateway = await startCollector({
        binary: collector.path!,
        configs: [
          ...backends.configs,
          join(OTEL_CONFIG_DIR, 'mimir-remote-write.yaml'),
          join(OTEL_CONFIG_DIR, 'vendor-apm.yaml'),
          METRICS_BOTH_OVERLAY,
        ],
        env: {
          ...backends.env,
          CONNLAT_MIMIR_REMOTE_WRITE_URL: prom.remoteWriteUrl,
          CONNLAT_VENDOR_OTLP_ENDPOINT: vendor.url,
          CONNLAT_VENDOR_HEADERS: '{"api-key": "e2e-vendor-key"}',
          CONNLAT_TENANT_B: TENANT_B,
          CONNLAT_CLUSTER_NAME: 'gateway-default-cluster',
        },
      });
      link = await createDelayedLink({ delayMs: DELAY_MS });
      port.slow = 20000 + Math.floor(Math.random() * 20000);
      port.refused = port.slow + 1;
      port.tenantB = port.slow + 2;
      await link.listen(port.slow);
      await link.listen(port.tenantB);

      // Tenant A's traffic, measured by one agent that is then stopped (SIGTERM: everything flushed).
      const agent = await startGatewayAgent(gateway, { node: 'e2e-node-a', pod: 'connlat-e2e-a', namespace: 'connlat-system', cluster: CLUSTER }, AGENT_OPTS);
      agents.push(agent);
      assert.ok(descendantPids(agent.child.pid!).length > 0, 'the agent runs its tool as a child process');
      await connectN(link.nsAddr, port.slow, N);
      await connectN(link.nsAddr, port.refused, F, false);
      const countQ = `sum(tcp_connect_duration_seconds_count{server_port="${port.slow}"})`;
      await awaitCount(agent, countQ, N);
      // A few more cumulative exports land: the count must stay N (no duplicates, e.g. passive opens counted).
      await sleep(3 * EXPORT_INTERVAL_MS + 500);
      toolPids.push(...(await stopGatewayAgent(agent)));
    } catch (err) {
      await teardownAll();
      throw err;
    }
  });

  after(async () => {
    assert.deepEqual(await teardownAll(), [], 'teardown failed');
  });

  test(`VictoriaMetrics: exactly ${N} connects and ${F} failures, median and mean within 10% of ${DELAY_MS} ms, the agent's identity as labels`, async () => {
    const sel = (m: string, p = port.slow) => `${m}{server_port="${p}"}`;
    await vm!.flush();
    assert.equal(await vm!.queryScalar(`sum(${sel('tcp_connect_duration_seconds_count')})`), N, diag());
    assert.equal(await vm!.queryScalar(`sum(${sel('tcp_connect_failures_total', port.refused)})`), F, diag());
    assert.deepEqual(await vm!.query(sel('tcp_connect_duration_seconds_count', port.refused)), [], 'refused connects are not in the histogram');

    const series = await vm!.query(sel('tcp_connect_duration_seconds_count'));
    assert.ok(series.length >= 1);
    for (const s of series) {
      const m = JSON.stringify(s.metric);
      assert.equal(s.metric.connlat_tenant, VM_TENANT.default, m);
      assert.equal(s.metric.service_name, 'connlat', m);
      assert.equal(s.metric.k8s_cluster_name, CLUSTER, m);
      assert.equal(s.metric.k8s_node_name, 'e2e-node-a', m);
      assert.equal(s.metric.k8s_pod_name, 'connlat-e2e-a', m);
      assert.equal(s.metric.server_address, link!.nsAddr, m);
      assert.equal(s.metric.network_transport, 'tcp', m);
    }

    const medianQ = `histogram_quantile(0.5, sum by (le) (${sel('tcp_connect_duration_seconds_bucket')}))`;
    const vmMedian = await vm!.queryScalar(medianQ);
    assertWithin(vmMedian, DELAY_MS / 1000, 0.1, `VictoriaMetrics ${medianQ}`);
    const meanQ = `sum(${sel('tcp_connect_duration_seconds_sum')}) / sum(${sel('tcp_connect_duration_seconds_count')})`;
    const vmMean = await vm!.queryScalar(meanQ);
    assertWithin(vmMean, DELAY_MS / 1000, 0.1, `VictoriaMetrics ${meanQ}`);
    process.stdout.write(`# ${link!.method} link: VictoriaMetrics median ${(vmMedian * 1000).toFixed(2)} ms, mean ${(vmMean * 1000).toFixed(2)} ms over ${N} connects\n`);
  });

  test('Prometheus remote write (mimir-remote-write.yaml): the same counts', async () => {
    assert.equal(await prom!.queryScalar(`sum(tcp_connect_duration_seconds_count{server_port="${port.slow}"})`), N, diag());
    assert.equal(await prom!.queryScalar(`sum(tcp_connect_failures_total{server_port="${port.refused}"})`), F, diag());
    const meanQ = `sum(tcp_connect_duration_seconds_sum{server_port="${port.slow}"}) / sum(tcp_connect_duration_seconds_count{server_port="${port.slow}"})`;
    assert.equal((await prom!.queryScalar(meanQ)).toFixed(6), (await vm!.queryScalar(meanQ)).toFixed(6), 'Prometheus and VictoriaMetrics agree');
  });

  test(`VictoriaLogs: LogsQL returns all ${N} slow and ${F} failed connects with their attributes and the agent's resource`, async () => {
    const slow = await logsTo(port.slow);
    const failed = await logsTo(port.refused);
    assert.equal(slow.length, N, `slow-connection records for :${port.slow}${diag()}`);
    assert.equal(failed.length, F, `failed-connection records for :${port.refused}${diag()}`);
    for (const e of [...slow, ...failed]) {
      const r = JSON.stringify(e);
      assert.equal(e.event_name, 'tcp.connect.slow', r);
      assert.equal(e.severity_text, 'WARN', r);
      assert.equal(e.severity_number, '13', r);
      assert.equal(e['server.address'], link!.nsAddr, r);
      assert.equal(e['network.transport'], 'tcp', r);
      assert.equal(e['network.type'], 'ipv4', r);
      assert.equal(e['client.address'], link!.hostAddr, r);
      assert.match(e['client.port'] ?? '', /^[1-9]\d*$/, r);
      assert.equal(e['process.pid'], String(process.pid), 'the test process made the connects');
      assert.ok(e['process.executable.name'], r);
      assert.equal(e['service.name'], 'connlat', r);
      assert.equal(e['host.name'], 'e2e-node-a', r);
      assert.equal(e['k8s.node.name'], 'e2e-node-a', r);
      assert.equal(e['k8s.pod.name'], 'connlat-e2e-a', r);
      assert.match(e['k8s.pod.uid'] ?? '', /^00000000-0000-4000-8000-\d{12}$/, r);
      assert.equal(e['k8s.namespace.name'], 'connlat-system', r);
      assert.equal(e['k8s.cluster.name'], CLUSTER, 'the agent sets it; the gateway only inserts when missing');
    }
    for (const e of slow) assert.match(e._msg!, /connect took [\d.]+ ms$/);
    for (const e of failed) assert.match(e._msg!, /connect failed after [\d.]+ ms$/);
    const logMedianMs = median(slow.map(bodyLatencyMs));
    assertWithin(logMedianMs, DELAY_MS, 0.1, 'median latency from the log records');
    assert.deepEqual(await logsTo(port.slow, VICTORIA_LOGS_TENANTS.tenantB), [], "tenant B's account holds default-tenant records");
    process.stdout.write(`# VictoriaLogs: median ${logMedianMs.toFixed(2)} ms over ${N} slow connects\n`);
  });

  test('Jaeger: every slow or failed connect has its span, found by the trace id on its log record', async () => {
    const entries = [...(await logsTo(port.slow)), ...(await logsTo(port.refused))];
    assert.equal(new Set(entries.map((e) => e.trace_id)).size, N + F, 'one trace per connect');
    const names = new Set<string>();
    for (const e of entries) {
      const r = JSON.stringify(e);
      assert.match(e.trace_id ?? '', /^[0-9a-f]{32}$/, r);
      assert.match(e.span_id ?? '', /^[0-9a-f]{16}$/, r);
      const spans = await traceOf(e.trace_id!);
      assert.equal(spans.length, 1, `one span per connect: ${r}`);
      const s = spans[0]!;
      names.add(s.name);
      assert.equal(s.spanId, e.span_id);
      assert.equal(s.kind, 3, 'SPAN_KIND_CLIENT');
      assert.equal(s.attributes['server.address'], link!.nsAddr);
      assert.equal(String(s.attributes['server.port']), e['server.port']);
      assert.equal(String(s.attributes['process.pid']), String(process.pid));
      assert.equal(s.resource['service.name'], 'connlat');
      assert.equal(s.resource['k8s.node.name'], 'e2e-node-a');
      const failed = /failed after/.test(e._msg!);
      assert.equal(s.statusCode === 2, failed, `status ERROR exactly for a failed connect: ${s.statusCode} ${r}`);
      if (failed) assert.ok(s.attributes['error.type'], `a failed connect's span names its error.type: ${JSON.stringify(s.attributes)}`);
      // The span runs from the SYN to the outcome: its duration is the measured latency (whole ns), which the log
      // states to 2 decimals (so within half its last digit).
      assert.ok(Math.abs(spanMs(s) - bodyLatencyMs(e)) <= 0.0051, `span ${spanMs(s)} ms vs log ${e._msg}`);
    }
    assert.equal(names.size, 1, `one low-cardinality span name: ${[...names].join(', ')}`);
    const [name] = names;
    assert.ok(!name!.includes(String(port.slow)) && !name!.includes(link!.nsAddr), `no address or port in the span name: ${name}`);
  });

  test("exemplar: the histogram's exemplar in Prometheus points at a slow connect's span in Jaeger", async () => {
    const slow = await logsTo(port.slow);
    const bySpan = new Map(slow.map((e) => [e.span_id, e]));
    const series = await prom!.queryExemplars(`tcp_connect_duration_seconds_bucket{server_port="${port.slow}"}`, 10 * 60_000);
    const exemplars = series.flatMap((s) => s.exemplars.map((x) => ({ ...x, le: Number(s.seriesLabels.le) })));
    assert.ok(exemplars.length > 0, `no exemplar on tcp_connect_duration_seconds_bucket{server_port="${port.slow}"}`);
    for (const x of exemplars) {
      const entry = bySpan.get(x.labels.span_id);
      assert.ok(entry, `exemplar ${JSON.stringify(x)} is none of the ${N} slow connects' spans`);
      assert.equal(x.labels.trace_id, entry.trace_id);
      const span = (await traceOf(x.labels.trace_id!)).find((s) => s.spanId === x.labels.span_id);
      assert.ok(span, "Jaeger has the exemplar's span under its trace id");
      assert.ok(Math.abs(x.value * 1000 - spanMs(span)) < 0.001, `exemplar value ${x.value} s vs span ${spanMs(span)} ms`);
      assert.ok(x.value <= x.le, `exemplar ${x.value} s in bucket le=${x.le}`);
    }
  });

  test(`routing: an agent with k8s.namespace.name=${TENANT_B} lands only under tenant B`, async () => {
    const agent = await startGatewayAgent(gateway!, {
      node: 'e2e-node-b',
      pod: 'connlat-e2e-b',
      namespace: 'connlat-system',
      cluster: CLUSTER,
      resourceAttributes: `k8s.namespace.name=${TENANT_B}`,
    }, AGENT_OPTS);
    agents.push(agent);
    await connectN(link!.nsAddr, port.tenantB, M);
    const countB = `sum(tcp_connect_duration_seconds_count{server_port="${port.tenantB}", connlat_tenant="${VM_TENANT.tenantB}"})`;
    await awaitCount(agent, countB, M);
    await sleep(3 * EXPORT_INTERVAL_MS);
    toolPids.push(...(await stopGatewayAgent(agent)));

    assert.equal(await vm!.queryScalar(countB), M);
    assert.deepEqual(await vm!.query(`tcp_connect_duration_seconds_count{server_port="${port.tenantB}", connlat_tenant!="${VM_TENANT.tenantB}"}`), [], 'tenant B metrics under another tenant');
    assert.deepEqual(await vm!.query(`tcp_connect_duration_seconds_count{server_port="${port.slow}", connlat_tenant="${VM_TENANT.tenantB}"}`), [], 'default-tenant metrics under tenant B');
    const bLogs = await logsTo(port.tenantB, VICTORIA_LOGS_TENANTS.tenantB);
    assert.equal(bLogs.length, M, `tenant B's records under tenant B's account${diag()}`);
    for (const e of bLogs) {
      assert.equal(e['k8s.namespace.name'], TENANT_B);
      assert.equal(e['k8s.node.name'], 'e2e-node-b');
      const [span] = await traceOf(e.trace_id!);
      assert.equal(span!.resource['k8s.namespace.name'], TENANT_B);
    }
    assert.deepEqual(await logsTo(port.tenantB), [], "tenant B's records under the default account");
  });

  test('vendor APM block: the vendor endpoint got metrics, logs and traces of both tenants, with its headers', async () => {
    const reqs = vendor!.requests;
    const byPath = (p: string) => reqs.filter((r) => r.path === p);
    for (const p of ['/v1/metrics', '/v1/logs', '/v1/traces']) {
      assert.ok(byPath(p).length > 0, `no ${p} export; paths: ${[...new Set(reqs.map((r) => r.path))].join(', ')}`);
    }
    for (const r of reqs) {
      assert.equal(r.headers['api-key'], 'e2e-vendor-key', `${r.path} without the vendor header`);
      assert.equal(r.headers['content-type'], 'application/x-protobuf');
      assert.equal(r.headers['content-encoding'], 'gzip');
    }
    const all = (p: string) => Buffer.concat(byPath(p).map((r) => r.body)).toString('latin1');
    const payload = { metrics: all('/v1/metrics'), logs: all('/v1/logs'), traces: all('/v1/traces') };
    assert.ok(payload.metrics.includes('tcp.connect.duration'), 'metrics payload without tcp.connect.duration');
    assert.ok(payload.logs.includes('tcp.connect.slow'), 'logs payload without tcp.connect.slow events');
    for (const [signal, text] of Object.entries(payload)) {
      for (const node of ['e2e-node-a', 'e2e-node-b']) assert.ok(text.includes(node), `vendor did not get ${node}'s ${signal}`);
      assert.ok(text.includes(TENANT_B), `vendor did not get tenant B's ${signal}`);
    }
  });

  test('teardown leaves no process, namespace, device or qdisc behind', async () => {
    const pids = [
      ...agents.map((p) => p.child.pid),
      gateway?.process.child.pid,
      prom?.process.child.pid,
      ...[vm, vl, jaeger].map((b) => b?.backend.process?.child.pid),
      ...(link?.pids() ?? []),
    ];
    const devices = link?.devices ?? [];
    const ns = link?.ns;
    const dataDirs = [vm, vl, jaeger].map((b) => b?.backend.dir);
    assert.deepEqual(await teardownAll(), []);
    for (const dir of dataDirs) assert.equal(dir !== undefined && existsSync(dir), false, `backend data ${dir} left behind`);
    for (const pid of pids) assert.equal(processAlive(pid), false, `process ${pid} still running`);
    assert.ok(toolPids.length > 0, "recorded the agents' tool processes");
    for (const pid of toolPids) assert.equal(processAlive(pid), false, `agent child (tcpstates) ${pid} still running`);
    const left = await listTestArtifacts();
    assert.ok(!left.namespaces.includes(ns!), `namespace ${ns} still exists`);
    for (const d of devices) assert.ok(!left.links.includes(d), `device ${d} still exists`);
    assert.deepEqual(left.netemQdiscs.filter((q) => devices.some((d) => q.includes(d))), []);
  });
});
