// TLS and bearer-token auth to our real gateway collector (otelcol-connlat, scripts/build-collector.sh) running the
// shipped overlays otel-config/tls.yaml and otel-config/auth.yaml over a file-writing test base. Certificates are made
// with openssl in a temp dir. The agent is configured only through the standard env: OTEL_EXPORTER_OTLP_ENDPOINT /
// _CERTIFICATE / _CLIENT_KEY / _CLIENT_CERTIFICATE / _HEADERS. With the right token everything arrives (TLS, and
// mTLS when the gateway requires client certificates); a wrong token is rejected (UNAUTHENTICATED, final: not
// retried), counted in connlat.export.failures and connlat.logs.dropped{reason=rejected}, logged once (sampled), and
// the agent keeps running.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findCollector, OTEL_CONFIG_DIR, startCollector, type RunningCollector } from '../support/collector/collector.ts';
import { readOtlpJson, runAgent, startAgent } from '../support/agent.ts';
import { counterBy, FAKES, floodTotals, histogramTotal, logBodies, sleep, waitUntil } from './helpers.ts';
import { spansOf } from '../telemetry/helpers.ts';
import { EXIT } from '../../src/exit-status.ts';

const BASE = fileURLToPath(new URL('../fixtures/collector/tls-auth-base.yaml', import.meta.url));
const TOKEN = 'connlat-test-token-5f1c';
const RECORDING = fileURLToPath(new URL('../fixtures/recordings/tcpconnlat-blog.txt', import.meta.url));

function makeCerts(dir: string): Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string> {
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=connlat test CA');
  for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'], ['client', 'extendedKeyUsage=clientAuth']]) {
    writeFileSync(f(`${name}.ext`), `${ext}\n`);
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=connlat test ${name}`);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.crt`), '-days', '2', '-extfile', f(`${name}.ext`));
  }
  return { ca: f('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: f('client.crt'), clientKey: f('client.key') };
}

async function gateway(t: any, certs: ReturnType<typeof makeCerts>, outDir: string, mtls: boolean): Promise<RunningCollector> {
  const found = await findCollector();
  if (!found.path) throw new Error(found.skip);
  const gw = await startCollector({
    binary: found.path,
    configs: [BASE, `${OTEL_CONFIG_DIR}/tls.yaml`, `${OTEL_CONFIG_DIR}/auth.yaml`],
    env: {
      CONNLAT_TEST_OUT_DIR: outDir,
      CONNLAT_GATEWAY_BEARER_TOKEN: TOKEN,
      CONNLAT_GATEWAY_TLS_CERT_FILE: certs.serverCert,
      CONNLAT_GATEWAY_TLS_KEY_FILE: certs.serverKey,
      CONNLAT_GATEWAY_TLS_CLIENT_CA_FILE: mtls ? certs.ca : '',
    },
  });
  t.after(() => gw.stop());
  return gw;
}

/** Runs the agent on the flood fake for ~3 s with the given env, stops it with SIGTERM, returns stderr and totals. */
async function runAgentAgainst(t: any, dir: string, env: Record<string, string>, extraArgs: string[] = []): Promise<{ stderr: string; events: number; slow: number; code: number | null }> {
  const totals = join(dir, `totals-${Math.random().toString(36).slice(2)}`);
  const agent = startAgent(
    ['--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-flood.mjs'), '--export-interval-ms', '1000', '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off', ...extraArgs],
    { FAKE_RATE: '200', FAKE_SECONDS: '2', FAKE_SLOW_EVERY: '20', FAKE_TOTAL_FILE: totals, ...env },
  );
  t.after(() => agent.stop('SIGTERM', 5000));
  await agent.waitForStderr(/reading tcpconnlat/, 30_000);
  await waitUntil('the fake tool totals', () => floodTotals(totals) !== undefined, 30_000);
  await sleep(2500); // a few export intervals: the agent must still be running (wrong token) or have delivered
  assert.equal(agent.child.exitCode, null, `the agent keeps running: ${agent.stderr()}`);
  const code = await agent.stop('SIGTERM', 20_000);
  return { stderr: agent.stderr(), code, ...floodTotals(totals)! };
}

const collectorMissing = async () => {
  const found = await findCollector();
  return found.path ? undefined : found.skip;
};

/** Certificates in a temp dir and a gateway requiring them (and client certificates when mtls). */
async function setUp(t: any, mtls: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-tls-'));
  const certs = makeCerts(dir);
  const outDir = join(dir, 'out');
  mkdirSync(outDir);
  return { dir, certs, outDir, gw: await gateway(t, certs, outDir, mtls) };
}

for (const mtls of [false, true]) {
  test(`${mtls ? 'mTLS' : 'TLS'} + bearer token via OTEL_EXPORTER_OTLP_* env: everything delivered to the real gateway`, { timeout: 120_000 }, async (t) => {
    const skip = await collectorMissing();
    if (skip) return t.skip(skip);
    const { dir, certs, outDir, gw } = await setUp(t, mtls);
    const env: Record<string, string> = {
      OTEL_EXPORTER_OTLP_ENDPOINT: `https://${gw.grpc}`,
      OTEL_EXPORTER_OTLP_CERTIFICATE: certs.ca,
      OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer ${TOKEN}`,
      ...(mtls ? { OTEL_EXPORTER_OTLP_CLIENT_KEY: certs.clientKey, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: certs.clientCert } : {}),
    };
    const run = await runAgentAgainst(t, dir, env);
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stderr, /export failed/);
    const files = ['metrics', 'logs', 'traces'].map((s) => join(outDir, `${s}.jsonl`));
    await waitUntil('the gateway files', () => files.every((f) => existsSync(f)), 10_000);
    await sleep(500);
    const metrics = readOtlpJson(join(outDir, 'metrics.jsonl')).metrics;
    const logs = readOtlpJson(join(outDir, 'logs.jsonl')).logs;
    assert.equal(histogramTotal(metrics), run.events, 'every connect arrived through TLS');
    assert.equal(logBodies(logs).length, run.slow, 'every slow record arrived through TLS');
    assert.equal(spansOf(readOtlpJson(join(outDir, 'traces.jsonl')).traces).length, run.slow, 'every slow connect\'s span arrived through TLS');
    t.diagnostic(`${mtls ? 'mTLS' : 'TLS'}: ${run.events} connects and ${run.slow} slow records delivered`);
  });
}

test('wrong bearer token: rejected, counted, logged once, the agent keeps running', { timeout: 120_000 }, async (t) => {
  const skip = await collectorMissing();
  if (skip) return t.skip(skip);
  const { dir, certs, outDir, gw } = await setUp(t, false);
  const local = join(dir, 'local.jsonl'); // a second exporter shows what the agent counted
  const run = await runAgentAgainst(
    t,
    dir,
    { OTEL_EXPORTER_OTLP_ENDPOINT: `https://${gw.grpc}`, OTEL_EXPORTER_OTLP_CERTIFICATE: certs.ca, OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer wrong-token' },
    ['--export', `otlp,otlp-json:${local}`],
  );
  // rejected data is undelivered data: the exit status says so, and one line says what
  assert.equal(run.code, EXIT.undelivered.code, run.stderr);
  assert.match(run.stderr, /ERROR +not delivered: metrics: the last export \(which holds every count\) failed \(16 UNAUTHENTICATED.*\) to otlp; \d+ slow-connection log records \(rejected: \d+/);
  const { metrics } = readOtlpJson(local);
  const failures = counterBy(metrics, 'connlat.export.failures', 'signal');
  assert.ok(failures.metrics! >= 3 && failures.logs! >= 1, `failures counted: ${JSON.stringify(failures)}`);
  const dropped = counterBy(metrics, 'connlat.logs.dropped', 'reason');
  assert.ok((dropped.rejected ?? 0) > 0, `rejected slow records counted: ${JSON.stringify(dropped)}`);
  assert.equal(run.stderr.match(/metrics export failed: 16 UNAUTHENTICATED/g)?.length, 1, `logged once (sampled): ${run.stderr}`);
  assert.match(run.stderr, /slow-connection log records dropped \(rejected\): \d+, the gateway answered UNAUTHENTICATED, which is final/);
  assert.ok(!existsSync(join(outDir, 'metrics.jsonl')) || readFileSync(join(outDir, 'metrics.jsonl'), 'utf8').trim() === '', 'nothing accepted by the gateway');
  t.diagnostic(`wrong token: export failures ${JSON.stringify(failures)}, slow records dropped ${JSON.stringify(dropped)}`);
});

test('an unreadable OTEL_EXPORTER_OTLP_CERTIFICATE or a client key without its certificate is named at startup', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-tls-'));
  const r = await runAgent(['--source', `file:${RECORDING}`, '--export', 'otlp', '--otlp-endpoint', 'https://127.0.0.1:9', '--shutdown-timeout-ms', '1000', '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off'], {
    env: { OTEL_EXPORTER_OTLP_CERTIFICATE: join(dir, 'missing-ca.crt'), OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY: join(dir, 'missing.key') },
    timeoutMs: 30_000,
  });
  assert.match(r.stderr, new RegExp(`ERROR OTEL_EXPORTER_OTLP_CERTIFICATE=${join(dir, 'missing-ca.crt')} cannot be read \\(ENOENT\\): OTLP metrics exports would go on without it and fail the TLS handshake`));
  assert.match(r.stderr, /ERROR OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY=.*missing\.key cannot be read \(ENOENT\)/);
  assert.match(r.stderr, /ERROR OTLP logs: a client key and a client certificate must be set together/);
});
