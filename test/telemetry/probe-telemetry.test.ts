// What connlat-probe's extra columns become over real OTLP gRPC: tcp.connect.failures split by error.type, the SYN
// retransmit counter, and slow-connection log records carrying the reason, retransmits and handshake RTT.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConnectEvent } from '../../src/event.ts';
import { createTelemetry } from '../../src/telemetry/index.ts';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { attrs, counterBy, lastMetric, logRecords, options } from './helpers.ts';

const probe = (latencyMs: number, extra: Partial<ConnectEvent>): ConnectEvent => ({
  timeMs: 1764240000000, tool: 'connlat-probe', pid: 77, comm: 'curl', ipVersion: 4, saddr: '10.0.0.1', sport: 40000,
  daddr: '10.0.0.2', dport: 443, latencyMs, failed: false, result: 'ok', errno: undefined, synRetransmits: 0, handshakeRttMs: 0.05, ...extra,
});

test('connlat-probe events over OTLP: failures by error.type, SYN retransmits, reason/retransmits/RTT on slow logs', async (t) => {
  const receiver = await startOtlpReceiver();
  t.after(() => receiver.close());
  const telemetry = createTelemetry(options({ exports: [{ kind: 'otlp', endpoint: receiver.endpoint }], slowMs: 100 }));
  const events = [
    probe(0.3, {}),
    probe(1011.65, { synRetransmits: 1, handshakeRttMs: 1 }), // first SYN lost: slow, ok
    probe(0.18, { failed: true, result: 'refused', handshakeRttMs: undefined }),
    probe(0.2, { failed: true, result: 'refused', handshakeRttMs: undefined }),
    probe(2501.14, { failed: true, result: 'aborted', synRetransmits: 2, handshakeRttMs: undefined }),
    probe(7125.9, { failed: true, result: 'timed_out', synRetransmits: 2, handshakeRttMs: undefined }),
    probe(3.1, { failed: true, result: 'other', errno: 104, handshakeRttMs: undefined }),
  ];
  for (const e of events) telemetry.record(e);
  await telemetry.flush();
  await telemetry.shutdown();

  assert.deepEqual(counterBy(receiver.metrics, 'tcp.connect.failures', 'error.type'), { refused: 2, aborted: 1, timed_out: 1, other: 1 });
  const retransmits = lastMetric(receiver.metrics, 'connlat.tcp.connect.syn_retransmits');
  assert.equal(retransmits.unit, '{segment}');
  assert.equal(retransmits.sum.isMonotonic, true);
  const byType = counterBy(receiver.metrics, 'connlat.tcp.connect.syn_retransmits', 'error.type');
  assert.deepEqual(byType, { '': 1, aborted: 2, timed_out: 2 }, 'on the series of the connect they belong to');
  const duration = lastMetric(receiver.metrics, 'tcp.connect.duration');
  assert.equal(duration.histogram.dataPoints.reduce((n: number, p: { count: string }) => n + Number(p.count), 0), 2);
  for (const p of duration.histogram.dataPoints) assert.equal(attrs(p.attributes)['error.type'], undefined, 'no error.type on successes');

  const logs = logRecords(receiver.logs).map((r) => ({ body: r.body.stringValue as string, a: attrs(r.attributes) }));
  assert.deepEqual(logs.map((l) => l.body), [
    'curl[77] 10.0.0.1 -> 10.0.0.2:443 connect took 1011.65 ms (1 SYN retransmit, RTT 1.000 ms)',
    'curl[77] 10.0.0.1 -> 10.0.0.2:443 connect failed after 2501.14 ms: aborted (2 SYN retransmits)',
    'curl[77] 10.0.0.1 -> 10.0.0.2:443 connect failed after 7125.90 ms: timed_out (2 SYN retransmits)',
  ]);
  assert.deepEqual([logs[0]!.a['connlat.tcp.syn_retransmits'], logs[0]!.a['connlat.tcp.handshake_rtt'], logs[0]!.a['error.type']], [1, 0.001, undefined]);
  assert.deepEqual([logs[1]!.a['connlat.tcp.syn_retransmits'], logs[1]!.a['connlat.tcp.handshake_rtt'], logs[1]!.a['error.type']], [2, undefined, 'aborted']);
});
