// The live terminal table (on a TTY): top destinations by p99, connect counts, why the last failure failed and the
// SYN retransmits (connlat-probe), recent slow connects, source in use. Redrawn every second; text from the tools is already sanitised by the parser (no escapes in COMM).
import type { LiveStats } from './stats.ts';

export interface ViewStatus {
  source: string;
  ready: boolean;
  linesRejected: number;
  restarts: number;
  lostEvents: number;
  enrichment: string;
  exports: string;
}

const fmt = (ms: number) => (Number.isNaN(ms) ? '-' : ms < 10 ? ms.toFixed(2) : ms.toFixed(1));

export function renderTable(stats: LiveStats, status: ViewStatus, width: number, rows: number): string {
  const out: string[] = [];
  const clip = (s: string) => (s.length > width ? s.slice(0, width - 1) + '…' : s);
  out.push(clip(`connlat  source: ${status.source} [${status.ready ? 'ready' : 'NOT READY'}]  export: ${status.exports}`));
  out.push(
    clip(
      `connects: ${stats.connects}  failures: ${stats.failures}  rejected lines: ${status.linesRejected}  ` +
        `tool restarts: ${status.restarts}  lost events: ${status.lostEvents}  ${status.enrichment}`,
    ),
  );
  out.push('');
  const destWidth = Math.max(20, Math.min(48, width - 86));
  out.push(clip(`${'DESTINATION'.padEnd(destWidth)} ${'COUNT'.padStart(8)} ${'FAIL'.padStart(6)} ${'REASON'.padEnd(16)} ${'RETX'.padStart(5)} ${'p50 ms'.padStart(8)} ${'p90 ms'.padStart(8)} ${'p99 ms'.padStart(8)}  LAST COMM`));
  const topN = Math.max(3, rows - 17);
  for (const d of stats.top(topN)) {
    const l = d.latency;
    out.push(
      clip(
        `${d.label.slice(0, destWidth).padEnd(destWidth)} ${String(l.count).padStart(8)} ${String(d.failures).padStart(6)} ` +
          `${(d.lastFailure ?? '-').slice(0, 16).padEnd(16)} ${String(d.synRetransmits).padStart(5)} ` +
          `${fmt(l.quantile(0.5)).padStart(8)} ${fmt(l.quantile(0.9)).padStart(8)} ${fmt(l.quantile(0.99)).padStart(8)}  ${d.lastComm}`,
      ),
    );
  }
  out.push('', 'RECENT SLOW OR FAILED CONNECTS');
  for (const s of stats.recentSlow.slice(-8).reverse()) {
    out.push(clip(`${new Date(s.timeMs).toISOString().slice(11, 23)}  ${s.text}`));
  }
  return out.join('\n');
}

/** Redraws the table every second on a TTY stream until stopped. */
export class LiveView {
  private timer: NodeJS.Timeout | undefined;
  private readonly stream: NodeJS.WriteStream;
  private readonly draw: () => string;
  constructor(stream: NodeJS.WriteStream, draw: (width: number, rows: number) => string) {
    this.stream = stream;
    this.draw = () => draw(stream.columns || 120, stream.rows || 40);
  }
  start(): void {
    this.stream.write('\x1b[?25l'); // hide cursor
    const tick = () => this.stream.write('\x1b[H\x1b[2J' + this.draw() + '\n');
    tick();
    this.timer = setInterval(tick, 1000);
    this.timer.unref();
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stream.write('\x1b[?25h');
  }
}
