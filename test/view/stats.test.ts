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
