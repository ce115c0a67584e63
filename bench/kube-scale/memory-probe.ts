// Preloaded into an agent by bench/kube-scale.ts (node --expose-gc --import this-file ...): every BENCH_PROBE_MS
// (default 2000) it appends one JSON line to BENCH_PROBE_FILE with the heap and RSS as they are (what the memory
// limit sees) and the peak RSS so far (VmHWM). On SIGUSR2 it runs a full GC first and marks the line `gc: true`:
// its heapUsed is the live heap, what the index keeps. No GC is forced otherwise, so RSS is the agent's own.
import { appendFileSync, readFileSync } from 'node:fs';

const file = process.env.BENCH_PROBE_FILE;
const gc = (globalThis as { gc?: () => void }).gc;
if (file === undefined || gc === undefined) throw new Error('memory-probe: set BENCH_PROBE_FILE and run node with --expose-gc');
const every = Number(process.env.BENCH_PROBE_MS ?? 2000);

const peakRssKb = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);

function probe(afterGc: boolean): void {
  if (afterGc) gc!();
  const m = process.memoryUsage();
  const cpu = process.cpuUsage();
  appendFileSync(file!, `${JSON.stringify({ t: Date.now(), gc: afterGc, heapUsed: m.heapUsed, heapTotal: m.heapTotal, rss: m.rss, peakRss: peakRssKb() * 1024, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`);
}

setInterval(() => probe(false), every).unref();
process.on('SIGUSR2', () => probe(true));
