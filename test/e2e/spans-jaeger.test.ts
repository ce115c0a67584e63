// Connect spans into a real trace backend: the agent (CLI, a replay of connlat-probe's recorded output) exports spans
// over OTLP gRPC straight to Jaeger v2 (test/support/backends/jaeger.ts: scripts/build-backends.sh's build, memory
// storage, self-tracing off; chosen by OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, metrics and logs going to the test
// receiver) and everything to an OTLP/JSON file; every span is then found in Jaeger by the trace id that the log
// record or the histogram's exemplar carries, with its name, kind, times, status and connlat-probe attributes, as
// stored. (The gateway path is the backends end-to-end test.)
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EXIT } from '../../src/exit-status.ts';
import { readOtlpJson, runAgent } from '../support/agent.ts';
import { findBackend } from '../support/backends/backend.ts';
import { startJaeger, type JaegerSpan } from '../support/backends/jaeger.ts';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { attrs, lastMetric, logRecords, spansOf } from '../telemetry/helpers.ts';

// bpf-tools/connlat-probe's own output on the test VM (the fixture of test/parse/connlat-probe.test.ts), without its
// last line (a refusal like the first)
const PROBE_OUTPUT = readFileSync(new URL('../fixtures/connlat-probe-recorded.txt', import.meta.url), 'latin1').split('\n').slice(0, 8).join('\n') + '\n';

const jaegerBinary = await findBackend('jaeger');

test('every connect span is in Jaeger under the trace id its log record and exemplar carry', { skip: jaegerBinary.skip ?? false, timeout: 120_000 }, async (t) => {
  const jaeger = await startJaeger(jaegerBinary.path!);
  t.after(() => jaeger.backend.close());
  const dir = mkdtempSync(join(tmpdir(), 'connlat-jaeger-'));

  // Jaeger takes traces only: metrics and logs go to the test receiver, spans to Jaeger by the per-signal variable
  const receiver = await startOtlpReceiver();
  t.after(() => receiver.close());
  const out = join(dir, 'out.jsonl');
  const run = await runAgent(['--source', '-', '--export', `otlp,otlp-json:${out}`, '--health-addr', 'off'], {
    input: PROBE_OUTPUT,
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://${jaeger.otlpGrpc}` },
  });
  assert.equal(run.code, EXIT.ok.code, run.stderr);
  const { metrics, logs, traces } = readOtlpJson(out);
  const spans = spansOf(traces);
  assert.equal(receiver.traces.length, 0, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT sent the spans elsewhere');
  assert.equal(logRecords(receiver.logs).length, 5);
  // slow (> 100 ms): 1011.65 ok and four failures; fast failures: the refusal; the fast ok connect: none
  assert.deepEqual(spans.map((s) => attrs(s.attributes)['server.port']), [7005, 7004, 7003, 7002, 7001, 7001]);

  const inJaeger = async (traceId: string): Promise<JaegerSpan[]> => {
    for (let start = Date.now(); ; await new Promise((r) => setTimeout(r, 200))) {
      const found = await jaeger.trace(traceId);
      if (found.length > 0) return found;
      if (Date.now() - start > 10_000) throw new Error(`trace ${traceId} not in Jaeger`);
    }
  };
  for (const s of spans) {
    const trace = await inJaeger(s.traceId);
    assert.equal(trace.length, 1, 'one span per trace');
    const [j] = trace as [JaegerSpan];
    assert.deepEqual([j.spanId, j.name, j.kind, j.parentSpanId], [s.spanId, 'tcp.connect', 3, '']);
    assert.deepEqual([j.startTimeUnixNano, j.endTimeUnixNano], [BigInt(s.startTimeUnixNano), BigInt(s.endTimeUnixNano)], 'times to the nanosecond');
    assert.equal(j.resource['service.name'], 'connlat');
    assert.equal(j.scopeName, 'connlat');
    assert.deepEqual(j.attributes, attrs(s.attributes), 'every attribute as sent');
    if (j.attributes['error.type'] !== undefined) assert.deepEqual([j.statusCode, j.statusMessage], [2, j.attributes['error.type']]);
    else assert.equal(j.statusCode, 0);
  }
  // from a slow-connection log record to its span in Jaeger
  const records = logRecords(logs);
  assert.equal(records.length, 5);
  for (const r of records) assert.equal((await inJaeger(r.traceId))[0]!.spanId, r.spanId);
  // from the histogram's exemplar to its span in Jaeger: the 1011.65 ms connect
  const exemplars = metrics.flatMap((req) => (lastMetric([req], 'tcp.connect.duration')?.histogram.dataPoints ?? []).flatMap((p: any) => p.exemplars ?? []));
  assert.equal(exemplars.length, 1);
  const [target] = await inJaeger(exemplars[0].traceId);
  assert.equal(target!.spanId, exemplars[0].spanId);
  assert.equal(target!.endTimeUnixNano - target!.startTimeUnixNano, 1_011_650_000n, 'the measured 1011.65 ms');
  t.diagnostic(`${spans.length} spans found in Jaeger by trace id; log records and the exemplar resolve to them`);
});
