// Shared by the hardening tests: process memory and CPU from /proc, totals from decoded OTLP requests filtered by a
// resource attribute (several agents can share one receiver), and small waits.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { attrs } from '../telemetry/helpers.ts';

export const FAKES = fileURLToPath(new URL('../fixtures/fake-tools/', import.meta.url));
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** VmRSS and VmHWM (peak RSS) of a process, in MiB. */
export function memoryMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** utime + stime of a process in seconds (from /proc/<pid>/stat; clock ticks are 100 Hz on Linux). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export { freePort } from '../support/net.ts';

/** Requests whose resource has `key` = `value` (requests hold one resource each, as the agent sends them). */
export function forResource(requests: any[], key: string, value: string): any[] {
  return requests.filter((req) =>
    (req.resourceMetrics ?? req.resourceLogs ?? []).some((r: any) => attrs(r.resource?.attributes)[key] === value),
  );
}

function lastMetricIn(requests: any[], name: string): any {
  for (let i = requests.length - 1; i >= 0; i--)
    for (const rm of requests[i].resourceMetrics ?? [])
      for (const sm of rm.scopeMetrics ?? []) for (const m of sm.metrics ?? []) if (m.name === name) return m;
  return undefined;
}

/** Cumulative total of a histogram (sum of data point counts) in the last request carrying it. */
export function histogramTotal(requests: any[], name = 'tcp.connect.duration'): number {
  const m = lastMetricIn(requests, name);
  return (m?.histogram?.dataPoints ?? []).reduce((a: number, dp: any) => a + Number(dp.count), 0);
}

/** Data points of a histogram in the last request carrying it. */
export function histogramPoints(requests: any[], name = 'tcp.connect.duration'): any[] {
  return lastMetricIn(requests, name)?.histogram?.dataPoints ?? [];
}

/** Counter total by one attribute's value ('' when absent), from the last request carrying it. */
export function counterBy(requests: any[], name: string, key?: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const dp of lastMetricIn(requests, name)?.sum?.dataPoints ?? []) {
    const k = key === undefined ? '' : String(attrs(dp.attributes)[key] ?? '');
    out[k] = (out[k] ?? 0) + Number(dp.asInt ?? dp.asDouble);
  }
  return out;
}

export function logBodies(requests: any[]): string[] {
  const out: string[] = [];
  for (const req of requests)
    for (const rl of req.resourceLogs ?? []) for (const sl of rl.scopeLogs ?? []) for (const r of sl.logRecords ?? []) out.push(r.body?.stringValue);
  return out;
}

export async function waitUntil(what: string, pred: () => boolean, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** "<events> <slow>" written by tcpconnlat-flood.mjs. */
export function floodTotals(path: string): { events: number; slow: number } | undefined {
  try {
    const [events, slow] = readFileSync(path, 'utf8').trim().split(' ').map(Number);
    return { events: events!, slow: slow! };
  } catch {
    return undefined;
  }
}
