// Table tests for the pure pieces: log body, token bucket, attribute cache, OTLP/JSON normalization.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allMetricAttributes, MetricAttributeCache, METRIC_ATTRIBUTE_KEYS } from '../../src/telemetry/attributes.ts';
import { normalizeOtlpJson, OtlpJsonFileLogExporter } from '../../src/telemetry/otlp-json.ts';
import { slowConnectBody, TokenBucket } from '../../src/telemetry/slow-log.ts';
import { FAILURES, NINE_CONNECTS } from './helpers.ts';

describe('slowConnectBody', () => {
  const cases: [string, Parameters<typeof slowConnectBody>[0], string][] = [
    ['ipv4', NINE_CONNECTS[0]!, 'curl[21168] 10.0.2.15 -> 76.76.21.21:443 connect took 47.80 ms'],
    ['ipv6 in brackets', NINE_CONNECTS[7]!, 'python3[4410] 2001:db8::15 -> [2606:4700::6810:84e5]:443 connect took 12.34 ms'],
    ['failed', FAILURES[0]!, 'curl[5001] 10.0.2.15 -> 10.0.2.99:80 connect failed after 1003.50 ms'],
    ['rounds to 2 places', { ...NINE_CONNECTS[0]!, latencyMs: 0.005 }, 'curl[21168] 10.0.2.15 -> 76.76.21.21:443 connect took 0.01 ms'],
  ];
  for (const [name, event, want] of cases) it(name, () => assert.equal(slowConnectBody(event), want));
});

describe('TokenBucket', () => {
  it('starts full, spends one token per take, refills at the rate up to the burst', () => {
    let now = 0;
    const b = new TokenBucket(10, 2, () => now);
    assert.deepEqual([b.take(), b.take(), b.take()], [true, true, false]);
    now = 50; // +0.5
    assert.equal(b.take(), false);
    now = 100; // +0.5 -> 1
    assert.equal(b.take(), true);
    now = 10_000; // long idle: capped at burst 2
    assert.deepEqual([b.take(), b.take(), b.take()], [true, true, false]);
  });
  it('rejects negative settings with a clear error', () => {
    assert.throws(() => new TokenBucket(-1, 1), /rate \(-1\) and burst \(1\) must be >= 0/);
  });
  it('with burst 0 never passes', () => {
    const b = new TokenBucket(1000, 0, () => 0);
    assert.equal(b.take(), false);
  });
});

describe('MetricAttributeCache', () => {
  it('returns the allow-listed attributes and the same object for the same destination', () => {
    const c = new MetricAttributeCache(['server.address', 'server.port']);
    const a = c.get(NINE_CONNECTS[0]!);
    assert.deepEqual(a, { 'server.address': '76.76.21.21', 'server.port': 443 });
    assert.equal(c.get(NINE_CONNECTS[1]!), a);
    assert.notEqual(c.get(NINE_CONNECTS[3]!), a);
  });
  it('keys on identities too', () => {
    const c = new MetricAttributeCache([...METRIC_ATTRIBUTE_KEYS]);
    const plain = { ...NINE_CONNECTS[5]!, src: undefined, dst: undefined };
    assert.notDeepEqual(c.get(plain), c.get(NINE_CONNECTS[5]!));
    assert.equal(c.get(NINE_CONNECTS[5]!)['k8s.src.owner.name'], 'frontend');
  });
  it('stays bounded with 100k distinct destinations', () => {
    const c = new MetricAttributeCache([...METRIC_ATTRIBUTE_KEYS], 1000);
    let max = 0;
    for (let i = 0; i < 100_000; i++) {
      c.get({ ...NINE_CONNECTS[0]!, daddr: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` });
      c.get({ ...NINE_CONNECTS[5]!, daddr: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` });
      max = Math.max(max, c.size);
    }
    assert.equal(max, 1000);
  });
  it('names every metric attribute key it can produce in METRIC_ATTRIBUTE_KEYS', () => {
    // a failure connlat-probe explains carries error.type as well
    const keys = Object.keys(allMetricAttributes({ ...NINE_CONNECTS[5]!, tool: 'connlat-probe', failed: true, result: 'refused' }));
    assert.deepEqual(keys.filter((k) => !(METRIC_ATTRIBUTE_KEYS as readonly string[]).includes(k)), []);
    assert.equal(keys.length, METRIC_ATTRIBUTE_KEYS.length);
  });
});

describe('normalizeOtlpJson', () => {
  it('writes 64-bit integers as strings, keeps oneof/optional zeros, drops other defaults', () => {
    const input = {
      resource: { attributes: [{ key: 'n', value: { intValue: 0 } }], droppedAttributesCount: 0 },
      dp: { count: 3, bucketCounts: [0, 2, 1], explicitBounds: [0.5, 1], sum: 0, min: 0, max: 0, flags: 0, exemplars: [] },
      num: { asInt: 0, asDouble: 0, startTimeUnixNano: '17', timeUnixNano: '18' },
      sumMetric: { aggregationTemporality: 2, isMonotonic: false },
      log: { severityNumber: 13, severityText: 'WARN', body: { stringValue: '' }, traceId: undefined, spanId: undefined, flags: undefined },
      exp: { scale: 0, zeroCount: 0, positive: { offset: 0, bucketCounts: [] }, count: 0 },
    };
    assert.deepEqual(normalizeOtlpJson(input), {
      resource: { attributes: [{ key: 'n', value: { intValue: '0' } }] },
      dp: { count: '3', bucketCounts: ['0', '2', '1'], explicitBounds: [0.5, 1], sum: 0, min: 0, max: 0 },
      num: { asInt: '0', asDouble: 0, startTimeUnixNano: '17', timeUnixNano: '18' },
      sumMetric: { aggregationTemporality: 2 },
      log: { severityNumber: 13, severityText: 'WARN', body: { stringValue: '' } },
      exp: { positive: {} },
    });
  });
});

describe('otlp-json exporter', () => {
  it('names the path when the file cannot be opened', () => {
    assert.throws(() => new OtlpJsonFileLogExporter('/nonexistent-dir/x.jsonl'), /^Error: otlp-json export: cannot open \/nonexistent-dir\/x\.jsonl for appending: ENOENT/);
  });
});
