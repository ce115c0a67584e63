// dashboards/: every PromQL query of the Grafana dashboard (panels and template variables) and every alert expression
// runs against VictoriaMetrics and against Prometheus, both holding real connlat data: the agent (real tcpstates eBPF
// source) -> our gateway collector (otel-config/gateway.yaml + victoria-metrics.yaml + mimir-remote-write.yaml, logs to
// the e2e overlay's files) -> VictoriaMetrics over OTLP and Prometheus over remote write. Connects cross a network
// namespace link with a 150 ms delay (slow), and hit a closed port (refused), so both alerts must fire. The Loki
// panels' selectors and filters are checked against the slow-connection log records the same gateway exported.
// promtool checks the rules file (test/deploy/alerts.test.ts runs its unit tests).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { findBackend } from '../support/backends/backend.ts';
import { gatewayWithBackends } from '../support/backends/gateway.ts';
import { startVictoriaMetrics, type VictoriaMetrics } from '../support/backends/victoria-metrics.ts';
import { E2E_OVERLAY, ManagedProcess, OTEL_CONFIG_DIR, REPO_ROOT, startCollector, waitFor, type RunningCollector } from '../support/collector/collector.ts';
import { attemptConnect, startGatewayAgent } from '../support/collector/gateway-agent.ts';
import { readLogRecords } from '../support/collector/file-exporter.ts';
import { stackSkipReason } from '../support/collector/stack.ts';
import { PROMETHEUS_BIN, startPrometheus, type RunningPrometheus } from '../support/collector/prometheus.ts';
import { createDelayedLink, removeStaleArtifacts, type DelayedLink } from '../support/netns/netns.ts';

const run = promisify(execFile);
const DASHBOARD = join(REPO_ROOT, 'dashboards/connlat-dashboard.json');
const ALERTS = join(REPO_ROOT, 'dashboards/connlat-alerts.yaml');
const PROMTOOL = join(PROMETHEUS_BIN, '..', 'promtool');
const CLUSTER = 'dashboards-test';
const DELAY_MS = 150; // above the 100 ms the slow alert and the "slower than 100 ms" panel use
const SLOW = 8;
const REFUSED = 60; // rate over 5m must pass the failure alert's 0.1/s floor: > 30 in the window

interface Target {
  refId: string;
  expr: string;
  datasource: { type: string };
}
interface Panel {
  id: number;
  title: string;
  type: string;
  targets: Target[];
  datasource: { type: string };
}
interface Dashboard {
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown; definition?: string }> };
}

const loadDashboard = async (): Promise<Dashboard> => JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;

/** Grafana's substitution for the variables the dashboard uses ("All" = .*), and its built-in intervals. */
function substitute(expr: string, vars: Record<string, string>): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__range', '5m')
    .replaceAll('$__interval', '15s')
    .replace(/\$\{?(\w+)\}?/g, (m, name: string) => vars[name] ?? m);
}

test('dashboard JSON: unique panel ids, every target names its datasource variable, only known variables', async () => {
  const d = await loadDashboard();
  const ids = d.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length);
  const declared = new Set(d.templating.list.map((v) => v.name));
  for (const p of d.panels) {
    assert.ok(p.targets.length > 0, p.title);
    for (const t of p.targets) {
      assert.ok(['prometheus', 'loki'].includes(t.datasource.type), `${p.title}: ${t.datasource.type}`);
      for (const [, name] of t.expr.matchAll(/\$\{?(\w+)\}?/g)) {
        if (!name!.startsWith('__')) assert.ok(declared.has(name!), `${p.title} uses undeclared $${name}`);
      }
    }
  }
  assert.ok(d.panels.some((p) => p.datasource.type === 'loki' && p.type === 'logs'), 'a Loki logs panel');
});

test('promtool check rules dashboards/connlat-alerts.yaml', async (t) => {
  if (!existsSync(PROMTOOL)) return t.skip(`${PROMTOOL} not found (apt-get install prometheus)`);
  const { stdout } = await run(PROMTOOL, ['check', 'rules', ALERTS]);
  assert.match(stdout, /SUCCESS: 2 rules found/);
});

const METRICS_BOTH_OVERLAY = join(REPO_ROOT, 'test/support/collector/metrics-both-overlay.yaml');
const { collector, skip: stackSkip } = await stackSkipReason();
const vmBinary = await findBackend('victoria-metrics');
const skip = stackSkip || (vmBinary.skip ?? false);
/** The PromQL backends every query runs against, by name. */
const BACKENDS = ['VictoriaMetrics', 'Prometheus'] as const;

describe('dashboard and alert queries against real connlat data in VictoriaMetrics and Prometheus', { skip, timeout: 5 * 60_000 }, () => {
  let outDir = '';
  let prom: RunningPrometheus;
  let vm: VictoriaMetrics;
  const backend = (name: (typeof BACKENDS)[number]) => (name === 'Prometheus' ? prom : vm);
  let gateway: RunningCollector;
  let link: DelayedLink;
  let agent: ManagedProcess;
  let slowPort = 0;
  let closedPort = 0;
  const vars: Record<string, string> = { namespace: '.*', workload: '.*' };

  before(async () => {
    await removeStaleArtifacts();
    outDir = await mkdtemp(join(tmpdir(), 'connlat-dash-'));
    [prom, vm] = await Promise.all([startPrometheus(), startVictoriaMetrics(vmBinary.path!)]);
    // Metrics to both (metrics-both-overlay.yaml), logs to the e2e overlay's files.
    const withVm = gatewayWithBackends({ metrics: vm });
    gateway = await startCollector({
      binary: collector.path!,
      configs: [...withVm.configs, E2E_OVERLAY, join(OTEL_CONFIG_DIR, 'mimir-remote-write.yaml'), METRICS_BOTH_OVERLAY],
      env: {
        ...withVm.env,
        CONNLAT_TEST_OUT_DIR: outDir,
        CONNLAT_TEST_REMOTE_WRITE_URL: prom.remoteWriteUrl,
        CONNLAT_MIMIR_REMOTE_WRITE_URL: prom.remoteWriteUrl,
      },
    });
    link = await createDelayedLink({ delayMs: DELAY_MS });
    slowPort = 20000 + Math.floor(Math.random() * 20000);
    closedPort = slowPort + 1;
    await link.listen(slowPort);
    agent = await startGatewayAgent(gateway, { node: 'node-1', pod: 'connlat-agent-test', namespace: 'connlat', cluster: CLUSTER }, { slowMs: 100, exportIntervalMs: 1000 });
    for (let i = 0; i < SLOW; i++) assert.equal(await attemptConnect(link.nsAddr, slowPort), true);
    for (let i = 0; i < REFUSED; i++) assert.equal(await attemptConnect(link.nsAddr, closedPort), false);
    for (const name of BACKENDS) {
      await waitFor(`the connects in ${name}`, async () => {
        const ok = await backend(name).queryScalar(`sum(tcp_connect_duration_seconds_count{server_port="${slowPort}"})`);
        const failed = await backend(name).queryScalar(`sum(tcp_connect_failures_total{server_port="${closedPort}"})`);
        return ok >= SLOW && failed >= REFUSED ? true : undefined;
      }, 60_000, 500);
      // The cluster variable's own query (label_values) picks the value the other queries are run with.
      const values = (await (await fetch(`${backend(name).url}/api/v1/label/k8s_cluster_name/values?match[]=tcp_connect_duration_seconds_count`)).json()) as { data: string[] };
      assert.deepEqual(values.data, [CLUSTER], name);
    }
    vars.cluster = CLUSTER;
  });

  after(async () => {
    await agent?.stop('SIGTERM', 15_000);
    await gateway?.stop();
    await prom?.stop();
    await vm?.backend.close();
    await link?.teardown();
    if (outDir) await rm(outDir, { recursive: true, force: true });
  });

  for (const name of BACKENDS) {
    test(`${name}: every Prometheus panel query returns data`, async (t) => {
      const d = await loadDashboard();
      let n = 0;
      for (const p of d.panels) {
        for (const target of p.targets.filter((x) => x.datasource.type === 'prometheus')) {
          const expr = substitute(target.expr, vars);
          const samples = await backend(name).query(expr);
          const finite = samples.filter((s) => Number.isFinite(s.value));
          assert.ok(finite.length > 0, `${p.title} [${target.refId}] returned no data: ${expr}`);
          t.diagnostic(`${p.title} [${target.refId}]: ${finite.map((s) => s.value.toPrecision(3)).join(', ')}`);
          n++;
        }
      }
      assert.ok(n >= 8, `${n} queries`);
    });

    test(`${name}: template variables' label_values queries return series (k8s_dst_* are empty without a cluster to enrich from)`, async () => {
      const d = await loadDashboard();
      for (const v of d.templating.list.filter((x) => x.type === 'query')) {
        const m = /^label_values\((.*), (\w+)\)$/.exec(v.definition!);
        assert.ok(m, v.definition);
        const res = await fetch(`${backend(name).url}/api/v1/series?match[]=${encodeURIComponent(substitute(m[1]!, vars))}`);
        const body = (await res.json()) as { status: string; data: unknown[] };
        assert.equal(body.status, 'success');
        assert.ok(body.data.length > 0, `${v.name}: no series`);
      }
    });

    test(`${name}: both alerts fire: slow connects to the delayed port, failures to the closed port`, async () => {
      const rules = parseYaml(await readFile(ALERTS, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
      const exprs = Object.fromEntries(rules.groups.flatMap((g) => g.rules).map((r) => [r.alert, r.expr]));
      // tcpstates sees every connect on this machine (other tests' too), so other destinations may alert as well:
      // assert on ours.
      const ports = (samples: Array<{ metric: Record<string, string> }>) => samples.map((s) => s.metric.server_port);
      const slow = await backend(name).query(exprs.ConnlatSlowConnects!);
      const slowOurs = slow.find((s) => s.metric.server_port === String(slowPort));
      assert.ok(slowOurs, `ConnlatSlowConnects did not fire for :${slowPort} (fired for ${ports(slow).join(', ')})`);
      assert.ok(slowOurs.value > DELAY_MS / 1000 && slowOurs.value <= 0.25, `p99 ${slowOurs.value}`);
      assert.ok(!ports(slow).includes(String(closedPort)), 'refused connects are failures, not slow connects');
      const failing = await backend(name).query(exprs.ConnlatConnectFailures!);
      const failingOurs = failing.find((s) => s.metric.server_port === String(closedPort));
      assert.ok(failingOurs, `ConnlatConnectFailures did not fire for :${closedPort} (fired for ${ports(failing).join(', ')})`);
      assert.equal(failingOurs.value, 1, 'every connect to the closed port failed');
      assert.ok(!ports(failing).includes(String(slowPort)), 'the delayed port had no failures');
    });
  }

  test('Loki panels: stream selector labels, line filter and metadata filter match the exported slow-connection logs', async () => {
    const records = readLogRecords(join(outDir, 'logs-default.jsonl')).filter((r) => r.attributes['server.port'] === slowPort);
    assert.equal(records.length, SLOW, 'one slow log per slow connect');
    const d = await loadDashboard();
    for (const p of d.panels) {
      for (const target of p.targets.filter((x) => x.datasource.type === 'loki')) {
        const expr = substitute(target.expr, vars);
        // Loki's OTLP ingestion indexes resource attributes with dots as underscores (service.name -> service_name).
        const selector = /\{([^}]*)\}/.exec(expr)![1]!;
        for (const [, label, op, value] of selector.matchAll(/(\w+)\s*(=~|=)\s*"([^"]*)"/g)) {
          const attr = label!.replaceAll('_', '.');
          for (const r of records) {
            const actual = String(r.resource[attr]);
            assert.ok(op === '=' ? actual === value : new RegExp(`^(?:${value})$`).test(actual), `${p.title}: ${label}${op}"${value}" vs ${actual}`);
          }
        }
        const lineFilter = /\|~ "([^"]*)"/.exec(expr)![1]!;
        for (const r of records) assert.match(String(r.body), new RegExp(lineFilter));
      }
    }
  });
});
