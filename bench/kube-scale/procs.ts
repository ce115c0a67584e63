// What bench/kube-scale.ts reads about processes and the API server: CPU and RSS from /proc, the agent's own
// memory probe lines, and the API server's watch counters from /metrics.
import { readFileSync } from 'node:fs';
import type { Loader } from './cluster.ts';

const TICKS = 100; // USER_HZ on Linux

export interface ProcSample {
  cpuS: number;
  rssMiB: number;
}

export function procSample(pid: number | undefined): ProcSample {
  if (pid === undefined) return { cpuS: 0, rssMiB: 0 };
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpuS = (Number(fields[11]) + Number(fields[12])) / TICKS; // utime, stime (fields 14, 15)
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return { cpuS, rssMiB: rss / 1024 };
  } catch {
    return { cpuS: 0, rssMiB: 0 };
  }
}

export interface ProbeLine {
  t: number;
  /** after a forced full GC (SIGUSR2): heapUsed is the live heap */
  gc: boolean;
  heapUsed: number;
  heapTotal: number;
  rss: number;
  peakRss: number;
  cpuMs: number;
}

export function probeLines(file: string): ProbeLine[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as ProbeLine);
  } catch {
    return [];
  }
}

export interface WatchCounters {
  /** apiserver_watch_events_total, summed over kinds */
  events: number;
  /** apiserver_watch_events_sizes_sum: bytes of events sent to watchers */
  bytes: number;
  /** apiserver_longrunning_requests{verb="WATCH"} */
  watches: number;
}

function sumMetric(text: string, name: string, filter?: RegExp): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (filter && !filter.test(line)) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return total;
}

export async function watchCounters(loader: Loader): Promise<WatchCounters> {
  const r = await loader.send('GET', '/metrics');
  if (r.status !== 200) throw new Error(`/metrics: HTTP ${r.status}`);
  return {
    events: sumMetric(r.body, 'apiserver_watch_events_total'),
    bytes: sumMetric(r.body, 'apiserver_watch_events_sizes_sum'),
    watches: sumMetric(r.body, 'apiserver_longrunning_requests', /verb="WATCH"/),
  };
}

/** Least-squares line through (x, y): slope and intercept. */
export function fitLine(points: Array<[number, number]>): { slope: number; intercept: number } {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const sxx = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  const sxy = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  const slope = sxx === 0 ? 0 : sxy / sxx;
  return { slope, intercept: my - slope * mx };
}
