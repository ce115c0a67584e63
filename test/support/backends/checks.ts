// What the tests that send real agents' data through our gateway to the backends check: the gateway's own metrics,
// how many slow-connection records VictoriaLogs holds (and how many distinct), and each record's span once in Jaeger.
import assert from 'node:assert/strict';
import { waitFor, type RunningCollector } from '../collector/collector.ts';
import { VICTORIA_LOGS_TENANTS } from './gateway.ts';
import type { Jaeger } from './jaeger.ts';
import type { VictoriaLogs } from './victoria-logs.ts';

/** One gauge/counter of the gateway's own metrics (Prometheus text), summed over the series that match `labels`. */
export async function selfMetric(col: RunningCollector, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(col.selfMetricsUrl)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** LogsQL: how many records match `filter`, and how many distinct ones (by agent and PID: the fake gives every slow
 * connect its own PID). */
export async function logCountsIn(logs: VictoriaLogs, filter: string, tenantB: boolean): Promise<{ total: number; distinct: number }> {
  const tenant = tenantB ? VICTORIA_LOGS_TENANTS.tenantB : VICTORIA_LOGS_TENANTS.default;
  const [row] = await logs.query(`${filter} | stats count() as total, count_uniq("test.agent", "process.pid") as distinct`, { tenant });
  return { total: Number(row?.total ?? 0), distinct: Number(row?.distinct ?? 0) };
}

/** How many of an agent's slow-connection records have their span in Jaeger exactly once (the record's trace holds
 * one span, the record's span id, of this agent); a record without span ids throws. */
export async function spansOnce(traces: Jaeger, logs: VictoriaLogs, run: string, agent: string, tenantB: boolean): Promise<number> {
  const tenant = tenantB ? VICTORIA_LOGS_TENANTS.tenantB : VICTORIA_LOGS_TENANTS.default;
  const records = await logs.query(`"test.run":="${run}" "test.agent":="${agent}" | fields trace_id, span_id`, { tenant });
  let found = 0;
  for (let i = 0; i < records.length; i += 16) {
    await Promise.all(records.slice(i, i + 16).map(async (r) => {
      assert.ok(r.trace_id && r.span_id, `${agent}: a record without its span ids: ${JSON.stringify(r)}`);
      const spans = await traces.trace(r.trace_id);
      if (spans.length === 1 && spans[0]!.spanId === r.span_id && spans[0]!.resource['test.agent'] === agent) found++;
    }));
  }
  return found;
}

/** Raw samples (/api/v1/export) of the series matching `match` that hold two samples at one timestamp (a request
 * delivered twice; VictoriaMetrics keeps both without -dedup.minScrapeInterval). Also returns how many series matched. */
export async function seriesWithDuplicateSamples(metricsUrl: string, match: string): Promise<{ series: number; twice: Record<string, string>[] }> {
  const exported = await (await fetch(`${metricsUrl}/api/v1/export?${new URLSearchParams({ 'match[]': match })}`)).text();
  const series = exported.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { metric: Record<string, string>; timestamps: number[] });
  return { series: series.length, twice: series.filter((s) => new Set(s.timestamps).size !== s.timestamps.length).map((s) => s.metric) };
}

/** Waits until `pred` holds (errors count as not yet: a backend still starting). */
export async function waitUntilAsync(what: string, pred: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  await waitFor(what, async () => ((await pred()) ? true : undefined), timeoutMs, 250);
}
