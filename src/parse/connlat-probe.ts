// connlat-probe output (bpf-tools/connlat-probe/connlat-probe.c), format 1: tcpconnlat's `-t -L` columns, with
// LAT(ms) padded to 7, then SYN retransmits, handshake RTT and the result:
//   header  "%-9s %-6s %-12s %-2s %-16s %-6s %-16s %-5s %-7s %-4s %-7s %s  # connlat-probe format %d"
//   event   "%-9.3f %-6u %-12.12s %-2d %-16s %-6u %-16s %-5u %-7.2f %-4u %-7s %s"
//           TIME(s) PID COMM IP SADDR LPORT DADDR DPORT LAT(ms) RETX RTT(ms) RESULT
// RTT(ms) is "%.3f" of the smoothed RTT, or "-" (failed, or no RTT sample). Decimals must be exactly what printf
// prints (%.3f, %.2f, %.3f): fewer is a line cut short. RESULT: ok refused timed_out
// host_unreachable net_unreachable aborted other:<errno>. LPORT is 0 when the connect failed before a local port
// was bound. The header's version is checked: another format version is rejected, never guessed at.

import { CONNECT_RESULTS, type ConnectEvent, type ConnectResult } from '../event.ts';
import { displayComm } from './comm.ts';
import {
  CUT, type ColumnLayout, type Columns, excerpt, makeColumns, padRight, parseFixed, parseUint, reject, scanColumns,
} from './columns.ts';
import { ipVersionOf } from './ip.ts';
import { PID_MAX } from './tcpconnlat.ts';
import type { DecodeResult } from './types.ts';

export const CONNLAT_PROBE_FORMAT_VERSION = 1;
const VERSION_MARK = '  # connlat-probe format ';

export const CONNLAT_PROBE_HEADER =
  [
    padRight('TIME(s)', 9), padRight('PID', 6), padRight('COMM', 12), padRight('IP', 2), padRight('SADDR', 16),
    padRight('LPORT', 6), padRight('DADDR', 16), padRight('DPORT', 5), padRight('LAT(ms)', 7), padRight('RETX', 4),
    padRight('RTT(ms)', 7), 'RESULT',
  ].join(' ') + VERSION_MARK + CONNLAT_PROBE_FORMAT_VERSION;

/** The format version a connlat-probe header names, or undefined when the line is not one. */
export function connlatProbeHeaderVersion(header: string): number | undefined {
  const at = header.lastIndexOf(VERSION_MARK);
  if (at < 0 || !header.startsWith('TIME(s)')) return undefined;
  const version = parseUint(header, at + VERSION_MARK.length, header.length, 999);
  return version < 0 ? undefined : version;
}

export const CONNLAT_PROBE_LAYOUT: ColumnLayout = { widths: [9, 6, 12, 2, 16, 6, 16, 5, 7, 4, 7, 0], comm: 2 };

const F_TIME = 0, F_PID = 1, F_COMM = 2, F_IP = 3, F_SADDR = 4, F_LPORT = 5, F_DADDR = 6, F_DPORT = 7, F_LAT = 8;
const F_RETX = 9, F_RTT = 10, F_RESULT = 11;
const OTHER = 'other:';
/** Linux errnos are below 4096 (MAX_ERRNO). */
const ERRNO_MAX = 4095;

const cols: Columns = makeColumns();
const NAMED_RESULTS: ReadonlySet<string> = new Set(CONNECT_RESULTS.filter((r) => r !== 'other'));

/** The RESULT column -> [result, errno]; undefined when it is not one the tool prints. */
function parseResult(line: string, start: number, end: number): [ConnectResult, number | undefined] | undefined {
  const text = line.slice(start, end);
  if (text.startsWith(OTHER)) {
    const errno = parseUint(text, OTHER.length, text.length, ERRNO_MAX);
    return errno > 0 ? ['other', errno] : undefined;
  }
  return NAMED_RESULTS.has(text) ? [text as ConnectResult, undefined] : undefined;
}

/** One connlat-probe event line (not the header) -> event or rejection. `end` excludes trailing whitespace. */
export function parseConnlatProbeLine(line: string, end: number, timeMs: number): DecodeResult {
  if (!scanColumns(line, end, CONNLAT_PROBE_LAYOUT, cols)) return reject('shape', 'not a connlat-probe line');
  const { starts, ends } = cols;
  const field = (f: number) => excerpt(line, starts[f]!, ends[f]!);
  if (!(parseFixed(line, starts[F_TIME]!, ends[F_TIME]!, 3) >= 0)) return reject('time', `TIME(s) ${field(F_TIME)} is not seconds as %.3f`);
  const pid = parseUint(line, starts[F_PID]!, ends[F_PID]!, PID_MAX);
  if (pid < 1) return reject('pid', `PID ${field(F_PID)} is not 1-${PID_MAX}`);
  const family = parseUint(line, starts[F_IP]!, ends[F_IP]!, 99);
  if (family !== 4 && family !== 6) return reject('ip_version', `IP ${field(F_IP)} is not 4 or 6`);
  const saddr = line.slice(starts[F_SADDR]!, ends[F_SADDR]!);
  const daddr = line.slice(starts[F_DADDR]!, ends[F_DADDR]!);
  const sVersion = ipVersionOf(saddr);
  if (sVersion === 0) return reject('ip', `SADDR ${field(F_SADDR)} is not an IP address`);
  const dVersion = ipVersionOf(daddr);
  if (dVersion === 0) return reject('ip', `DADDR ${field(F_DADDR)} is not an IP address`);
  if (sVersion !== family || dVersion !== family) {
    return reject('ip_version', `IP ${family} with SADDR IPv${sVersion} and DADDR IPv${dVersion}`);
  }
  const sport = parseUint(line, starts[F_LPORT]!, ends[F_LPORT]!, 65535);
  if (sport < 0) return reject('port', `LPORT ${field(F_LPORT)} is not 0-65535`);
  const dport = parseUint(line, starts[F_DPORT]!, ends[F_DPORT]!, 65535);
  if (dport < 1) return reject('port', `DPORT ${field(F_DPORT)} is not 1-65535`);
  const latencyMs = parseFixed(line, starts[F_LAT]!, ends[F_LAT]!, 2);
  if (latencyMs === CUT) return reject('shape', `LAT(ms) ${field(F_LAT)} is not %.2f: a line cut short`);
  if (Number.isNaN(latencyMs)) return reject('latency', `LAT(ms) ${field(F_LAT)} is not a finite number >= 0`);
  const synRetransmits = parseUint(line, starts[F_RETX]!, ends[F_RETX]!, 65535);
  if (synRetransmits < 0) return reject('result', `RETX ${field(F_RETX)} is not 0-65535`);
  const outcome = parseResult(line, starts[F_RESULT]!, ends[F_RESULT]!);
  if (outcome === undefined) return reject('result', `RESULT ${field(F_RESULT)} is not one connlat-probe prints`);
  const [result, errno] = outcome;
  let handshakeRttMs: number | undefined;
  const rttStart = starts[F_RTT]!;
  if (ends[F_RTT]! - rttStart !== 1 || line.charCodeAt(rttStart) !== 0x2d) {
    handshakeRttMs = parseFixed(line, rttStart, ends[F_RTT]!, 3);
    // only a connect that reached ESTABLISHED has a handshake RTT, printed as %.3f
    if (!(handshakeRttMs >= 0) || result !== 'ok') {
      return reject('result', `RTT(ms) ${field(F_RTT)} is not "-" or a number >= 0 of an ok connect`);
    }
  }
  const event: ConnectEvent = {
    timeMs,
    tool: 'connlat-probe',
    pid,
    comm: displayComm(line, starts[F_COMM]!, ends[F_COMM]!),
    ipVersion: family,
    saddr,
    sport: sport === 0 ? undefined : sport,
    daddr,
    dport,
    latencyMs,
    failed: result !== 'ok',
    result,
    errno,
    synRetransmits,
    handshakeRttMs,
  };
  return { kind: 'event', event };
}
