// Shared test data and helpers for the telemetry tests: connect events built by hand in tcpconnlat's shape, and
// readers for decoded OTLP requests (from the gRPC receiver or from OTLP/JSON lines; both use camelCase fields and
// 64-bit integers as decimal strings).
import type { ConnectEvent, PeerIdentity } from '../../src/event.ts';
import { METRIC_ATTRIBUTE_KEYS } from '../../src/telemetry/attributes.ts';
import type { TelemetryOptions } from '../../src/telemetry/types.ts';

export const T0 = 1764240000000; // 2025-11-27T10:40:00Z, epoch ms

const FRONTEND: PeerIdentity = {
  namespace: 'shop',
  name: 'frontend-7d9c5b-x2x8k',
  type: 'Pod',
  ownerName: 'frontend',
  ownerType: 'Deployment',
  podName: 'frontend-7d9c5b-x2x8k',
  podUid: '0b6c3a52-5f43-4c55-9a3e-2a1d2f0f6a11',
  containerName: 'web',
  containerId: 'containerd://4f1c',
  nodeName: 'node-a',
};
const CART: PeerIdentity = { namespace: 'shop', name: 'cart', type: 'Service', ownerName: 'cart', ownerType: 'Deployment', serviceName: 'cart' };

function ev(i: number, pid: number, comm: string, ip: 4 | 6, saddr: string, daddr: string, dport: number, lat: number, extra: Partial<ConnectEvent> = {}): ConnectEvent {
  return { timeMs: T0 + i * 1000 + 123, tool: 'tcpconnlat', pid, comm, ipVersion: ip, saddr, sport: undefined, daddr, dport, latencyMs: lat, failed: false, ...extra };
}

/** Nine successful connects, as tcpconnlat prints them (PID COMM IP SADDR DADDR DPORT LAT(ms)). */
export const NINE_CONNECTS: ConnectEvent[] = [
  ev(0, 21168, 'curl', 4, '10.0.2.15', '76.76.21.21', 443, 47.8),
  ev(1, 21169, 'curl', 4, '10.0.2.15', '76.76.21.21', 443, 45.12),
  ev(2, 21170, 'curl', 4, '10.0.2.15', '76.76.21.21', 443, 9.87),
  ev(3, 3312, 'wget', 4, '10.0.2.15', '140.82.112.3', 443, 121.4),
  ev(4, 3312, 'wget', 4, '10.0.2.15', '140.82.112.3', 443, 0.61),
  ev(5, 900, 'node', 4, '10.244.1.7', '10.96.0.20', 8080, 1.25, { sport: 40112, src: FRONTEND, dst: CART }),
  ev(6, 901, 'node', 4, '10.244.1.7', '10.96.0.20', 8080, 0.95, { sport: 40114, src: FRONTEND, dst: CART }),
  ev(7, 4410, 'python3', 6, '2001:db8::15', '2606:4700::6810:84e5', 443, 12.34),
  ev(8, 4410, 'python3', 6, '2001:db8::15', '2606:4700::6810:84e5', 443, 3.02),
];

/** Failed connects (tcpstates SYN_SENT -> CLOSE): one slow, two fast, to one destination. */
export const FAILURES: ConnectEvent[] = [
  { ...ev(9, 5001, 'curl', 4, '10.0.2.15', '10.0.2.99', 80, 1003.5), tool: 'tcpstates', sport: 51000, failed: true },
  { ...ev(10, 5002, 'curl', 4, '10.0.2.15', '10.0.2.99', 80, 0.05), tool: 'tcpstates', sport: 51002, failed: true },
  { ...ev(11, 5003, 'curl', 4, '10.0.2.15', '10.0.2.99', 80, 0.07), tool: 'tcpstates', sport: 51004, failed: true },
];

export function options(overrides: Partial<TelemetryOptions>): TelemetryOptions {
  return {
    exports: [],
    resource: { 'service.name': 'connlat', 'service.version': '0.1.0', 'k8s.node.name': 'node-a' },
    histogram: 'explicit',
    metricAttributes: [...METRIC_ATTRIBUTE_KEYS],
    cardinalityLimit: 2000,
    exportIntervalMs: 600_000,
    slowMs: 10,
    slowLogRatePerSec: 100,
    slowLogBurst: 100,
    temporality: 'cumulative',
    ...overrides,
  };
}

/** OTLP KeyValue[] -> plain object (intValue strings become numbers so tests compare naturally). */
export function attrs(kvs: any[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of kvs ?? []) {
    const v = kv.value ?? {};
    if ('stringValue' in v) out[kv.key] = v.stringValue;
    else if ('intValue' in v) out[kv.key] = Number(v.intValue);
    else if ('boolValue' in v) out[kv.key] = v.boolValue;
    else if ('doubleValue' in v) out[kv.key] = v.doubleValue;
    else out[kv.key] = v;
  }
  return out;
}

/** All metrics of the last request that carries `name` (cumulative: the last export holds everything). */
export function lastMetric(requests: any[], name: string): any {
  for (let i = requests.length - 1; i >= 0; i--) {
    for (const rm of requests[i].resourceMetrics ?? []) {
      for (const sm of rm.scopeMetrics ?? []) {
        for (const m of sm.metrics ?? []) if (m.name === name) return m;
      }
    }
  }
  return undefined;
}

export function logRecords(requests: any[]): any[] {
  const out: any[] = [];
  for (const req of requests) for (const rl of req.resourceLogs ?? []) for (const sl of rl.scopeLogs ?? []) out.push(...(sl.logRecords ?? []));
  return out;
}

export function spansOf(requests: any[]): any[] {
  const out: any[] = [];
  for (const req of requests) for (const rs of req.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) out.push(...(ss.spans ?? []));
  return out;
}

/** Sum data points of a counter keyed by one attribute's value ('' when absent). */
export function counterBy(requests: any[], name: string, key?: string): Record<string, number> {
  const m = lastMetric(requests, name);
  const out: Record<string, number> = {};
  for (const dp of m?.sum?.dataPoints ?? []) {
    const k = key === undefined ? '' : String(attrs(dp.attributes)[key] ?? '');
    out[k] = Number(dp.asInt ?? dp.asDouble);
  }
  return out;
}

export function nanos(ms: number): string {
  return (BigInt(ms) * 1_000_000n).toString();
}

/**
 * Drops what legitimately differs between two collections of the same data: the timestamps, and (unless
 * keepZeroDropped) the zero droppedAttributesCount the JS protobuf encoder writes explicitly where OTLP/JSON leaves
 * default values out. Everything else must match.
 */
export function comparable(node: unknown, opts: { keepZeroDropped?: boolean } = {}): unknown {
  if (Array.isArray(node)) return node.map((n) => comparable(n, opts));
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'timeUnixNano' || k === 'startTimeUnixNano' || k === 'observedTimeUnixNano') continue;
    if (!opts.keepZeroDropped && k === 'droppedAttributesCount' && v === 0) continue;
    out[k] = comparable(v, opts);
  }
  return out;
}
