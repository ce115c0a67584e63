// Connect spans over real OTLP gRPC (test/support/otlp/receiver.ts, the official protos): one CLIENT span per slow
// or failed connect with the right times, status and attributes; the slow-connection log record carries its ids; the
// histogram's exemplars on the wire point at exported spans; rate limits, --traces off, an outage and a gateway that
// never answers (issue 12 section 1).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { ConnectEvent } from '../../src/event.ts';
import { logAttributes } from '../../src/telemetry/attributes.ts';
import { createTelemetry } from '../../src/telemetry/index.ts';
import { spanAttributes, spanTimes } from '../../src/telemetry/spans.ts';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { freePort } from '../support/net.ts';
import { attrs, counterBy, FAILURES, lastMetric, logRecords, NINE_CONNECTS, options, spansOf } from './helpers.ts';

const hex = (b: unknown): string => (b === undefined ? '' : Buffer.from(b as Uint8Array).toString('hex'));

/** |actual - expected| in nanoseconds, expected from epoch ms (the SDK keeps sub-ms precision; float noise < 1 us). */
function nanosOff(actual: string, expectedMs: number): number {
  return Math.abs(Number(BigInt(actual) - BigInt(Math.round(expectedMs * 1000)) * 1000n));
}

const probe = (latencyMs: number, extra: Partial<ConnectEvent>): ConnectEvent => ({
  timeMs: 1764240100000, tool: 'connlat-probe', pid: 77, comm: 'curl', ipVersion: 4, saddr: '10.0.0.1', sport: 40000,
  daddr: '10.0.0.2', dport: 443, latencyMs, failed: false, result: 'ok', synRetransmits: 0, handshakeRttMs: 0.05, ...extra,
});

describe('connect spans: pure parts (table)', () => {
  it('start = outcome time minus latency, end = outcome time; the duration is the latency to the nanosecond', () => {
    const cases: Array<[number, number, [number, number], [number, number]]> = [
      [1764240000123, 47.8, [1764240000, 75_200_000], [1764240000, 123_000_000]],
      [1764240000123, 0, [1764240000, 123_000_000], [1764240000, 123_000_000]],
      [1764240009123, 1003.5, [1764240008, 119_500_000], [1764240009, 123_000_000]],
      [1764240101013, 1011.65, [1764240100, 1_350_000], [1764240101, 13_000_000]],
      [1764240107089, 7125.9, [1764240099, 963_100_000], [1764240107, 89_000_000]],
      [1764240000000.5, 0.000_5, [1764240000, 499_500], [1764240000, 500_000]],
    ];
    for (const [timeMs, latencyMs, start, end] of cases) {
      const t = spanTimes({ ...NINE_CONNECTS[0]!, timeMs, latencyMs });
      assert.deepEqual([t.start, t.end], [start, end], `${timeMs} - ${latencyMs}`);
    }
  });

  it('attributes are the log record\'s; every failure has error.type (_OTHER when the tool does not say why)', () => {
    const cases: Array<[ConnectEvent, string | undefined]> = [
      [NINE_CONNECTS[0]!, undefined],
      [FAILURES[0]!, '_OTHER'], // tcpstates SYN_SENT -> CLOSE
      [probe(2501, { failed: true, result: 'aborted', synRetransmits: 2, handshakeRttMs: undefined }), 'aborted'],
      [probe(3, { failed: true, result: 'other', errno: 104, handshakeRttMs: undefined }), 'other'],
      [probe(1011, { synRetransmits: 1, handshakeRttMs: 1 }), undefined],
    ];
    for (const [event, errorType] of cases) {
      const a = spanAttributes(event);
      assert.equal(a['error.type'], errorType);
      const { ['error.type']: _, ...rest } = a;
      const { ['error.type']: __, ...log } = logAttributes(event);
      assert.deepEqual(rest, log);
      assert.equal(a['network.peer.address'], event.daddr);
      assert.equal(a['network.peer.port'], event.dport);
    }
  });
});

describe('connect spans over OTLP gRPC', () => {
  it('one CLIENT span per slow and per failed connect; the log record names it; exemplars on the wire point at it', async (t) => {
    const receiver = await startOtlpReceiver();
    t.after(() => receiver.close());
    const telemetry = createTelemetry(options({ exports: [{ kind: 'otlp', endpoint: receiver.endpoint }], slowMs: 40, traces: true }));
    const probes = [
      probe(1011.65, { synRetransmits: 1, handshakeRttMs: 1 }),
      probe(7125.9, { failed: true, result: 'timed_out', synRetransmits: 2, handshakeRttMs: undefined }),
      probe(0.2, { failed: true, result: 'refused', handshakeRttMs: undefined }),
    ];
    const events = [...NINE_CONNECTS, ...FAILURES, ...probes];
    for (const e of events) telemetry.record(e);
    await telemetry.flush();
    const report = await telemetry.shutdown();
    assert.equal(report.undelivered, undefined);

    // slow (> 40 ms): 47.8, 45.12, 121.4, 1003.5 (failed), 1011.65, 7125.9 (failed); fast failures: 0.05, 0.07, 0.2
    const expected = events.filter((e) => e.latencyMs > 40 || e.failed);
    const spans = spansOf(receiver.traces);
    assert.equal(spans.length, 9);
    assert.equal(expected.length, 9);
    for (const [i, e] of expected.entries()) {
      const s = spans[i];
      assert.equal(s.name, 'tcp.connect');
      assert.equal(s.kind, 3, 'SPAN_KIND_CLIENT');
      assert.ok(nanosOff(s.startTimeUnixNano, e.timeMs - e.latencyMs) < 1000, `start of ${i}: ${s.startTimeUnixNano}`);
      assert.ok(nanosOff(s.endTimeUnixNano, e.timeMs) < 1000, `end of ${i}`);
      assert.equal(hex(s.parentSpanId), '', 'a root span');
      assert.deepEqual(attrs(s.attributes), spanAttributes(e));
      if (e.failed) {
        assert.equal(s.status.code, 2, 'STATUS_CODE_ERROR');
        assert.equal(s.status.message, e.result === undefined ? 'connect failed' : e.result);
        assert.equal(attrs(s.attributes)['error.type'], e.result ?? '_OTHER');
      } else {
        assert.ok(s.status === undefined || !s.status.code, 'UNSET');
      }
    }
    assert.equal(new Set(spans.map((s) => hex(s.traceId))).size, 9, 'one trace per connect');
    const probeSpan = spans[6];
    assert.deepEqual([attrs(probeSpan.attributes)['connlat.tcp.syn_retransmits'], attrs(probeSpan.attributes)['connlat.tcp.handshake_rtt']], [1, 0.001]);

    // every slow-connection log record carries its span's ids; fast failures have a span and no log record
    const logs = logRecords(receiver.logs);
    const slowSpans = spans.filter((_, i) => expected[i]!.latencyMs > 40);
    assert.equal(logs.length, slowSpans.length);
    for (const [i, r] of logs.entries()) {
      assert.equal(hex(r.traceId), hex(slowSpans[i].traceId));
      assert.equal(hex(r.spanId), hex(slowSpans[i].spanId));
    }

    // exemplars: decoded from the wire by the official protos, each pointing at an exported span of a success
    const byId = new Map(spans.map((s) => [hex(s.spanId), s]));
    const exemplars = receiver.metrics.flatMap((req) => {
      const m = lastMetric([req], 'tcp.connect.duration');
      return (m?.histogram?.dataPoints ?? []).flatMap((p: any) => (p.exemplars ?? []).map((x: any) => ({ x, p })));
    });
    // 47.8 and 45.12 share a series and a bucket (newest wins), 121.4 and 1011.65 have their own
    assert.equal(exemplars.length, 3);
    for (const { x, p } of exemplars) {
      const span = byId.get(hex(x.spanId));
      assert.ok(span, `exemplar span ${hex(x.spanId)} was exported`);
      assert.equal(hex(x.traceId), hex(span.traceId));
      assert.equal(attrs(span.attributes)['error.type'], undefined, 'successes only');
      const seconds = Number(BigInt(span.endTimeUnixNano) - BigInt(span.startTimeUnixNano)) / 1e9;
      assert.ok(Math.abs(x.asDouble - seconds) < 1e-6, `value ${x.asDouble} = the span's duration ${seconds}`);
      assert.equal(x.timeUnixNano, span.endTimeUnixNano);
      // in the bucket of its data point that counts it
      const bounds: number[] = p.explicitBounds;
      const bucket = bounds.findIndex((b) => x.asDouble <= b);
      assert.ok(Number(p.bucketCounts[bucket === -1 ? bounds.length : bucket]) >= 1);
      assert.equal(attrs(p.attributes)['server.address'], attrs(span.attributes)['server.address']);
    }
    assert.deepEqual(exemplars.map(({ x }) => Math.round(x.asDouble * 1e5) / 1e5).sort(), [0.04512, 0.1214, 1.01165]);
    // the last (cumulative) export has none left: each exemplar is reported once per reader
    assert.equal((lastMetric(receiver.metrics.slice(-1), 'tcp.connect.duration')?.histogram.dataPoints ?? []).some((p: any) => p.exemplars?.length), false);
  });

  it('--traces off: no span, no trace ids on log records, no exemplars', async (t) => {
    const receiver = await startOtlpReceiver();
    t.after(() => receiver.close());
    const telemetry = createTelemetry(options({ exports: [{ kind: 'otlp', endpoint: receiver.endpoint }], slowMs: 40, traces: false }));
    for (const e of [...NINE_CONNECTS, ...FAILURES]) telemetry.record(e);
    await telemetry.flush();
    await telemetry.shutdown();
    assert.equal(receiver.traces.length, 0);
    const logs = logRecords(receiver.logs);
    assert.equal(logs.length, 4);
    for (const r of logs) assert.equal(hex(r.traceId), '');
    for (const req of receiver.metrics) for (const p of lastMetric([req], 'tcp.connect.duration')?.histogram.dataPoints ?? []) assert.equal(p.exemplars, undefined);
  });

  it('rate limit: a slow connect\'s span shares the log record\'s token; fast failures have a bucket of their own', async (t) => {
    const receiver = await startOtlpReceiver();
    t.after(() => receiver.close());
    const telemetry = createTelemetry(options({ exports: [{ kind: 'otlp', endpoint: receiver.endpoint }], slowMs: 40, traces: true, slowLogRatePerSec: 0, slowLogBurst: 2, now: () => 0 }));
    for (let i = 0; i < 5; i++) telemetry.record({ ...NINE_CONNECTS[3]!, pid: 100 + i }); // slow
    for (let i = 0; i < 5; i++) telemetry.record({ ...FAILURES[1]!, pid: 200 + i }); // fast failures
    await telemetry.flush();
    const report = await telemetry.shutdown();
    const spans = spansOf(receiver.traces);
    assert.deepEqual(spans.map((s) => attrs(s.attributes)['process.pid']), [100, 101, 200, 201]);
    assert.equal(logRecords(receiver.logs).length, 2);
    assert.equal(report.spansRateLimited, 6);
    assert.equal(report.logsRateLimited, 3);
    assert.deepEqual(counterBy(receiver.metrics, 'connlat.spans.dropped', 'reason'), { rate_limit: 6 });
  });

  it('holds spans through an outage (UNAVAILABLE) and delivers each once when the gateway answers', async (t) => {
    const receiver = await startOtlpReceiver();
    t.after(() => receiver.close());
    const telemetry = createTelemetry(options({
      exports: [{ kind: 'otlp', endpoint: receiver.endpoint }], slowMs: 40, traces: true, slowLogBurst: 1000,
      delivery: { retry: { initialMs: 50, maxMs: 100 } },
    }));
    receiver.failWith(grpc.status.UNAVAILABLE, 'gateway down');
    for (let i = 0; i < 300; i++) telemetry.record({ ...FAILURES[1]!, pid: 1000 + i });
    await telemetry.flush(); // one attempt each: refused
    assert.ok(receiver.rejected >= 2);
    await new Promise((r) => setTimeout(r, 400));
    receiver.failWith(null);
    await receiver.waitFor(() => spansOf(receiver.traces).length >= 300, 10_000);
    const report = await telemetry.shutdown();
    assert.equal(report.undelivered, undefined);
    const pids = spansOf(receiver.traces).map((s) => attrs(s.attributes)['process.pid']);
    assert.deepEqual(pids, Array.from({ length: 300 }, (_, i) => 1000 + i), 'all, in order, none twice');
    assert.ok(Number(counterBy(receiver.metrics, 'connlat.export.failures', 'signal').traces) >= 2);
  });

  it('a gateway that never answers: shutdown reports the spans not delivered, by reason', async () => {
    const port = await freePort();
    const telemetry = createTelemetry(options({
      exports: [{ kind: 'otlp', endpoint: `http://127.0.0.1:${port}` }], slowMs: 40, traces: true,
      delivery: { retry: { initialMs: 50, maxMs: 100 }, deadline: () => Date.now() + 600 },
    }));
    for (const e of FAILURES) telemetry.record(e);
    const report = await telemetry.shutdown();
    assert.match(report.undelivered ?? '', /; 1 slow-connection log records \(shutdown: 1 \[.*\]\); traces: 3 connect spans \(shutdown: 3 \[not delivered before the shutdown deadline\]\)$/);
  });
});
