// Exemplars of tcp.connect.duration: the reservoir (one per series and bucket, newest wins, each reader gets what
// was offered since its last collection, bounded) and the protobuf rewrite that puts them on the wire, decoded with
// the official OTLP protos (test/fixtures/proto) through @grpc/proto-loader, as a receiver does.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import * as protoLoader from '@grpc/proto-loader';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { ExemplarReservoir, MAX_EXEMPLARS, type Exemplar } from '../../src/telemetry/aggregation/exemplars.ts';
import { PreAggregator } from '../../src/telemetry/aggregation/storage.ts';
import { newSeriesRef } from '../../src/telemetry/aggregation/series.ts';
import { addExemplars, encodeExemplar } from '../../src/telemetry/exemplars.ts';
import { CONNECT_DURATION_BUCKETS, INSTRUMENTS } from '../../src/telemetry/schema.ts';

const ex = (value: number, n: number): Exemplar => ({ value, timeMs: 1764240000000 + n, traceId: n.toString(16).padStart(32, '0'), spanId: n.toString(16).padStart(16, '0') });

describe('exemplar reservoir (table)', () => {
  it('one per series and bucket, the newest; each reader gets what came since its own last collection', () => {
    const r = new ExemplarReservoir();
    const a = r.reader();
    const b = r.reader();
    r.offer('s1', 11, ex(0.15, 1));
    r.offer('s1', 11, ex(0.2, 2)); // same bucket: replaces
    r.offer('s1', 12, ex(0.3, 3));
    r.offer('s2', 11, ex(0.12, 4));
    assert.deepEqual(Object.fromEntries(a.collect()), { s1: [ex(0.2, 2), ex(0.3, 3)], s2: [ex(0.12, 4)] });
    assert.equal(r.size, 3, 'kept until every reader has them');
    r.offer('s2', 11, ex(0.13, 5));
    assert.deepEqual(Object.fromEntries(a.collect()), { s2: [ex(0.13, 5)] });
    assert.deepEqual(Object.fromEntries(b.collect()), { s1: [ex(0.2, 2), ex(0.3, 3)], s2: [ex(0.13, 5)] });
    assert.equal(r.size, 0, 'what every reader reported is dropped');
    assert.deepEqual(Object.fromEntries(a.collect()), {});
  });

  it(`holds at most ${MAX_EXEMPLARS}; a full reservoir still replaces within a bucket`, () => {
    const r = new ExemplarReservoir();
    const a = r.reader();
    for (let i = 0; i < MAX_EXEMPLARS + 10; i++) r.offer(`s${i}`, 0, ex(0.2, i));
    assert.equal(r.size, MAX_EXEMPLARS);
    r.offer('s0', 0, ex(0.3, 99_999));
    const got = a.collect();
    assert.equal(got.size, MAX_EXEMPLARS);
    assert.deepEqual(got.get('s0'), [ex(0.3, 99_999)]);
  });

  it('the storage files an exemplar under its value\'s bucket and the series of its ref; counters take none', async () => {
    const storage = new PreAggregator(0, { ...INSTRUMENTS.connectDuration, boundaries: CONNECT_DURATION_BUCKETS }, { cardinalityLimit: 10, temporality: AggregationTemporality.CUMULATIVE });
    const producer = storage.producer(AggregationTemporality.CUMULATIVE, { name: 'connlat', version: '' });
    const ref = newSeriesRef('k', () => ({ 'server.address': '10.0.0.2' }));
    for (const v of [0.15, 0.2, 1.5]) storage.record(ref, v);
    storage.offerExemplar(ref, ex(0.15, 1));
    storage.offerExemplar(ref, ex(0.2, 2)); // (0.1, 0.25]: replaces the first
    storage.offerExemplar(ref, ex(1.5, 3)); // (1, 2.5]
    const first = (await producer.collect()).resourceMetrics.scopeMetrics[0]!.metrics[0]!.dataPoints[0] as { exemplars?: Exemplar[] };
    assert.deepEqual(first.exemplars, [ex(0.2, 2), ex(1.5, 3)]);
    const second = (await producer.collect()).resourceMetrics.scopeMetrics[0]!.metrics[0]!.dataPoints[0] as { exemplars?: Exemplar[] };
    assert.equal(second.exemplars, undefined, 'reported once');
  });
});

const PROTO_ROOT = fileURLToPath(new URL('../fixtures/proto/', import.meta.url));
const definition = protoLoader.loadSync('opentelemetry/proto/collector/metrics/v1/metrics_service.proto', { longs: String, enums: Number, defaults: false, includeDirs: [PROTO_ROOT] });
const decode = (bytes: Uint8Array): any => (definition['opentelemetry.proto.collector.metrics.v1.MetricsService'] as any).Export.requestDeserialize(Buffer.from(bytes));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function request(exemplars: Array<Exemplar[] | undefined>): ResourceMetrics {
  const point = (i: number) => ({
    attributes: { 'server.port': 443 + i },
    startTime: [1764240000, 0] as [number, number],
    endTime: [1764240010, 0] as [number, number],
    value: { count: 1, sum: 0.2, min: 0.2, max: 0.2, buckets: { boundaries: [...CONNECT_DURATION_BUCKETS], counts: CONNECT_DURATION_BUCKETS.map(() => 0).concat(0) } },
    ...(exemplars[i] ? { exemplars: exemplars[i] } : {}),
  });
  const histogram = { descriptor: { name: 'tcp.connect.duration', description: 'd', unit: 's', valueType: 1 }, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: 0, dataPoints: exemplars.map((_, i) => point(i)) };
  const counter = { descriptor: { name: 'tcp.connect.failures', description: 'f', unit: '1', valueType: 0 }, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: 3, isMonotonic: true, dataPoints: [{ attributes: {}, startTime: [1764240000, 0], endTime: [1764240010, 0], value: 3 }] };
  return { resource: resourceFromAttributes({ 'service.name': 'connlat' }), scopeMetrics: [{ scope: { name: 'connlat' }, metrics: [counter, histogram, { ...histogram, dataPoints: [point(0)] }] }] } as unknown as ResourceMetrics;
}

describe('exemplars on the wire (protobuf rewrite, decoded with the official protos)', () => {
  it('a request without exemplars is the serializer\'s bytes, unchanged', () => {
    const rm = request([undefined, undefined]);
    const bytes = ProtobufMetricsSerializer.serializeRequest(rm)!;
    assert.equal(addExemplars(bytes, rm), bytes);
  });

  it('each histogram point gets its own exemplars; everything else decodes as before', () => {
    const cases: Array<Array<Exemplar[] | undefined>> = [
      [[ex(0.2, 1)], undefined],
      [undefined, [ex(0.2, 7), ex(3.5, 8)]],
      [[ex(0.000_05, 2 ** 40)], [ex(12.5, 9)], [ex(0.2, 10)]],
    ];
    for (const exemplars of cases) {
      const rm = request(exemplars);
      const plain = ProtobufMetricsSerializer.serializeRequest(rm)!;
      const decoded = decode(addExemplars(plain, rm));
      const metrics = decoded.resourceMetrics[0].scopeMetrics[0].metrics;
      const points = [...metrics[1].histogram.dataPoints, ...metrics[2].histogram.dataPoints];
      const want = [...exemplars, exemplars[0]];
      points.forEach((p: any, i: number) => {
        const got = (p.exemplars ?? []).map((x: any) => ({ value: x.asDouble, timeMs: Number(BigInt(x.timeUnixNano) / 1_000_000n), traceId: hex(x.traceId), spanId: hex(x.spanId) }));
        assert.deepEqual(got, want[i] ?? []);
        delete p.exemplars;
      });
      assert.deepEqual(decoded, decode(plain), 'nothing else changed');
    }
  });

  it('an exemplar message: time (fixed64 ns), as_double, span_id, trace_id', () => {
    assert.equal(hex(encodeExemplar(ex(0.25, 1))),
      '11' + '404298c2eed67b18' + '19' + '000000000000d03f' + '2208' + '0000000000000001' + '2a10' + '00000000000000000000000000000001');
  });
});
