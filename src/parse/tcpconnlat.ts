// libbpf-tools tcpconnlat output (libbpf-tools/tcpconnlat.c; the Debian 0.26 build adds -L):
//   header  [%-9s "TIME(s)"] "%-6s %-12s %-2s %-16s [%-6s] %-16s %-5s %s"  PID COMM IP SADDR [LPORT] DADDR DPORT LAT(ms)
//   event   [%-9.3f secs]    "%-6d %-12.12s %-2d %-16s [%-6d] %-16s %-5d %.2f"
// -t adds TIME(s) (seconds since the first event; ignored: events are timed when read), -L adds LPORT.
//
// BCC's Python tcpconnlat (bpfcc-tools' tcpconnlat-bpfcc, tools/tcpconnlat.py in bcc 0.26):
//   header  [%-9s "TIME(s)", no separator] "%-7s %-12s %-2s %-16s [%-6s] %-16s %-5s %s"
//   event   [%-9.3f secs, no separator]     "%-7d %-12.12s %-2d %-16s [%-6d] %-16s %-5d %.2f"
// PID is 7 wide, COMM is a decoded string (its 12 are characters; stdout is UTF-8), and TIME(s) is followed by PID
// with no space: "12345.678" runs into it ("12345.6781201"), so TIME(s) ends where its %.3f ends, not at a space.

import type { ConnectEvent } from '../event.ts';
import { displayComm } from './comm.ts';
import {
  CUT, type ColumnLayout, type Columns, excerpt, fixedEnd, makeColumns, padRight, parseFixed, parseUint, reject, scanColumns,
} from './columns.ts';
import { ipVersionOf } from './ip.ts';
import type { DecodeResult } from './types.ts';

/** Linux PID_MAX_LIMIT: no pid is larger. */
export const PID_MAX = 4194304;

export interface TcpconnlatOptions {
  /** -t: leading TIME(s) column */
  readonly time: boolean;
  /** -L: LPORT column between SADDR and DADDR */
  readonly lport: boolean;
  /** BCC's Python tcpconnlat, not libbpf-tools' */
  readonly bcc: boolean;
}

export interface TcpconnlatFormat extends TcpconnlatOptions {
  readonly header: string;
  readonly layout: ColumnLayout;
}

function makeFormat(time: boolean, lport: boolean, bcc = false): TcpconnlatFormat {
  const pid = bcc ? 7 : 6;
  const widths: number[] = [];
  let header = '';
  if (time) {
    header += padRight('TIME(s)', 9) + (bcc ? '' : ' ');
    if (!bcc) widths.push(9); // BCC's TIME(s) is not a column: it is read before them (parseTcpconnlatLine)
  }
  widths.push(pid, 12, 2, 16);
  header += [padRight('PID', pid), padRight('COMM', 12), padRight('IP', 2), padRight('SADDR', 16)].join(' ') + ' ';
  if (lport) {
    widths.push(6);
    header += padRight('LPORT', 6) + ' ';
  }
  widths.push(16, 5, 0);
  header += [padRight('DADDR', 16), padRight('DPORT', 5), 'LAT(ms)'].join(' ');
  return { time, lport, bcc, header, layout: { widths, comm: time && !bcc ? 2 : 1, ...(bcc ? { commChars: true } : {}) } };
}

/** The output variants, libbpf-tools' plain first (the order shape detection tries them in), then BCC's. */
export const TCPCONNLAT_FORMATS: readonly TcpconnlatFormat[] = [
  makeFormat(false, false),
  makeFormat(true, false),
  makeFormat(false, true),
  makeFormat(true, true),
  makeFormat(false, false, true),
  makeFormat(true, false, true),
  makeFormat(false, true, true),
  makeFormat(true, true, true),
];

const cols: Columns = makeColumns();

/** A BCC -t line whose TIME(s) is not %.3f: `time` when it is digits and points padded to 9 and every column after
 * it is where it belongs, else `shape`. */
function badBccTime(line: string, end: number, format: TcpconnlatFormat): DecodeResult {
  let token = 0;
  for (let c = line.charCodeAt(0); token < end && token < 9 && ((c >= 0x30 && c <= 0x39) || c === 0x2e); c = line.charCodeAt(++token));
  let i = token;
  while (i < 9 && line.charCodeAt(i) === 0x20) i++;
  if (token === 0 || i !== 9 || !scanColumns(line, end, format.layout, cols, 9)) return reject('shape', 'not a BCC tcpconnlat -t line');
  return reject('time', `TIME(s) ${excerpt(line, 0, token)} is not seconds as %.3f`);
}

/** One tcpconnlat event line (not a header) -> event or rejection. `end` excludes trailing whitespace. */
export function parseTcpconnlatLine(line: string, end: number, format: TcpconnlatFormat, timeMs: number): DecodeResult {
  let start = 0;
  if (format.time && format.bcc) {
    const timeEnd = fixedEnd(line, 0, end, 3);
    if (timeEnd < 0) return badBccTime(line, end, format);
    start = timeEnd > 9 ? timeEnd : 9;
    for (let i = timeEnd; i < start; i++) if (line.charCodeAt(i) !== 0x20) return reject('shape', 'not a BCC tcpconnlat -t line');
  }
  if (!scanColumns(line, end, format.layout, cols, start)) {
    return reject('shape', `not a ${format.bcc ? 'BCC ' : ''}tcpconnlat${format.time ? ' -t' : ''}${format.lport ? ' -L' : ''} line`);
  }
  const { starts, ends } = cols;
  let f = 0;
  if (format.time && !format.bcc) {
    if (!(parseFixed(line, starts[f]!, ends[f]!, 3) >= 0)) {
      return reject('time', `TIME(s) ${excerpt(line, starts[f]!, ends[f]!)} is not seconds as %.3f`);
    }
    f++;
  }
  const pid = parseUint(line, starts[f]!, ends[f]!, PID_MAX);
  if (pid < 1) return reject('pid', `PID ${excerpt(line, starts[f]!, ends[f]!)} is not 1-${PID_MAX}`);
  const commField = ++f;
  const ipField = ++f;
  const family = parseUint(line, starts[ipField]!, ends[ipField]!, 99);
  if (family !== 4 && family !== 6) {
    return reject('ip_version', `IP ${excerpt(line, starts[ipField]!, ends[ipField]!)} is not 4 or 6`);
  }
  const saddrField = ++f;
  const saddr = line.slice(starts[saddrField]!, ends[saddrField]!);
  let sport: number | undefined;
  if (format.lport) {
    f++;
    sport = parseUint(line, starts[f]!, ends[f]!, 65535);
    if (sport < 1) return reject('port', `LPORT ${excerpt(line, starts[f]!, ends[f]!)} is not 1-65535`);
  }
  const daddr = line.slice(starts[++f]!, ends[f]!);
  const dportField = ++f;
  const dport = parseUint(line, starts[dportField]!, ends[dportField]!, 65535);
  const latField = ++f;
  const latencyMs = parseFixed(line, starts[latField]!, ends[latField]!, 2);

  const sVersion = ipVersionOf(saddr);
  if (sVersion === 0) return reject('ip', `SADDR ${excerpt(saddr, 0, saddr.length)} is not an IP address`);
  const dVersion = ipVersionOf(daddr);
  if (dVersion === 0) return reject('ip', `DADDR ${excerpt(daddr, 0, daddr.length)} is not an IP address`);
  if (sVersion !== family || dVersion !== family) {
    return reject('ip_version', `IP ${family} with SADDR IPv${sVersion} and DADDR IPv${dVersion}`);
  }
  if (dport < 1) return reject('port', `DPORT ${excerpt(line, starts[dportField]!, ends[dportField]!)} is not 1-65535`);
  if (latencyMs === CUT) {
    return reject('shape', `LAT(ms) ${excerpt(line, starts[latField]!, ends[latField]!)} is not %.2f: a line cut short`);
  }
  if (Number.isNaN(latencyMs)) {
    return reject('latency', `LAT(ms) ${excerpt(line, starts[latField]!, ends[latField]!)} is not a finite number >= 0`);
  }
  const event: ConnectEvent = {
    timeMs,
    tool: 'tcpconnlat',
    pid,
    comm: displayComm(line, starts[commField]!, ends[commField]!),
    ipVersion: family,
    saddr,
    sport,
    daddr,
    dport,
    latencyMs,
    failed: false,
  };
  return { kind: 'event', event };
}
