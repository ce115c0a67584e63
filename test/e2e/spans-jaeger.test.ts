// Connect spans into a real trace backend: the agent (CLI, a replay of connlat-probe's recorded output) exports spans
// over OTLP gRPC straight to Jaeger v2 (scripts/build-backends.sh; in-memory storage, self-tracing off; chosen by
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, metrics and logs going to the test receiver) and everything to an OTLP/JSON
// file; every span is then found in Jaeger by the trace id that the log record or the histogram's exemplar carries,
// with its name, kind, duration, status and connlat-probe attributes. (The gateway path is issue 12 section 3.)
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EXIT } from '../../src/exit-status.ts';
import { readOtlpJson, runAgent } from '../support/agent.ts';
import { freePort } from '../support/net.ts';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { attrs, lastMetric, logRecords, spansOf } from '../telemetry/helpers.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

function jaegerBinary(): string | undefined {
  try {
    const line = execFileSync('bash', [join(REPO, 'scripts/build-backends.sh'), '--path'], { encoding: 'utf8' }).split('\n').find((l) => l.startsWith('jaeger='));
    const path = line?.slice('jaeger='.length).trim();
    if (!path) return undefined;
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    return undefined;
  }
}

/** Jaeger v2: OTLP gRPC receiver -> in-memory store <- query API, all on loopback ports of our own. */
const JAEGER_CONFIG = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    traces:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: mem
    grpc:
      endpoint: 127.0.0.1:\${env:JAEGER_QUERY_GRPC_PORT}
    http:
      endpoint: 127.0.0.1:\${env:JAEGER_QUERY_HTTP_PORT}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:\${env:JAEGER_OTLP_GRPC_PORT}
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`;

// bpf-tools/connlat-probe's own output on the test VM (the fixture of test/parse/connlat-probe.test.ts), without its
// last line (a refusal like the first)
const PROBE_OUTPUT = readFileSync(new URL('../fixtures/connlat-probe-recorded.txt', import.meta.url), 'latin1').split('\n').slice(0, 8).join('\n') + '\n';

const binary = jaegerBinary();

test('every connect span is in Jaeger under the trace id its log record and exemplar carry', { skip: binary ? false : 'Jaeger not built (scripts/build-backends.sh; .ci/run builds it)', timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-jaeger-'));
  const [otlpPort, queryGrpc, queryHttp] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(join(dir, 'jaeger.yaml'), JAEGER_CONFIG);
  const jaeger = spawn(binary!, ['--config', join(dir, 'jaeger.yaml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    // its own SDK would trace itself to 127.0.0.1:4317, where another test's collector may listen
    env: { ...process.env, JAEGER_OTLP_GRPC_PORT: String(otlpPort), JAEGER_QUERY_GRPC_PORT: String(queryGrpc), JAEGER_QUERY_HTTP_PORT: String(queryHttp), OTEL_TRACES_EXPORTER: 'none', OTEL_SDK_DISABLED: 'true' },
  });
  let jaegerErr = '';
  jaeger.stderr!.on('data', (d) => (jaegerErr += d));
  t.after(() => jaeger.kill('SIGTERM'));
  const api = async (path: string): Promise<any> => {
    const res = await fetch(`http://127.0.0.1:${queryHttp}${path}`);
    return res.json();
  };
  for (let start = Date.now(); ; ) {
    try {
      await api('/api/services');
      break;
    } catch {
      if (Date.now() - start > 30_000) throw new Error(`Jaeger did not start: ${jaegerErr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  // Jaeger takes traces only: metrics and logs go to the test receiver, spans to Jaeger by the per-signal variable
  const receiver = await startOtlpReceiver();
  t.after(() => receiver.close());
  const out = join(dir, 'out.jsonl');
  const run = await runAgent(['--source', '-', '--export', `otlp,otlp-json:${out}`, '--health-addr', 'off'], {
    input: PROBE_OUTPUT,
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${otlpPort}` },
  });
  assert.equal(run.code, EXIT.ok.code, run.stderr);
  const { metrics, logs, traces } = readOtlpJson(out);
  const spans = spansOf(traces);
  assert.equal(receiver.traces.length, 0, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT sent the spans elsewhere');
  assert.equal(logRecords(receiver.logs).length, 5);
  // slow (> 100 ms): 1011.65 ok and four failures; fast failures: the refusal; the fast ok connect: none
  assert.deepEqual(spans.map((s) => attrs(s.attributes)['server.port']), [7005, 7004, 7003, 7002, 7001, 7001]);

  const inJaeger = async (traceId: string): Promise<any> => {
    for (let start = Date.now(); ; ) {
      const body = await api(`/api/traces/${traceId}`);
      if (body.data?.length) return body.data[0];
      if (Date.now() - start > 10_000) throw new Error(`trace ${traceId} not in Jaeger: ${JSON.stringify(body)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  for (const s of spans) {
    const trace = await inJaeger(s.traceId);
    assert.equal(trace.spans.length, 1, 'one span per trace');
    const [j] = trace.spans;
    const tags = Object.fromEntries(j.tags.map((tag: any) => [tag.key, tag.value]));
    assert.equal(j.spanID, s.spanId);
    assert.equal(j.operationName, 'tcp.connect');
    assert.equal(trace.processes[j.processID].serviceName, 'connlat');
    assert.equal(tags['span.kind'], 'client');
    const a = attrs(s.attributes);
    const latencyUs = Number(BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano)) / 1000;
    assert.ok(Math.abs(j.duration - latencyUs) <= 1, `duration ${j.duration} us`);
    assert.equal(tags['server.port'], a['server.port']);
    assert.equal(tags['connlat.tcp.syn_retransmits'], a['connlat.tcp.syn_retransmits']);
    if (a['error.type'] !== undefined) {
      assert.equal(tags['otel.status_code'], 'ERROR');
      assert.equal(tags.error, true);
      assert.equal(tags['error.type'], a['error.type']);
    } else {
      assert.equal(tags.error, undefined);
      assert.equal(tags['connlat.tcp.handshake_rtt'], 0.001);
    }
  }
  // from a slow-connection log record to its span in Jaeger
  const records = logRecords(logs);
  assert.equal(records.length, 5);
  for (const r of records) assert.equal((await inJaeger(r.traceId)).spans[0].spanID, r.spanId);
  // from the histogram's exemplar to its span in Jaeger: the 1011.65 ms connect
  const exemplars = metrics.flatMap((req) => (lastMetric([req], 'tcp.connect.duration')?.histogram.dataPoints ?? []).flatMap((p: any) => p.exemplars ?? []));
  assert.equal(exemplars.length, 1);
  const target = (await inJaeger(exemplars[0].traceId)).spans[0];
  assert.equal(target.spanID, exemplars[0].spanId);
  assert.equal(target.duration, 1011650);
  t.diagnostic(`${spans.length} spans found in Jaeger by trace id; log records and the exemplar resolve to them`);
});
