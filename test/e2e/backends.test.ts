// The real OTLP backends behind our gateway (issue 12), each a real process (test/support/backends/), each fed by
// otelcol-connlat with gateway.yaml + that backend's overlay from otel-config/, and every assertion a query against
// the backend:
//   VictoriaMetrics: the real agent replays a recording (tcpconnlat, every connect 40.00 ms) over OTLP gRPC; PromQL
//                    gives the histogram's count and sum exactly, histogram_quantile(0.5) from the buckets, the
//                    dashboards' label names, the failure counter (a tcpstates recording), tenant B's series, the
//                    same names over Prometheus remote write, and the series kept across stop()/start().
//   VictoriaLogs:    the same replay's slow-connection records, by LogsQL, under the default tenant's AccountID only;
//                    tenant B's records under its own only; stop()/start() on the same data keeps them.
//   Jaeger v2:       CLIENT spans (OTLP/JSON into the gateway's HTTP receiver; the agent emits no spans yet) found by
//                    trace id with their attributes and the resource the gateway completed, for both tenants;
//                    with badger storage a trace survives stop()/start().
// And the helpers' own edges: a backend whose port is taken fails at once; a port race is retried.
// Each backend's block skips, saying why, when its binary (scripts/build-backends.sh) or the collector
// (scripts/build-collector.sh) is not built.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runAgent } from '../support/agent.ts';
import { BackendProcess, answers200, backendDir, findBackends, type BackendName } from '../support/backends/backend.ts';
import { GATEWAY_CONFIG, VICTORIA_LOGS_TENANTS, gatewayWithBackends, type GatewayBackends } from '../support/backends/gateway.ts';
import { startJaeger, type Jaeger } from '../support/backends/jaeger.ts';
import { startVictoriaLogs, type LogEntry, type VictoriaLogs } from '../support/backends/victoria-logs.ts';
import { startVictoriaMetrics, type VictoriaMetrics } from '../support/backends/victoria-metrics.ts';
import { OTEL_CONFIG_DIR, findCollector, retryOnPortRace, startCollector, waitFor, type RunningCollector } from '../support/collector/collector.ts';
import { renderTcpconnlat, tcpconnlatHeader } from '../parse/render.ts';

const N = 20; // connects in the default tenant's recording
const M = 5; // connects in tenant B's recording
const LATENCY_MS = 40; // every recorded connect; above SLOW_MS, so each is also a slow-connection log record
const SLOW_MS = 30;
const CLUSTER = 'backends-e2e';
const TENANT_B = 'tenant-b';
const DEFAULT_TENANT = 'connlat'; // gateway.yaml's CONNLAT_DEFAULT_TENANT default
const DADDR = '10.96.0.10';
const RECORDINGS = fileURLToPath(new URL('../fixtures/recordings/', import.meta.url));

const collector = await findCollector();
const binaries = await findBackends();
const skipFor = (name: BackendName): string | false => collector.skip ?? binaries[name].skip ?? false;

let tmp = '';
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'connlat-backends-e2e-'));
});
after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** A tcpconnlat recording: `count` connects from 127.0.0.1 to DADDR:port, each LATENCY_MS. */
async function recording(name: string, port: number, count: number): Promise<string> {
  const lines = [tcpconnlatHeader(false, false)];
  for (let i = 0; i < count; i++) {
    lines.push(renderTcpconnlat({ pid: 4000 + i, comm: 'e2e-client', ip: 4, saddr: '127.0.0.1', daddr: DADDR, dport: port, lat: LATENCY_MS.toFixed(2) }));
  }
  const file = join(tmp, `${name}.txt`);
  await writeFile(file, lines.join('\n') + '\n');
  return file;
}

/** The real agent replays `file` into the gateway over OTLP gRPC; exit 0 means the gateway accepted everything. */
async function replay(gateway: RunningCollector, file: string, who: { node: string; tenant?: string }): Promise<void> {
  const run = await runAgent(
    ['--source', `file:${file}`, '--export', 'otlp', '--otlp-endpoint', `http://${gateway.grpc}`, '--slow-ms', String(SLOW_MS),
      '--health-addr', 'off', '--kubernetes', 'off', '--view', 'off'],
    {
      env: {
        CONNLAT_CLUSTER_NAME: CLUSTER,
        NODE_NAME: who.node,
        POD_NAME: `connlat-${who.node}`,
        POD_NAMESPACE: 'connlat-system',
        OTEL_RESOURCE_ATTRIBUTES: who.tenant ? `k8s.namespace.name=${who.tenant}` : '',
      },
    },
  );
  assert.equal(run.code, 0, `agent replay of ${file} exited ${run.code}:\n${run.stderr}`);
}

/** A port of its own for each recording, so every query selects exactly one recording's data. */
let nextPort = 20000 + Math.floor(Math.random() * 20000);
const uniquePort = () => nextPort++;

/** Starts the gateway with `backends`' overlays; asserts nothing failed to export when it stops. */
async function startGateway(backends: GatewayBackends): Promise<RunningCollector> {
  const { configs, env } = gatewayWithBackends(backends);
  return startCollector({ binary: collector.path!, configs, env: { ...env, CONNLAT_TENANT_B: TENANT_B, CONNLAT_CLUSTER_NAME: 'gateway-inserted' } });
}

/**
 * Stops the gateway and asserts the exporters to the backend under test (their ids contain `exporterIdPart`) never
 * failed. The other signals keep gateway.yaml's Mimir/Loki/Tempo addresses, which do not resolve here.
 */
async function stopGateway(gateway: RunningCollector | undefined, exporterIdPart: string): Promise<void> {
  if (!gateway) return;
  await gateway.stop();
  const failures = gateway.process.output
    .split('\n')
    .filter((l) => /Exporting failed|\terror\t/.test(l) && l.includes(`"otelcol.component.id": "`) && l.includes(exporterIdPart));
  assert.deepEqual(failures, [], `the gateway's ${exporterIdPart} exporters failed`);
}

describe('VictoriaMetrics: the agent\'s histogram and counter through the gateway, queried with PromQL', { skip: skipFor('victoria-metrics') }, () => {
  let vm: VictoriaMetrics | undefined;
  let gateway: RunningCollector | undefined;
  before(async () => {
    vm = await startVictoriaMetrics(binaries['victoria-metrics'].path!);
    gateway = await startGateway({ metrics: vm });
  });
  after(async () => {
    try {
      await stopGateway(gateway, 'victoriametrics');
    } finally {
      await vm?.backend.close();
    }
  });

  const diag = () => `\ngateway:\n${gateway!.process.tail()}\nvictoria-metrics:\n${vm!.backend.tail()}`;
  const waitForScalar = (promql: string, want: number) =>
    waitFor(`${promql} = ${want}`, async () => {
      await vm!.flush(); // otherwise new series become searchable only after VictoriaMetrics' own flush, ~9 s here
      return (await vm!.queryScalar(promql)) >= want ? true : undefined;
    }, 30_000, 250)
      .catch(async (err: Error) => assert.fail(`${err.message}; now ${await vm!.queryScalar(promql)}${diag()}`));

  test(`${N} connects of ${LATENCY_MS} ms: count, sum, histogram_quantile and the dashboards' labels`, async () => {
    const port = uniquePort();
    await replay(gateway!, await recording('vm-default', port, N), { node: 'node-a' });
    const sel = `{server_port="${port}"}`;
    await waitForScalar(`sum(tcp_connect_duration_seconds_count${sel})`, N);
    assert.equal(await vm!.queryScalar(`sum(tcp_connect_duration_seconds_count${sel})`), N);
    const sum = await vm!.queryScalar(`sum(tcp_connect_duration_seconds_sum${sel})`);
    assert.ok(Math.abs(sum - (N * LATENCY_MS) / 1000) < 1e-9, `sum ${sum}`);
    // Every connect is in the (25 ms, 50 ms] bucket; linear interpolation puts the median half way: 37.5 ms.
    const median = await vm!.queryScalar(`histogram_quantile(0.5, sum by (le) (tcp_connect_duration_seconds_bucket${sel}))`);
    assert.ok(Math.abs(median - 0.0375) < 1e-9, `histogram_quantile(0.5) = ${median}`);
    const buckets = await vm!.query(`tcp_connect_duration_seconds_bucket${sel}`);
    assert.equal(buckets.find((b) => b.metric.le === '0.05')?.value, N, 'le="0.05" holds every connect');
    assert.equal(buckets.find((b) => b.metric.le === '0.025')?.value, 0, 'le="0.025" holds none');
    assert.equal(buckets.find((b) => b.metric.le === '+Inf')?.value, N);

    const [series, ...more] = await vm!.query(`tcp_connect_duration_seconds_count${sel}`);
    assert.ok(series, 'no series');
    assert.deepEqual(more, [], 'one series for one destination');
    const labels = series.metric;
    assert.equal(labels.__name__, 'tcp_connect_duration_seconds_count', JSON.stringify(labels));
    assert.equal(labels.connlat_tenant, DEFAULT_TENANT, JSON.stringify(labels));
    assert.equal(labels.server_address, DADDR, JSON.stringify(labels));
    assert.equal(labels.network_transport, 'tcp', JSON.stringify(labels));
    // Resource attributes are labels too (what the dashboards' k8s_cluster_name selector needs).
    assert.equal(labels.k8s_cluster_name, CLUSTER, JSON.stringify(labels));
    assert.equal(labels.k8s_node_name, 'node-a', JSON.stringify(labels));
    assert.equal(labels.service_name, 'connlat', JSON.stringify(labels));
  });

  test('failed connects: tcp_connect_failures_total from a tcpstates recording', async () => {
    // tcpstates-w.txt: 5 failed connects (test/fixtures/recordings/README.md), to ports no other test uses here.
    await replay(gateway!, join(RECORDINGS, 'tcpstates-w.txt'), { node: 'node-failures' });
    const q = `sum(tcp_connect_failures_total{k8s_node_name="node-failures"})`;
    await waitForScalar(q, 5);
    assert.equal(await vm!.queryScalar(q), 5);
  });

  test(`tenant B: its series carry connlat_tenant="${TENANT_B}" and no other tenant's`, async () => {
    const port = uniquePort();
    await replay(gateway!, await recording('vm-tenant-b', port, M), { node: 'node-b', tenant: TENANT_B });
    await waitForScalar(`sum(tcp_connect_duration_seconds_count{server_port="${port}", connlat_tenant="${TENANT_B}"})`, M);
    assert.deepEqual(await vm!.query(`tcp_connect_duration_seconds_count{server_port="${port}", connlat_tenant!="${TENANT_B}"}`), []);
    assert.deepEqual(await vm!.query(`tcp_connect_duration_seconds_count{k8s_node_name="node-a", connlat_tenant="${TENANT_B}"}`), []);
  });

  test('Prometheus remote write (mimir-remote-write.yaml) into the same VictoriaMetrics: the same names', async () => {
    const viaRemoteWrite = await startCollector({
      binary: collector.path!,
      configs: [GATEWAY_CONFIG, join(OTEL_CONFIG_DIR, 'mimir-remote-write.yaml')],
      env: { CONNLAT_MIMIR_REMOTE_WRITE_URL: vm!.remoteWriteUrl },
    });
    try {
      const port = uniquePort();
      await replay(viaRemoteWrite, await recording('vm-remote-write', port, M), { node: 'node-rw' });
      const sel = `{server_port="${port}"}`;
      await waitForScalar(`sum(tcp_connect_duration_seconds_count${sel})`, M);
      const median = await vm!.queryScalar(`histogram_quantile(0.5, sum by (le) (tcp_connect_duration_seconds_bucket${sel}))`);
      assert.ok(Math.abs(median - 0.0375) < 1e-9, `histogram_quantile(0.5) = ${median}`);
      const [series] = await vm!.query(`tcp_connect_duration_seconds_count${sel}`);
      // The collector's own translation: job = service.name, and the resource as labels (resource_to_telemetry_conversion).
      assert.equal(series?.metric.job, 'connlat', JSON.stringify(series?.metric));
      assert.equal(series?.metric.k8s_node_name, 'node-rw', JSON.stringify(series?.metric));
    } finally {
      await viaRemoteWrite.stop();
    }
  });

  test('stop() and start() again on the same data: the series are still there', async () => {
    const q = `sum(tcp_connect_duration_seconds_count{k8s_node_name="node-a"})`;
    assert.equal(await vm!.queryScalar(q), N, 'runs after the first test');
    assert.deepEqual(await vm!.backend.stop(), { code: 0, signal: null }, vm!.backend.tail());
    await vm!.backend.start();
    assert.equal(await vm!.queryScalar(q), N);
  });
});

describe('VictoriaLogs: slow-connection records through the gateway, per tenant, queried with LogsQL', { skip: skipFor('victoria-logs') }, () => {
  let vl: VictoriaLogs | undefined;
  let gateway: RunningCollector | undefined;
  before(async () => {
    vl = await startVictoriaLogs(binaries['victoria-logs'].path!);
    gateway = await startGateway({ logs: vl });
  });
  after(async () => {
    try {
      await stopGateway(gateway, 'victorialogs');
    } finally {
      await vl?.backend.close();
    }
  });

  const { default: tenantDefault, tenantB } = VICTORIA_LOGS_TENANTS;
  const diag = () => `\ngateway:\n${gateway!.process.tail()}\nvictoria-logs:\n${vl!.backend.tail()}`;
  const onPort = (port: number) => `server.port:=${port}`;
  const waitForEntries = (logsql: string, tenant: typeof tenantDefault, want: number): Promise<LogEntry[]> =>
    waitFor(`${want} entries for ${logsql}`, async () => {
      await vl!.flush();
      const rows = await vl!.query(logsql, { tenant });
      return rows.length >= want ? rows : undefined;
    }, 30_000, 250).catch(async (err: Error) => assert.fail(`${err.message}: have ${(await vl!.query(logsql, { tenant })).length}${diag()}`));

  let defaultPort = 0;

  test(`${N} slow connects: ${N} records under the default tenant's AccountID, none under tenant B's`, async () => {
    defaultPort = uniquePort();
    await replay(gateway!, await recording('vl-default', defaultPort, N), { node: 'node-a' });
    const rows = await waitForEntries(onPort(defaultPort), tenantDefault, N);
    await vl!.flush();
    assert.equal((await vl!.query(onPort(defaultPort), { tenant: tenantDefault })).length, N, 'exactly N, no duplicates');
    assert.deepEqual(await vl!.query(onPort(defaultPort), { tenant: tenantB }), [], 'tenant B sees the default tenant\'s records');
    for (const r of rows) {
      assert.match(r._msg ?? '', new RegExp(`^e2e-client\\[\\d+\\] 127\\.0\\.0\\.1 -> ${DADDR.replaceAll('.', '\\.')}:${defaultPort} connect took 40\\.00 ms$`), JSON.stringify(r));
      assert.equal(r.event_name, 'tcp.connect.slow', JSON.stringify(r));
      assert.equal(r.severity_text, 'WARN');
      assert.equal(r['server.address'], DADDR);
      assert.equal(r['process.executable.name'], 'e2e-client');
      // The agent's resource, as stream fields.
      assert.equal(r['service.name'], 'connlat');
      assert.equal(r['k8s.cluster.name'], CLUSTER);
      assert.equal(r['k8s.node.name'], 'node-a');
      assert.equal(r['k8s.namespace.name'], 'connlat-system');
      assert.match(r._stream ?? '', /service\.name="connlat"/, r._stream);
    }
    // The LogsQL a user would write: a stream filter plus a phrase, and a stats pipe.
    const stats = await vl!.query(`_stream:{k8s.cluster.name="${CLUSTER}"} "connect took" ${onPort(defaultPort)} | stats count() as n`, { tenant: tenantDefault });
    assert.deepEqual(stats, [{ n: String(N) }]);
  });

  test(`tenant B: ${M} records under its AccountID only`, async () => {
    const port = uniquePort();
    await replay(gateway!, await recording('vl-tenant-b', port, M), { node: 'node-b', tenant: TENANT_B });
    const rows = await waitForEntries(onPort(port), tenantB, M);
    await vl!.flush();
    assert.equal((await vl!.query(onPort(port), { tenant: tenantB })).length, M);
    for (const r of rows) assert.equal(r['k8s.namespace.name'], TENANT_B);
    assert.deepEqual(await vl!.query(onPort(port), { tenant: tenantDefault }), [], 'the default tenant sees tenant B\'s records');
  });

  test('stop() and start() again on the same data: the records are still there and new ones land', async () => {
    assert.ok(defaultPort, 'runs after the first test');
    const exit = await vl!.backend.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, `VictoriaLogs exit on SIGTERM:\n${vl!.backend.tail()}`);
    await vl!.backend.start();
    assert.equal((await vl!.query(onPort(defaultPort), { tenant: tenantDefault })).length, N, 'records kept across the restart');
    const port = uniquePort();
    await replay(gateway!, await recording('vl-after-restart', port, 3), { node: 'node-a' });
    await waitForEntries(onPort(port), tenantDefault, 3);
  });
});

describe('Jaeger v2: spans through the gateway, found by trace id', { skip: skipFor('jaeger') }, () => {
  let jaeger: Jaeger | undefined;
  let gateway: RunningCollector | undefined;
  before(async () => {
    jaeger = await startJaeger(binaries.jaeger.path!);
    gateway = await startGateway({ traces: jaeger });
  });
  after(async () => {
    try {
      await stopGateway(gateway, 'jaeger');
    } finally {
      await jaeger?.backend.close();
    }
  });

  const diag = () => `\ngateway:\n${gateway!.process.tail()}\njaeger:\n${jaeger!.backend.tail()}`;

  /** One CLIENT span (a refused connect) as OTLP/JSON into the gateway's HTTP receiver; returns its ids. */
  async function sendSpan(to: RunningCollector, resource: Record<string, string>, port: number): Promise<{ traceId: string; spanId: string; startNs: bigint }> {
    const traceId = randomBytes(16).toString('hex');
    const spanId = randomBytes(8).toString('hex');
    const endNs = BigInt(Date.now()) * 1_000_000n;
    const startNs = endNs - 40_000_000n;
    const str = (key: string, v: string) => ({ key, value: { stringValue: v } });
    const body = {
      resourceSpans: [{
        resource: { attributes: Object.entries(resource).map(([k, v]) => str(k, v)) },
        scopeSpans: [{
          scope: { name: 'connlat' },
          spans: [{
            traceId, spanId, name: 'tcp.connect', kind: 3,
            startTimeUnixNano: String(startNs), endTimeUnixNano: String(endNs),
            status: { code: 2, message: 'connection refused' },
            attributes: [str('server.address', DADDR), { key: 'server.port', value: { intValue: String(port) } }, str('error.type', 'refused')],
          }],
        }],
      }],
    };
    const res = await fetch(`http://${to.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(res.status, 200, await res.text());
    return { traceId, spanId, startNs };
  }

  for (const tenant of [undefined, TENANT_B]) {
    test(`a CLIENT span${tenant ? ` of ${tenant}` : ''} by its trace id, with attributes, status and resource`, async () => {
      const port = uniquePort();
      const resource = { 'service.name': 'connlat', 'k8s.node.name': 'node-a', 'k8s.namespace.name': tenant ?? 'connlat-system' };
      const sent = await sendSpan(gateway!, resource, port);
      const spans = await waitFor(`trace ${sent.traceId} in Jaeger`, async () => {
        const s = await jaeger!.trace(sent.traceId);
        return s.length > 0 ? s : undefined;
      }, 30_000, 250).catch((err: Error) => assert.fail(`${err.message}${diag()}`));
      assert.equal(spans.length, 1, JSON.stringify(spans, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
      const [span] = spans;
      assert.equal(span!.traceId, sent.traceId);
      assert.equal(span!.spanId, sent.spanId);
      assert.equal(span!.name, 'tcp.connect');
      assert.equal(span!.kind, 3, 'CLIENT');
      assert.equal(span!.statusCode, 2, 'ERROR');
      assert.equal(span!.startTimeUnixNano, sent.startNs);
      assert.equal(span!.endTimeUnixNano - span!.startTimeUnixNano, 40_000_000n);
      assert.equal(span!.attributes['server.address'], DADDR);
      assert.equal(span!.attributes['server.port'], port);
      assert.equal(span!.attributes['error.type'], 'refused');
      assert.equal(span!.resource['service.name'], 'connlat');
      assert.equal(span!.resource['k8s.namespace.name'], resource['k8s.namespace.name']);
      assert.equal(span!.resource['k8s.cluster.name'], 'gateway-inserted', 'the gateway\'s resource processor ran on it');
    });
  }

  test('an unknown trace id: no spans', async () => {
    assert.deepEqual(await jaeger!.trace(randomBytes(16).toString('hex')), []);
  });

  test('badger storage: a trace survives stop() and start() on the same directory', async () => {
    const onDisk = await startJaeger(binaries.jaeger.path!, { storage: 'badger' });
    const direct = await startCollector({ binary: collector.path!, ...gatewayWithBackends({ traces: onDisk }) });
    try {
      const sent = await sendSpan(direct, { 'service.name': 'connlat' }, uniquePort());
      await waitFor('the span in badger', async () => ((await onDisk.trace(sent.traceId)).length ? true : undefined), 30_000, 250);
      assert.deepEqual(await onDisk.backend.stop(), { code: 0, signal: null }, onDisk.backend.tail());
      await onDisk.backend.start();
      assert.equal((await onDisk.trace(sent.traceId))[0]?.spanId, sent.spanId, 'the span after the restart');
    } finally {
      await direct.stop();
      await onDisk.backend.close();
    }
  });
});

describe('test support: a backend that cannot start fails fast; a port race is retried', { skip: skipFor('victoria-metrics') }, () => {
  test('a taken port: start() rejects as soon as the process exits, naming the cause', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as AddressInfo).port;
    const dir = await backendDir('victoria-metrics');
    const backend = new BackendProcess({
      name: 'victoria-metrics',
      binary: binaries['victoria-metrics'].path!,
      dir,
      args: [`-httpListenAddr=127.0.0.1:${port}`, `-storageDataPath=${join(dir, 'data')}`],
      ready: () => answers200(`http://127.0.0.1:${port}/health`),
    });
    const started = Date.now();
    try {
      await assert.rejects(backend.start(), /exited early[\s\S]*address already in use/);
      assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    } finally {
      taken.close();
      await backend.close();
    }
  });

  test('retryOnPortRace: three attempts for "address already in use", one for anything else', async () => {
    let calls = 0;
    await assert.rejects(retryOnPortRace(async () => {
      calls++;
      throw new Error('listen tcp 127.0.0.1:1: bind: address already in use');
    }), /address already in use/);
    assert.equal(calls, 3);
    calls = 0;
    assert.equal(await retryOnPortRace(async () => (++calls < 2 ? Promise.reject(new Error('bind: address already in use')) : 'up')), 'up');
    assert.equal(calls, 2);
    calls = 0;
    await assert.rejects(retryOnPortRace(async () => {
      calls++;
      throw new Error('config invalid');
    }), /config invalid/);
    assert.equal(calls, 1);
  });
});
