// npx node bench/tcpstates-decode.ts BEFORE_TREE: LineDecoder('tcpstates') of this tree against the one in another
// checkout (e.g. `git archive <commit> | tar -x -C /tmp/before`), over the same lines in one process, rounds
// alternating (the order flips every round): CPU us per line, parse only. Lines: the recorded -w and -T fixtures,
// and generated 9-lines-per-connect streams (both ends of a loopback connect, as bench/formats.ts prints them).
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { LineDecoder as New } from '../src/parse/decoder.ts';
import { renderTcpstates, tcpstatesHeader } from '../test/parse/render.ts';

if (!process.argv[2]) throw new Error('usage: bench/tcpstates-decode.ts BEFORE_TREE (a checkout to compare with)');
const { LineDecoder: Old } = await import(join(resolve(process.argv[2]), 'src/parse/decoder.ts')) as { LineDecoder: typeof New };
const fixture = (name: string) =>
  readFileSync(new URL(`../test/fixtures/recordings/${name}`, import.meta.url), 'latin1').split('\n').filter(Boolean);
const sets: Record<string, string[]> = { 'recorded -w': fixture('tcpstates-w.txt'), 'recorded -T': fixture('tcpstates-T.txt') };
for (const wide of [false, true]) {
  const lines = [tcpstatesHeader(false, wide)];
  for (let i = 0; i < 2000; i++) {
    const d = i % 1000, daddr = `10.0.${d >> 8}.${d & 255}`, dport = 1024 + d, pid = 1000 + (i % 5000), sport = 20000 + i;
    const client = (i * 2).toString(16).padStart(16, 'f'), child = (i * 2 + 1).toString(16).padStart(16, 'f');
    const l = (skaddr: string, p: number, comm: string, laddr: string, lport: number, raddr: string, rport: number, from: string, to: string, ms: string) =>
      renderTcpstates({ wide, skaddr, pid: p, comm, laddr, lport, raddr, rport, oldState: from, newState: to, ms });
    lines.push(
      l(client, pid, 'python3', '10.244.1.7', 0, daddr, dport, 'CLOSE', 'SYN_SENT', '0.000'),
      l(child, 0, 'swapper/0', daddr, dport, '10.244.1.7', sport, 'SYN_RECV', 'ESTABLISHED', '0.010'),
      l(client, 0, 'swapper/0', '10.244.1.7', sport, daddr, dport, 'SYN_SENT', 'ESTABLISHED', '1.234'),
      l(client, pid, 'python3', '10.244.1.7', sport, daddr, dport, 'ESTABLISHED', 'FIN_WAIT1', '0.020'),
      l(child, 0, 'swapper/0', daddr, dport, '10.244.1.7', sport, 'ESTABLISHED', 'CLOSE_WAIT', '0.030'),
      l(client, 0, 'swapper/0', '10.244.1.7', sport, daddr, dport, 'FIN_WAIT1', 'FIN_WAIT2', '0.001'),
      l(child, 7, 'server', daddr, dport, '10.244.1.7', sport, 'CLOSE_WAIT', 'LAST_ACK', '0.015'),
      l(client, 0, 'swapper/0', '10.244.1.7', sport, daddr, dport, 'FIN_WAIT2', 'CLOSE', '0.002'),
      l(child, 0, 'swapper/0', daddr, dport, '10.244.1.7', sport, 'LAST_ACK', 'CLOSE', '0.004'));
  }
  sets[`generated ${wide ? '-w' : 'narrow'} (9/connect)`] = lines;
}
const TARGET = 400_000;
function run(D: typeof New, lines: string[]): number {
  const reps = Math.ceil(TARGET / lines.length);
  let events = 0;
  const t0 = process.cpuUsage();
  for (let r = 0; r < reps; r++) { const d = new D('tcpstates'); for (const l of lines) if (d.decode(l, 0).kind === 'event') events++; }
  const c = process.cpuUsage(t0);
  if (events < 0) throw new Error('unreachable'); // keeps the results used
  return (c.user + c.system) / (reps * lines.length);
}
console.log(`tcpstates decode, before = ${process.argv[2]}, after = this tree; load average ${loadavg()[0]!.toFixed(1)}`);
for (const [name, lines] of Object.entries(sets)) {
  const o: number[] = [], n: number[] = [];
  for (let round = 0; round < 6; round++) {
    if (round % 2) { n.push(run(New, lines)); o.push(run(Old, lines)); } else { o.push(run(Old, lines)); n.push(run(New, lines)); }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  const ratios = o.map((x, i) => (n[i]! / x).toFixed(2));
  console.log(`${name} (${lines.length} lines): before ${o.map((x) => x.toFixed(2)).join(' ')} | after ${n.map((x) => x.toFixed(2)).join(' ')} us/line; median before ${med(o).toFixed(2)} after ${med(n).toFixed(2)}; after/before per round ${ratios.join(' ')}`);
}
console.log(`load average ${loadavg()[0]!.toFixed(1)} at the end`);
