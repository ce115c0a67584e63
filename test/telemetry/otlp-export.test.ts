// Record a known set of connects, export with `otlp` over real gRPC to the test receiver, and check every number.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTelemetry } from '../../src/telemetry/index.ts';
import type { Telemetry } from '../../src/telemetry/types.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp/receiver.ts';
import { attrs, counterBy, FAILURES, lastMetric, logRecords, nanos, NINE_CONNECTS, options, T0 } from './helpers.ts';

const BOUNDS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** bucketCounts with `ones` at the given indexes (index i counts values in (BOUNDS[i-1], BOUNDS[i]]). */
function buckets(at: Record<number, number>): string[] {
  return Array.from({ length: BOUNDS.length + 1 }, (_, i) => String(at[i] ?? 0));
}

const KUBE_SRC_DST = {
  'k8s.src.namespace': 'shop',
  'k8s.src.name': 'frontend-7d9c5b-x2x8k',
  'k8s.src.type': 'Pod',
  'k8s.src.owner.name': 'frontend',
  'k8s.src.owner.type': 'Deployment',
  'k8s.dst.namespace': 'shop',
  'k8s.dst.name': 'cart',
  'k8s.dst.type': 'Service',
  'k8s.dst.owner.name': 'cart',
  'k8s.dst.owner.type': 'Deployment',
};

const EXPECTED_SERIES = [
  {
    attributes: { 'network.type': 'ipv4', 'network.transport': 'tcp', 'server.address': '76.76.21.21', 'server.port': 443, 'process.executable.name': 'curl' },
    latenciesMs: [47.8, 45.12, 9.87],
    bucketCounts: buckets({ 7: 1, 9: 2 }),
  },
  {
    attributes: { 'network.type': 'ipv4', 'network.transport': 'tcp', 'server.address': '140.82.112.3', 'server.port': 443, 'process.executable.name': 'wget' },
    latenciesMs: [121.4, 0.61],
    bucketCounts: buckets({ 4: 1, 11: 1 }),
  },
  {
    attributes: { 'network.type': 'ipv4', 'network.transport': 'tcp', 'server.address': '10.96.0.20', 'server.port': 8080, 'process.executable.name': 'node', ...KUBE_SRC_DST },
    latenciesMs: [1.25, 0.95],
    bucketCounts: buckets({ 4: 1, 5: 1 }),
  },
  {
    attributes: { 'network.type': 'ipv6', 'network.transport': 'tcp', 'server.address': '2606:4700::6810:84e5', 'server.port': 443, 'process.executable.name': 'python3' },
    latenciesMs: [12.34, 3.02],
    bucketCounts: buckets({ 6: 1, 8: 1 }),
  },
];

describe('telemetry: otlp export to a real gRPC receiver', () => {
  let receiver: OtlpReceiver;
  let telemetry: Telemetry;

  before(async () => {
    receiver = await startOtlpReceiver();
    telemetry = createTelemetry(
      options({
        exports: [{ kind: 'otlp', endpoint: receiver.endpoint }],
        resource: { 'service.name': 'connlat', 'service.version': '0.1.0', 'k8s.node.name': 'node-a', 'k8s.cluster.name': 'test' },
      }),
    );
    for (const e of NINE_CONNECTS) telemetry.record(e);
    for (const e of FAILURES) telemetry.record(e);
    telemetry.self.lineRejected('bad_field_count');
    telemetry.self.lineRejected('bad_field_count');
    telemetry.self.lineRejected('bad_address');
    telemetry.self.toolRestarted('tcpconnlat');
    telemetry.self.lostEvents(7);
    await telemetry.flush();
  });

  after(async () => {
    await telemetry.shutdown();
    await receiver.close();
  });

  it('sends gzip-compressed requests carrying exactly the configured resource', () => {
    assert.ok(receiver.calls.metrics.length >= 1 && receiver.calls.logs.length >= 1);
    for (const c of [...receiver.calls.metrics, ...receiver.calls.logs]) assert.equal(c.encoding, 'gzip');
    for (const req of receiver.metrics) {
      assert.deepEqual(attrs(req.resourceMetrics[0].resource.attributes), {
        'service.name': 'connlat',
        'service.version': '0.1.0',
        'k8s.node.name': 'node-a',
        'k8s.cluster.name': 'test',
      });
    }
    assert.deepEqual(attrs(receiver.logs[0].resourceLogs[0].resource.attributes)['k8s.cluster.name'], 'test');
  });

  it('exports tcp.connect.duration with exact counts, sums, buckets and attributes per series', () => {
    const m = lastMetric(receiver.metrics, 'tcp.connect.duration');
    assert.equal(m.unit, 's');
    assert.ok(m.description.length > 0);
    assert.equal(m.histogram.aggregationTemporality, 2); // CUMULATIVE
    const points = m.histogram.dataPoints;
    assert.equal(points.length, EXPECTED_SERIES.length);
    for (const want of EXPECTED_SERIES) {
      const dp = points.find((p: any) => attrs(p.attributes)['server.address'] === want.attributes['server.address']);
      assert.ok(dp, `series for ${want.attributes['server.address']}`);
      assert.deepEqual(attrs(dp.attributes), want.attributes);
      assert.equal(dp.count, String(want.latenciesMs.length));
      assert.equal(dp.sum, want.latenciesMs.reduce((s, ms) => s + ms / 1000, 0));
      assert.equal(dp.min, Math.min(...want.latenciesMs) / 1000);
      assert.equal(dp.max, Math.max(...want.latenciesMs) / 1000);
      assert.deepEqual(dp.explicitBounds, BOUNDS);
      assert.deepEqual(dp.bucketCounts, want.bucketCounts);
    }
  });

  it('counts failed connects in tcp.connect.failures, not in the histogram', () => {
    const m = lastMetric(receiver.metrics, 'tcp.connect.failures');
    assert.equal(m.unit, '{connection}');
    assert.equal(m.sum.isMonotonic, true);
    assert.equal(m.sum.dataPoints.length, 1);
    const dp = m.sum.dataPoints[0];
    assert.equal(dp.asInt, '3');
    assert.deepEqual(attrs(dp.attributes), {
      'network.type': 'ipv4',
      'network.transport': 'tcp',
      'server.address': '10.0.2.99',
      'server.port': 80,
      'process.executable.name': 'curl',
    });
    const hist = lastMetric(receiver.metrics, 'tcp.connect.duration');
    assert.ok(!hist.histogram.dataPoints.some((p: any) => attrs(p.attributes)['server.address'] === '10.0.2.99'));
  });

  it('exports the self-metrics', () => {
    assert.deepEqual(counterBy(receiver.metrics, 'connlat.lines.rejected', 'reason'), { bad_field_count: 2, bad_address: 1 });
    assert.deepEqual(counterBy(receiver.metrics, 'connlat.tool.restarts', 'tool'), { tcpconnlat: 1 });
    assert.deepEqual(counterBy(receiver.metrics, 'connlat.tool.lost_events'), { '': 7 });
    assert.equal(lastMetric(receiver.metrics, 'connlat.logs.dropped'), undefined); // nothing dropped
    assert.equal(lastMetric(receiver.metrics, 'connlat.export.failures'), undefined); // nothing failed
  });

  it('emits exactly one WARN log record per slow connect (failed ones included), with the event time', () => {
    const records = logRecords(receiver.logs);
    const bodies = records.map((r) => r.body.stringValue);
    assert.deepEqual(bodies, [
      'curl[21168] 10.0.2.15 -> 76.76.21.21:443 connect took 47.80 ms',
      'curl[21169] 10.0.2.15 -> 76.76.21.21:443 connect took 45.12 ms',
      'wget[3312] 10.0.2.15 -> 140.82.112.3:443 connect took 121.40 ms',
      'python3[4410] 2001:db8::15 -> [2606:4700::6810:84e5]:443 connect took 12.34 ms',
      'curl[5001] 10.0.2.15 -> 10.0.2.99:80 connect failed after 1003.50 ms',
    ]);
    const times = [0, 1, 3, 7, 9].map((i) => nanos(T0 + i * 1000 + 123));
    assert.deepEqual(records.map((r) => r.timeUnixNano), times);
    for (const r of records) {
      assert.equal(r.severityNumber, 13);
      assert.equal(r.severityText, 'WARN');
      assert.equal(r.eventName, 'tcp.connect.slow');
    }
    assert.deepEqual(attrs(records[0].attributes), {
      'network.type': 'ipv4',
      'network.transport': 'tcp',
      'server.address': '76.76.21.21',
      'server.port': 443,
      'process.executable.name': 'curl',
      'process.pid': 21168,
      'network.peer.address': '76.76.21.21',
      'network.peer.port': 443,
      'client.address': '10.0.2.15',
    });
    assert.deepEqual(attrs(records[4].attributes)['client.port'], 51000);
  });
});

describe('telemetry: slow log attributes carry the full Kubernetes identity', () => {
  it('adds pod, container, service and owner on both sides, unfiltered by the metric allow list', async () => {
    const receiver = await startOtlpReceiver();
    const telemetry = createTelemetry(
      options({ exports: [{ kind: 'otlp', endpoint: receiver.endpoint }], metricAttributes: ['server.port'], slowMs: 1 }),
    );
    try {
      telemetry.record(NINE_CONNECTS[5]!); // 1.25 ms > 1 ms, with src/dst identities
      await telemetry.flush();
      const [record] = logRecords(receiver.logs);
      assert.deepEqual(attrs(record.attributes), {
        'network.type': 'ipv4',
        'network.transport': 'tcp',
        'server.address': '10.96.0.20',
        'server.port': 8080,
        'process.executable.name': 'node',
        ...KUBE_SRC_DST,
        'process.pid': 900,
        'network.peer.address': '10.96.0.20',
        'network.peer.port': 8080,
        'client.address': '10.244.1.7',
        'client.port': 40112,
        'k8s.src.pod.name': 'frontend-7d9c5b-x2x8k',
        'k8s.src.pod.uid': '0b6c3a52-5f43-4c55-9a3e-2a1d2f0f6a11',
        'k8s.src.container.name': 'web',
        'k8s.src.container.id': 'containerd://4f1c',
        'k8s.src.node.name': 'node-a',
        'k8s.dst.service.name': 'cart',
      });
      assert.equal(record.body.stringValue, 'node[900] 10.244.1.7 -> 10.96.0.20:8080 connect took 1.25 ms');
      // the metric kept only the allow-listed key
      const dp = lastMetric(receiver.metrics, 'tcp.connect.duration').histogram.dataPoints[0];
      assert.deepEqual(attrs(dp.attributes), { 'server.port': 8080 });
      assert.equal(logRecords(receiver.logs).length, 1);
    } finally {
      await telemetry.shutdown();
      await receiver.close();
    }
  });
});
