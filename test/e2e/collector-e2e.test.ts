// End to end, all real processes: connlat agent (real tcpstates eBPF source) -> OTLP gRPC -> our gateway collector
// (otel-config/gateway.yaml + the test overlay) -> Prometheus (remote write, standing in for Mimir) and the file
// exporter (standing in for Loki). Connections cross a link with a 40 ms one-way delay into a network namespace.
//   Fidelity: N connects -> histogram count +N exactly, median and mean within 10% of 40 ms, N slow-connection logs
//             carrying the agent's resource.
//   Routing:  an agent whose resource says k8s.namespace.name=tenant-b lands only in tenant B's exporters.
//   Vendor:   with vendor-apm.yaml merged in, a local OTLP/HTTP endpoint gets both tenants' data with the headers.
//   Teardown: no process, namespace, device or qdisc left.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import {
  E2E_OVERLAY,
  ManagedProcess,
  OTEL_CONFIG_DIR,
  descendantPids,
  sleep,
  startCollector,
  waitFor,
  type RunningCollector,
} from '../support/collector/collector.ts';
import { assertWithin, connectN, median, startGatewayAgent, stopGatewayAgent } from '../support/collector/gateway-agent.ts';
import { readLogRecords, type FlatLogRecord } from '../support/collector/file-exporter.ts';
import { stackSkipReason } from '../support/collector/stack.ts';
import { startPrometheus, type RunningPrometheus } from '../support/collector/prometheus.ts';
import {
  createDelayedLink,
  listTestArtifacts,
  processAlive,
  removeStaleArtifacts,
  type DelayedLink,
} from '../support/netns/netns.ts';

const N = 20; // connections across the delayed link for the fidelity check
const M = 5; // connections for the second tenant
const DELAY_MS = 40;
const SLOW_MS = 30; // under DELAY_MS: every connection across the link is "slow"
const EXPORT_INTERVAL_MS = 1000;
const TENANT_B = 'tenant-b';
const CLUSTER = 'e2e-cluster';

const { collector, skip } = await stackSkipReason();
const AGENT_OPTS = { slowMs: SLOW_MS, exportIntervalMs: EXPORT_INTERVAL_MS };

/** PIDs of the agents' children (stdbuf/tcpstates), recorded before each agent stops, for the leak check. */
const toolPids: number[] = [];
const stopAgent = async (agent: ManagedProcess) => void toolPids.push(...(await stopGatewayAgent(agent)));

interface CapturedRequest {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Body after Content-Encoding is undone (OTLP protobuf: attribute keys and strings appear verbatim). */
  body: Buffer;
}

/** A stand-in vendor OTLP/HTTP endpoint that records every request and answers 200 with an empty response. */
async function startVendorEndpoint(): Promise<{ server: Server; url: string; requests: CapturedRequest[] }> {
  const requests: CapturedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      requests.push({ path: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return { server, url: `http://127.0.0.1:${addr.port}`, requests };
}

const latencyFromBody = (r: FlatLogRecord): number => {
  const m = /connect took ([\d.]+) ms/.exec(String(r.body));
  assert.ok(m, `log body without a latency: ${String(r.body)}`);
  return Number(m[1]);
};

describe('gateway collector end to end: agent (tcpstates) -> otelcol-connlat -> Prometheus + files', { skip }, () => {
  let outDir = '';
  let prom: RunningPrometheus | undefined;
  let gateway: RunningCollector | undefined;
  let vendor: Awaited<ReturnType<typeof startVendorEndpoint>> | undefined;
  let link: DelayedLink | undefined;
  const processes: ManagedProcess[] = [];
  let portA = 0;
  let portB = 0;
  let tornDown: Promise<string[]> | undefined;

  const logsDefault = () => readLogRecords(join(outDir, 'logs-default.jsonl'));
  const logsTenantB = () => readLogRecords(join(outDir, 'logs-tenant-b.jsonl'));
  const onPort = (port: number) => (r: FlatLogRecord) => r.attributes['server.port'] === port;

  /** Stops everything this suite started; idempotent; returns what failed instead of throwing half-way. */
  const teardownAll = () => {
    tornDown ??= (async () => {
      const errors: string[] = [];
      const step = async (what: string, fn: () => Promise<unknown>) => {
        await fn().catch((err: unknown) => errors.push(`${what}: ${(err as Error).message}`));
      };
      for (const p of processes) await step(p.name, () => p.stop('SIGTERM', 15_000));
      if (gateway) await step('collector', () => gateway!.stop());
      if (prom) await step('prometheus', () => prom!.stop());
      if (vendor) await step('vendor endpoint', () => new Promise<void>((r) => vendor!.server.close(() => r())));
      if (link) await step('netns link', () => link!.teardown());
      if (outDir) await step('output dir', () => rm(outDir, { recursive: true, force: true }));
      return errors;
    })();
    return tornDown;
  };

  before(async () => {
    await removeStaleArtifacts();
    outDir = await mkdtemp(join(tmpdir(), 'connlat-e2e-gw-'));
    try {
      prom = await startPrometheus();
      vendor = await startVendorEndpoint();
      gateway = await startCollector({
        binary: collector.path!,
        configs: [join(OTEL_CONFIG_DIR, 'gateway.yaml'), E2E_OVERLAY, join(OTEL_CONFIG_DIR, 'vendor-apm.yaml')],
        env: {
          CONNLAT_VENDOR_OTLP_ENDPOINT: vendor.url,
          CONNLAT_VENDOR_HEADERS: '{"api-key": "e2e-vendor-key"}',
          CONNLAT_TEST_OUT_DIR: outDir,
          CONNLAT_TEST_REMOTE_WRITE_URL: prom.remoteWriteUrl,
          CONNLAT_TENANT_B: TENANT_B,
          CONNLAT_CLUSTER_NAME: 'gateway-default-cluster',
        },
      });
      link = await createDelayedLink({ delayMs: DELAY_MS });
      portA = 20000 + Math.floor(Math.random() * 20000);
      portB = portA + 1;
      await link.listen(portA);
    } catch (err) {
      await teardownAll();
      throw err;
    }
  });

  after(async () => {
    const errors = await teardownAll();
    assert.deepEqual(errors, [], 'teardown failed');
  });

  test(`fidelity: ${N} connects across a ${DELAY_MS} ms link arrive exactly, with the right latency and resource`, async () => {
    const promql = (m: string) => `${m}{server_port="${portA}"}`;
    const countQ = `sum(${promql('tcp_connect_duration_seconds_count')})`;
    assert.equal(await prom!.queryScalar(countQ), 0, 'fresh Prometheus already has data for the port');

    const agent = await startGatewayAgent(gateway!, { node: 'e2e-node-a', pod: 'connlat-e2e-a', namespace: 'connlat-system', cluster: CLUSTER }, AGENT_OPTS);
    processes.push(agent);
    assert.ok(descendantPids(agent.child.pid!).length > 0, 'the agent runs its tool as a child process');
    await connectN(link!.nsAddr, portA, N);

    const diag = () => `\nagent:\n${agent.tail()}\ncollector:\n${gateway!.process.tail()}`;
    await waitFor(`histogram count ${N} for server_port=${portA}`, async () => ((await prom!.queryScalar(countQ)) >= N ? true : undefined), 30_000, 500)
      .catch(async (err: Error) => assert.fail(`${err.message}; PromQL ${countQ} = ${await prom!.queryScalar(countQ)}${diag()}`));
    // Let a few more cumulative exports land: the count must stay N (no duplicates, e.g. passive opens counted).
    await sleep(3 * EXPORT_INTERVAL_MS + 500);
    assert.equal(await prom!.queryScalar(countQ), N, `histogram count for server_port=${portA}${diag()}`);

    // The series is under the default tenant only, with the agent's identity as labels.
    const series = await prom!.query(promql('tcp_connect_duration_seconds_count'));
    assert.ok(series.length >= 1);
    for (const s of series) {
      assert.equal(s.metric.connlat_tenant, 'default', JSON.stringify(s.metric));
      assert.equal(s.metric.k8s_cluster_name, CLUSTER, JSON.stringify(s.metric));
      assert.equal(s.metric.k8s_node_name, 'e2e-node-a', JSON.stringify(s.metric));
      assert.equal(s.metric.server_address, link!.nsAddr, JSON.stringify(s.metric));
      assert.equal(s.metric.network_transport, 'tcp', JSON.stringify(s.metric));
    }

    // Median from the histogram (PromQL) and mean from _sum/_count: both within 10% of the link delay.
    const medianQ = `histogram_quantile(0.5, sum by (le) (${promql('tcp_connect_duration_seconds_bucket')}))`;
    const promMedian = await prom!.queryScalar(medianQ);
    assertWithin(promMedian, DELAY_MS / 1000, 0.1, `PromQL ${medianQ}`);
    const meanQ = `sum(${promql('tcp_connect_duration_seconds_sum')}) / sum(${promql('tcp_connect_duration_seconds_count')})`;
    const promMean = await prom!.queryScalar(meanQ);
    assertWithin(promMean, DELAY_MS / 1000, 0.1, `PromQL ${meanQ}`);

    // N slow-connection log records in the default tenant's file (Loki stand-in), with the agent's resource.
    const records = await waitFor(
      `${N} slow-connection log records`,
      async () => {
        const rs = logsDefault().filter(onPort(portA));
        return rs.length >= N ? rs : undefined;
      },
      30_000,
      500,
    ).catch((err: Error) => assert.fail(`${err.message}: have ${logsDefault().filter(onPort(portA)).length}${diag()}`));
    await stopAgent(agent);
    await sleep(500); // file exporter flush_interval is 100 ms
    const final = logsDefault().filter(onPort(portA));
    assert.equal(final.length, N, 'exactly N log records (no duplicates after the shutdown flush)');
    for (const r of records) {
      assert.equal(r.eventName, 'tcp.connect.slow');
      assert.equal(r.severityText, 'WARN');
      assert.equal(r.severityNumber, 13);
      assert.equal(r.attributes['server.address'], link!.nsAddr);
      assert.equal(r.resource['service.name'], 'connlat');
      assert.equal(r.resource['host.name'], 'e2e-node-a');
      assert.equal(r.resource['k8s.node.name'], 'e2e-node-a');
      assert.equal(r.resource['k8s.pod.name'], 'connlat-e2e-a');
      assert.equal(r.resource['k8s.namespace.name'], 'connlat-system');
      assert.equal(r.resource['k8s.cluster.name'], CLUSTER, 'the agent sets it; the gateway only inserts when missing');
    }
    const logMedianMs = median(final.map(latencyFromBody));
    assertWithin(logMedianMs, DELAY_MS, 0.1, 'median latency from the log records');
    assert.equal(logsTenantB().filter(onPort(portA)).length, 0, 'tenant B received default-tenant logs');
    process.stdout.write(
      `# ${link!.method} link: PromQL median ${(promMedian * 1000).toFixed(2)} ms, mean ${(promMean * 1000).toFixed(2)} ms, ` +
        `log median ${logMedianMs.toFixed(2)} ms over ${N} connects\n`,
    );
  });

  test(`routing: an agent with k8s.namespace.name=${TENANT_B} reaches only tenant B's exporters`, async () => {
    await link!.listen(portB);
    const agent = await startGatewayAgent(gateway!, {
      node: 'e2e-node-b',
      pod: 'connlat-e2e-b',
      namespace: 'connlat-system',
      cluster: CLUSTER,
      resourceAttributes: `k8s.namespace.name=${TENANT_B}`,
    }, AGENT_OPTS);
    processes.push(agent);
    await connectN(link!.nsAddr, portB, M);
    const diag = () => `\nagent:\n${agent.tail()}\ncollector:\n${gateway!.process.tail()}`;

    const countB = `sum(tcp_connect_duration_seconds_count{server_port="${portB}", connlat_tenant="${TENANT_B}"})`;
    await waitFor(`tenant B count ${M}`, async () => ((await prom!.queryScalar(countB)) >= M ? true : undefined), 30_000, 500)
      .catch((err: Error) => assert.fail(`${err.message}${diag()}`));
    await waitFor(`${M} tenant B log records`, async () => (logsTenantB().filter(onPort(portB)).length >= M ? true : undefined), 30_000, 500)
      .catch((err: Error) => assert.fail(`${err.message}${diag()}`));
    await stopAgent(agent);
    await sleep(3 * EXPORT_INTERVAL_MS);

    assert.equal(await prom!.queryScalar(countB), M);
    const leaked = await prom!.query(`tcp_connect_duration_seconds_count{server_port="${portB}", connlat_tenant!="${TENANT_B}"}`);
    assert.deepEqual(leaked, [], 'tenant B metrics reached another tenant');
    assert.deepEqual(
      await prom!.query(`tcp_connect_duration_seconds_count{server_port="${portA}", connlat_tenant="${TENANT_B}"}`),
      [],
      'default-tenant metrics reached tenant B',
    );
    const bLogs = logsTenantB().filter(onPort(portB));
    assert.equal(bLogs.length, M);
    for (const r of bLogs) {
      assert.equal(r.resource['k8s.namespace.name'], TENANT_B);
      assert.equal(r.resource['k8s.node.name'], 'e2e-node-b');
    }
    assert.equal(logsDefault().filter(onPort(portB)).length, 0, 'tenant B logs reached the default tenant');
  });

  test('vendor APM block: the vendor endpoint got metrics and logs of both tenants, with its headers', async () => {
    const reqs = vendor!.requests;
    const byPath = (p: string) => reqs.filter((r) => r.path === p);
    assert.ok(byPath('/v1/metrics').length > 0, `no metrics export; paths: ${reqs.map((r) => r.path).join(', ')}`);
    assert.ok(byPath('/v1/logs').length > 0, `no logs export; paths: ${reqs.map((r) => r.path).join(', ')}`);
    for (const r of reqs) {
      assert.equal(r.headers['api-key'], 'e2e-vendor-key', `${r.path} without the vendor header`);
      assert.equal(r.headers['content-type'], 'application/x-protobuf');
      assert.equal(r.headers['content-encoding'], 'gzip');
    }
    const all = (p: string) => Buffer.concat(byPath(p).map((r) => r.body)).toString('latin1');
    const metrics = all('/v1/metrics');
    const logs = all('/v1/logs');
    assert.ok(metrics.includes('tcp.connect.duration'), 'metrics payload without tcp.connect.duration');
    assert.ok(logs.includes('tcp.connect.slow'), 'logs payload without tcp.connect.slow events');
    for (const node of ['e2e-node-a', 'e2e-node-b']) {
      assert.ok(metrics.includes(node) && logs.includes(node), `vendor did not get ${node}'s data`);
    }
    assert.ok(logs.includes(TENANT_B), 'vendor did not get tenant B');
  });

  test('teardown leaves no process, namespace, device or qdisc behind', async () => {
    const pids = [
      ...processes.map((p) => p.child.pid),
      gateway?.process.child.pid,
      prom?.process.child.pid,
      ...(link?.pids() ?? []),
    ];
    const devices = link?.devices ?? [];
    const ns = link?.ns;
    const errors = await teardownAll();
    assert.deepEqual(errors, []);
    for (const pid of pids) assert.equal(processAlive(pid), false, `process ${pid} still running`);
    assert.ok(toolPids.length > 0, 'recorded the agents\' tool processes');
    for (const pid of toolPids) assert.equal(processAlive(pid), false, `agent child (tcpstates) ${pid} still running`);
    const left = await listTestArtifacts();
    assert.ok(!left.namespaces.includes(ns!), `namespace ${ns} still exists`);
    for (const d of devices) assert.ok(!left.links.includes(d), `device ${d} still exists`);
    assert.deepEqual(left.netemQdiscs.filter((q) => devices.some((d) => q.includes(d))), []);
    assert.equal(existsSync(outDir), false);
  });
});
