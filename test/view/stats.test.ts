import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConnectEvent } from '../../src/event.ts';
import { LatencySketch, LiveStats } from '../../src/view/stats.ts';
import { renderTable } from '../../src/view/table.ts';

const ev = (daddr: string, dport: number, latencyMs: number, failed = false): ConnectEvent => ({
  timeMs: Date.UTC(2026, 10, 27, 12, 0, 0), tool: 'tcpconnlat', pid: 42, comm: 'curl', ipVersion: 4,
  saddr: '10.0.0.1', sport: undefined, daddr, dport, latencyMs, failed,
});

test('sketch quantiles are within one bucket (~9%) of the exact value', () => {
  const s = new LatencySketch();
  for (let i = 1; i <= 1000; i++) s.add(i / 10); // 0.1 .. 100 ms
  for (const [q, exact] of [[0.5, 50], [0.9, 90], [0.99, 99]] as const) {
    const got = s.quantile(q);
    assert.ok(got >= exact && got <= exact * 1.095, `q${q}: ${got} vs ${exact}`);
  }
  assert.equal(s.count, 1000);
  assert.ok(Math.abs(s.sumMs - 50050) < 1e-6);
});

test('destinations are bounded, least recently seen evicted', () => {
  const stats = new LiveStats({ maxDestinations: 3, slowMs: 100 });
  for (const ip of ['10.0.0.2', '10.0.0.3', '10.0.0.4']) stats.observe(ev(ip, 80, 1));
  stats.observe(ev('10.0.0.2', 80, 1)); // refresh .2
  stats.observe(ev('10.0.0.5', 80, 1)); // evicts .3
  assert.deepEqual([...stats.destinations.keys()].sort(), ['10.0.0.2:80', '10.0.0.4:80', '10.0.0.5:80']);
});

test('table orders by p99 and lists slow and failed connects', () => {
  const stats = new LiveStats({ slowMs: 100 });
  stats.observe(ev('10.0.0.2', 80, 1));
  stats.observe(ev('10.0.0.3', 443, 250));
  stats.observe(ev('10.0.0.4', 5432, 3000, true));
  const text = renderTable(stats, { source: 'tcpstates', ready: true, linesRejected: 2, restarts: 0, lostEvents: 0, enrichment: 'k8s: off', exports: 'otlp' }, 120, 40);
  const lines = text.split('\n');
  const i443 = lines.findIndex((l) => l.startsWith('10.0.0.3:443'));
  const i80 = lines.findIndex((l) => l.startsWith('10.0.0.2:80'));
  assert.ok(i443 > 0 && i80 > i443, 'slowest first');
  assert.match(text, /connects: 2 {2}failures: 1 {2}rejected lines: 2/);
  assert.match(text, /curl\[42\] 10\.0\.0\.1 -> 10\.0\.0\.3:443 took 250\.00 ms/);
  assert.match(text, /curl\[42\] 10\.0\.0\.1 -> 10\.0\.0\.4:5432 failed after 3000\.00 ms/);
});

test('with connlat-probe events: the reason of the last failure and the SYN retransmits per destination, and in the recent list', () => {
  const stats = new LiveStats({ slowMs: 100 });
  const probe = (daddr: string, latencyMs: number, extra: Partial<ConnectEvent>): ConnectEvent => ({
    ...ev(daddr, 443, latencyMs), tool: 'connlat-probe', sport: 40000, result: 'ok', errno: undefined, synRetransmits: 0,
    handshakeRttMs: undefined, ...extra,
  });
  stats.observe(probe('10.0.0.7', 1011.65, { synRetransmits: 1, handshakeRttMs: 1 }));
  stats.observe(probe('10.0.0.8', 0.18, { failed: true, result: 'refused' }));
  stats.observe(probe('10.0.0.8', 2501.14, { failed: true, result: 'aborted', synRetransmits: 2 }));
  stats.observe(probe('10.0.0.9', 3.2, { failed: true, result: 'other', errno: 104 }));
  const text = renderTable(stats, { source: 'connlat-probe', ready: true, linesRejected: 0, restarts: 0, lostEvents: 0, enrichment: 'k8s: off', exports: 'otlp' }, 140, 40);
  const row = (addr: string) => text.split('\n').find((l) => l.startsWith(addr))!.split(/ +/);
  assert.match(text, /^DESTINATION +COUNT +FAIL REASON +RETX +p50 ms/m);
  assert.deepEqual(row('10.0.0.7:443').slice(1, 5), ['1', '0', '-', '1']);
  assert.deepEqual(row('10.0.0.8:443').slice(1, 5), ['0', '2', 'aborted', '2']);
  assert.deepEqual(row('10.0.0.9:443').slice(1, 5), ['0', '1', 'other:104', '0']);
  assert.match(text, /curl\[42\] 10\.0\.0\.1 -> 10\.0\.0\.7:443 took 1011\.65 ms \(1 SYN retransmit, RTT 1\.000 ms\)/);
  assert.doesNotMatch(text, /failed after 0\.18 ms/, 'a fast refusal is counted, not listed (the slow-log rule)');
  assert.match(text, /-> 10\.0\.0\.8:443 failed after 2501\.14 ms: aborted \(2 SYN retransmits\)$/m);
});
