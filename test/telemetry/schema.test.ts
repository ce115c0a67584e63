// The telemetry schema (src/telemetry/schema.ts) is the one declaration of instruments and attributes; these tests
// check the facts the rest derives from it: names from the OpenTelemetry semantic conventions, how each attribute is
// read from an event, and that the attribute cache keys on every metric attribute that can differ between events.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ATTR_CLIENT_ADDRESS, ATTR_CLIENT_PORT, ATTR_NETWORK_TRANSPORT, ATTR_NETWORK_TYPE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT } from '@opentelemetry/semantic-conventions';
import { ATTR_NETWORK_PEER_ADDRESS, ATTR_NETWORK_PEER_PORT } from '@opentelemetry/semantic-conventions';
import { ATTR_PROCESS_EXECUTABLE_NAME, ATTR_PROCESS_PID } from '@opentelemetry/semantic-conventions/incubating';
import type { ConnectEvent } from '../../src/event.ts';
import { allMetricAttributes, logAttributes, MetricAttributeCache } from '../../src/telemetry/attributes.ts';
import { ATTRIBUTES, DEFAULT_METRIC_ATTRIBUTES, INSTRUMENTS, METRIC_ATTRIBUTE_KEYS } from '../../src/telemetry/schema.ts';

const BASE: ConnectEvent = {
  timeMs: 1764240000000, tool: 'tcpstates', pid: 900, comm: 'node', ipVersion: 4, saddr: '10.244.1.7', sport: 40112,
  daddr: '10.96.0.20', dport: 8080, latencyMs: 1.25, failed: false,
  src: { namespace: 'shop', name: 'frontend-x2x8k', type: 'Pod', ownerName: 'frontend', ownerType: 'Deployment', podName: 'frontend-x2x8k', podUid: 'u1', containerName: 'web', containerId: 'containerd://4f1c', nodeName: 'node-a' },
  dst: { namespace: 'shop', name: 'cart', type: 'Service', ownerName: 'cart', ownerType: 'Deployment', serviceName: 'cart' },
};

describe('telemetry schema', () => {
  it('uses the semantic-convention names where one exists', () => {
    const keys = new Set(ATTRIBUTES.map((a) => a.key));
    for (const k of [ATTR_NETWORK_TYPE, ATTR_NETWORK_TRANSPORT, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_PROCESS_EXECUTABLE_NAME, ATTR_PROCESS_PID, ATTR_CLIENT_ADDRESS, ATTR_CLIENT_PORT, ATTR_NETWORK_PEER_ADDRESS, ATTR_NETWORK_PEER_PORT]) {
      assert.ok(keys.has(k), k);
    }
    assert.equal(new Set(ATTRIBUTES.map((a) => a.key)).size, ATTRIBUTES.length, 'each key once');
    assert.equal(new Set(Object.values(INSTRUMENTS).map((i) => i.name)).size, Object.keys(INSTRUMENTS).length);
  });

  it('reads every attribute from the event (table)', () => {
    const want: Record<string, string | number> = {
      'network.type': 'ipv4', 'network.transport': 'tcp', 'server.address': '10.96.0.20', 'server.port': 8080, 'process.executable.name': 'node',
      'k8s.src.namespace': 'shop', 'k8s.src.name': 'frontend-x2x8k', 'k8s.src.type': 'Pod', 'k8s.src.owner.name': 'frontend', 'k8s.src.owner.type': 'Deployment',
      'k8s.dst.namespace': 'shop', 'k8s.dst.name': 'cart', 'k8s.dst.type': 'Service', 'k8s.dst.owner.name': 'cart', 'k8s.dst.owner.type': 'Deployment',
      'process.pid': 900, 'network.peer.address': '10.96.0.20', 'network.peer.port': 8080, 'client.address': '10.244.1.7', 'client.port': 40112,
      'k8s.src.pod.name': 'frontend-x2x8k', 'k8s.src.pod.uid': 'u1', 'k8s.src.container.name': 'web', 'k8s.src.container.id': 'containerd://4f1c', 'k8s.src.node.name': 'node-a',
      'k8s.dst.service.name': 'cart',
    };
    assert.deepEqual(logAttributes(BASE), want);
    assert.deepEqual(Object.keys(allMetricAttributes(BASE)), METRIC_ATTRIBUTE_KEYS.filter((k) => k !== 'error.type'), 'error.type only on failures');
    assert.deepEqual(allMetricAttributes({ ...BASE, ipVersion: 6, daddr: '2001:db8::1', src: undefined, dst: undefined }), {
      'network.type': 'ipv6', 'network.transport': 'tcp', 'server.address': '2001:db8::1', 'server.port': 8080, 'process.executable.name': 'node',
    });
    for (const a of ATTRIBUTES) {
      const v = a.get(BASE);
      if (v !== undefined) assert.equal(typeof v === 'number' ? (Number.isInteger(v) ? 'int' : 'double') : 'string', a.type, a.key);
    }
  });

  it('connlat-probe events: error.type on failures (a fixed set), SYN retransmits, handshake RTT and errno on logs', () => {
    const probe: ConnectEvent = { ...BASE, tool: 'connlat-probe', result: 'ok', errno: undefined, synRetransmits: 1, handshakeRttMs: 1.5, src: undefined, dst: undefined };
    assert.equal(allMetricAttributes(probe)['error.type'], undefined, 'a successful connect has no error.type');
    const logs = logAttributes(probe);
    assert.equal(logs['connlat.tcp.syn_retransmits'], 1);
    assert.equal(logs['connlat.tcp.handshake_rtt'], 0.0015, 'seconds');
    for (const result of ['refused', 'timed_out', 'host_unreachable', 'net_unreachable', 'aborted'] as const) {
      const failed = { ...probe, failed: true, result, handshakeRttMs: undefined };
      assert.equal(allMetricAttributes(failed)['error.type'], result);
      assert.equal(logAttributes(failed)['error.type'], result);
    }
    const other = logAttributes({ ...probe, failed: true, result: 'other', errno: 104, handshakeRttMs: undefined });
    assert.deepEqual([other['error.type'], other['connlat.tcp.errno']], ['other', 104]);
    assert.equal(allMetricAttributes({ ...BASE, failed: true })['error.type'], undefined, 'tcpstates does not say why');
    assert.equal(ATTRIBUTES.find((a) => a.key === 'connlat.tcp.handshake_rtt')!.type, 'double');
  });

  it('default allow list: every metric attribute but the pod-level names', () => {
    assert.deepEqual(METRIC_ATTRIBUTE_KEYS.filter((k) => !DEFAULT_METRIC_ATTRIBUTES.includes(k)), ['k8s.src.name', 'k8s.dst.name']);
  });

  it('an attribute left out of the cache key is the same for every event to one server.address', () => {
    const variants: ConnectEvent[] = [
      { ...BASE, dport: 9090 }, { ...BASE, comm: 'java' }, { ...BASE, pid: 1 }, { ...BASE, failed: true }, { ...BASE, src: undefined },
      { ...BASE, dst: { ...BASE.dst!, type: 'Pod' } }, { ...BASE, src: { ...BASE.src!, ownerName: 'other' } },
    ];
    for (const a of ATTRIBUTES.filter((x) => x.signal === 'metrics' && !x.cacheKey)) {
      for (const v of variants) assert.equal(a.get(v), a.get(BASE), `${a.key} must be part of the cache key`);
    }
  });

  it('the attribute cache gives each event the attributes of its own series (every metric attribute varied)', () => {
    const cache = new MetricAttributeCache([...METRIC_ATTRIBUTE_KEYS], 64);
    const events: ConnectEvent[] = [BASE, { ...BASE, src: undefined, dst: undefined }, { ...BASE, src: undefined, dst: undefined, dport: 1 }, { ...BASE, src: undefined, dst: undefined, comm: 'java' },
      { ...BASE, failed: true, result: 'refused' }, { ...BASE, failed: true, result: 'timed_out' }, { ...BASE, failed: true }];
    for (const field of ['namespace', 'name', 'type', 'ownerName', 'ownerType'] as const) {
      events.push({ ...BASE, src: { ...BASE.src!, [field]: 'x' } }, { ...BASE, dst: { ...BASE.dst!, [field]: 'y' } }, { ...BASE, dst: { ...BASE.dst!, [field]: undefined } });
    }
    for (let round = 0; round < 2; round++) for (const e of events) assert.deepEqual(cache.get(e), allMetricAttributes(e));
  });
});
