// `otelcol-connlat validate` on every configuration in otel-config/ (the base gateway.yaml alone, with each
// overlay, and with all of them), using our own collector build. Also: an unset required variable fails with a
// message naming it, and nothing the configs use is deprecated in the pinned release.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { E2E_OVERLAY, OTEL_CONFIG_DIR, findCollector, run, validateConfigs, type RunResult } from '../support/collector/collector.ts';

const collector = await findCollector();
const skip = collector.skip ? `${collector.skip}` : false;

/** Env each overlay needs to validate (its required variables), beyond gateway.yaml's defaults. */
const OVERLAY_ENV: Record<string, Record<string, string>> = {
  'tls.yaml': {}, // filled in before(): paths to a throwaway self-signed certificate
  'auth.yaml': { CONNLAT_GATEWAY_BEARER_TOKEN: 'validate-test-token' },
  'mimir-remote-write.yaml': {},
  'vendor-apm.yaml': {
    CONNLAT_VENDOR_OTLP_ENDPOINT: 'https://otlp.vendor.invalid',
    CONNLAT_VENDOR_HEADERS: '{"api-key": "validate-test-key"}',
  },
  'k8s-attributes.yaml': {},
  'debug.yaml': {},
};
/** Files in otel-config/ that are not collector configurations. */
const NOT_COLLECTOR_CONFIGS = new Set(['builder-config.yaml']);

const GATEWAY = join(OTEL_CONFIG_DIR, 'gateway.yaml');

function combined(r: RunResult): string {
  return `${r.stdout}\n${r.stderr}`;
}

function assertValid(r: RunResult, what: string): void {
  const out = combined(r);
  assert.equal(r.code, 0, `${what}: validate exited ${r.code}:\n${out}`);
  assert.doesNotMatch(out, /deprecat/i, `${what}: deprecation warning in the output:\n${out}`);
  assert.doesNotMatch(out, /unset environment variable/i, `${what}: a variable the test meant to set is unset:\n${out}`);
}

describe('otelcol-connlat validate', { skip }, () => {
  const binary = collector.path!;
  let tmp = '';

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'connlat-validate-'));
    // A real key pair, so a validator that opens the files would still pass.
    const r = await run(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=connlat-gateway',
        '-keyout', join(tmp, 'tls.key'), '-out', join(tmp, 'tls.crt')],
      { env: process.env, timeoutMs: 30_000 },
    );
    assert.equal(r.code, 0, `openssl: ${r.stderr}`);
    OVERLAY_ENV['tls.yaml'] = {
      CONNLAT_GATEWAY_TLS_CERT_FILE: join(tmp, 'tls.crt'),
      CONNLAT_GATEWAY_TLS_KEY_FILE: join(tmp, 'tls.key'),
    };
  });
  after(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('every file in otel-config/ is covered by this test', async () => {
    const files = (await readdir(OTEL_CONFIG_DIR)).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'));
    assert.ok(files.includes('gateway.yaml'));
    const uncovered = files.filter((f) => f !== 'gateway.yaml' && !NOT_COLLECTOR_CONFIGS.has(f) && !(f in OVERLAY_ENV));
    assert.deepEqual(uncovered, [], 'add new overlays (and the env they need) to OVERLAY_ENV');
  });

  test('gateway.yaml alone, every variable at its default', async () => {
    assertValid(await validateConfigs(binary, [GATEWAY], {}), 'gateway.yaml');
  });

  for (const overlay of Object.keys(OVERLAY_ENV)) {
    test(`gateway.yaml + ${overlay}`, async () => {
      const r = await validateConfigs(binary, [GATEWAY, join(OTEL_CONFIG_DIR, overlay)], OVERLAY_ENV[overlay]!);
      assertValid(r, overlay);
    });
  }

  test('gateway.yaml + every overlay at once', async () => {
    const overlays = Object.keys(OVERLAY_ENV).map((o) => join(OTEL_CONFIG_DIR, o));
    const env = Object.assign({}, ...Object.values(OVERLAY_ENV)) as Record<string, string>;
    assertValid(await validateConfigs(binary, [GATEWAY, ...overlays], env), 'all overlays');
  });

  test('gateway.yaml + the e2e test overlay (test/support/collector/e2e-overlay.yaml)', async () => {
    const r = await validateConfigs(binary, [GATEWAY, E2E_OVERLAY], {
      CONNLAT_TEST_OUT_DIR: tmp,
      CONNLAT_TEST_REMOTE_WRITE_URL: 'http://127.0.0.1:9/api/v1/write',
    });
    assertValid(r, 'e2e overlay');
  });

  test('auth.yaml without CONNLAT_GATEWAY_BEARER_TOKEN fails, naming the variable and the extension', async () => {
    const r = await validateConfigs(binary, [GATEWAY, join(OTEL_CONFIG_DIR, 'auth.yaml')], {});
    const out = combined(r);
    assert.notEqual(r.code, 0, `validate should fail without the token:\n${out}`);
    assert.match(out, /unset environment variable.*CONNLAT_GATEWAY_BEARER_TOKEN/is, out);
    assert.match(out, /bearertokenauth\/agents.*no bearer token provided/is, out);
  });

  test('vendor-apm.yaml without CONNLAT_VENDOR_OTLP_ENDPOINT fails, naming the variable and the exporter', async () => {
    const r = await validateConfigs(binary, [GATEWAY, join(OTEL_CONFIG_DIR, 'vendor-apm.yaml')], {});
    const out = combined(r);
    assert.notEqual(r.code, 0, `validate should fail without the endpoint:\n${out}`);
    assert.match(out, /unset environment variable.*CONNLAT_VENDOR_OTLP_ENDPOINT/is, out);
    assert.match(out, /otlp_http\/vendor/, out);
  });

  test('a misspelt component is rejected (validate really checks)', async () => {
    const r = await validateConfigs(binary, [GATEWAY, 'yaml:exporters::otlp_http/loki_default::endpiont: http://x'], {});
    assert.notEqual(r.code, 0, combined(r));
    assert.match(combined(r), /endpiont/, combined(r));
  });
});
