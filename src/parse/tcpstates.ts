// libbpf-tools tcpstates output (libbpf-tools/tcpstates.c):
//   header  [%-8s "TIME(s)"] narrow: "%-16s %-7s %-10s %-15s %-5s %-15s %-5s %-11s -> %-11s %s"
//                            wide:   "%-16s %-7s %-16s %-2s %-26s %-5s %-26s %-5s %-11s -> %-11s %s"
//   event   [%8s HH:MM:SS]   narrow: "%-16llx %-7d %-10.10s %-15s %-5d %-15s %-5d %-11s -> %-11s %.3f"
//                            wide:   "%-16llx %-7d %-16s %-2d %-26s %-5d %-26s %-5d %-11s -> %-11s %.3f"
// fields: SKADDR PID COMM [IP] LADDR LPORT RADDR RPORT OLDSTATE -> NEWSTATE MS (time spent in OLDSTATE).
// A connect is CLOSE -> SYN_SENT (in the connect() syscall, LPORT still 0) followed by SYN_SENT -> ESTABLISHED
// (MS = connect latency) or SYN_SENT -> CLOSE (failed; MS = time until failure). Everything else is skipped.

import type { ConnectEvent } from '../event.ts';
import { displayComm } from './comm.ts';
import {
  checkFixed, CUT, type ColumnLayout, type Columns, excerpt, makeColumns, padRight, parseUint, reject, scanColumns, SKIP,
} from './columns.ts';
import { ipVersionAt } from './ip.ts';
import { PID_MAX } from './tcpconnlat.ts';
import type { DecodeResult } from './types.ts';

export interface TcpstatesOptions {
  /** -T: leading wall-clock HH:MM:SS column */
  readonly time: boolean;
  /** -w: IP column, 16-wide COMM, 26-wide addresses */
  readonly wide: boolean;
}

export interface TcpstatesFormat extends TcpstatesOptions {
  readonly header: string;
  readonly layout: ColumnLayout;
}

function makeFormat(time: boolean, wide: boolean): TcpstatesFormat {
  const head: string[] = [];
  const widths: number[] = [];
  const add = (name: string, width: number): void => {
    head.push(padRight(name, width));
    widths.push(width);
  };
  if (time) add('TIME(s)', 8);
  const comm = widths.length + 2;
  add('SKADDR', 16);
  add('PID', 7);
  add('COMM', wide ? 16 : 10);
  if (wide) add('IP', 2);
  const addr = wide ? 26 : 15;
  add('LADDR', addr);
  add('LPORT', 5);
  add('RADDR', addr);
  add('RPORT', 5);
  add('OLDSTATE', 11);
  add('->', 2);
  add('NEWSTATE', 11);
  add('MS', 0);
  return { time, wide, header: head.join(' '), layout: { widths, comm } };
}

/** The four output variants, plain first (the order shape detection tries them in). */
export const TCPSTATES_FORMATS: readonly TcpstatesFormat[] = [
  makeFormat(false, false),
  makeFormat(true, false),
  makeFormat(false, true),
  makeFormat(true, true),
];

/** tcp_states[] in tcpstates.c are the only names it prints: the one at s[start, end) as a constant, or undefined. */
function stateAt(s: string, start: number, end: number): string | undefined {
  const is = (name: string): boolean => s.startsWith(name, start);
  switch (end - start) {
    case 11: return is('ESTABLISHED') ? 'ESTABLISHED' : undefined;
    case 8: return is('SYN_SENT') ? 'SYN_SENT' : is('SYN_RECV') ? 'SYN_RECV' : is('LAST_ACK') ? 'LAST_ACK' : undefined;
    case 5: return is('CLOSE') ? 'CLOSE' : undefined;
    case 9: return is('FIN_WAIT1') ? 'FIN_WAIT1' : is('FIN_WAIT2') ? 'FIN_WAIT2' : is('TIME_WAIT') ? 'TIME_WAIT' : undefined;
    case 10: return is('CLOSE_WAIT') ? 'CLOSE_WAIT' : undefined;
    case 6: return is('LISTEN') ? 'LISTEN' : undefined;
    case 7: return is('CLOSING') ? 'CLOSING' : is('UNKNOWN') ? 'UNKNOWN' : undefined;
    case 12: return is('NEW_SYN_RECV') ? 'NEW_SYN_RECV' : undefined;
    default: return undefined;
  }
}

/** One validated tcpstates line. */
export interface TcpstatesLine {
  kind: 'transition';
  skaddr: string;
  /** 0 when the tracepoint ran in kernel context with no task (softirq on an idle CPU). */
  pid: number;
  comm: string;
  ipVersion: 4 | 6;
  laddr: string;
  /** 0 while the socket has no local port yet (CLOSE -> SYN_SENT, LISTEN). */
  lport: number;
  raddr: string;
  rport: number;
  oldState: string;
  newState: string;
  ms: number;
}

type Reject = Extract<DecodeResult, { kind: 'reject' }>;

const cols: Columns = makeColumns();

function isTime(s: string, start: number, end: number): boolean {
  if (end - start !== 8) return false;
  for (let i = 0; i < 8; i++) {
    const c = s.charCodeAt(start + i);
    if (i === 2 || i === 5 ? c !== 0x3a : c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function isSkaddr(s: string, start: number, end: number): boolean {
  if (end - start > 16) return false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/**
 * Where checkLine found the fields of the line it last accepted, and the values it read on the way (reused, like
 * `cols`). Strings are not sliced here: most lines are transitions that are no connect, and they need none.
 */
const at = {
  skaddr: 0, pid: 0, comm: 0, ipVersion: 4 as 4 | 6, laddr: 0, lport: 0, raddr: 0, rport: 0, ms: 0,
  oldState: '', newState: '',
};

/** Validates every field of one tcpstates event line in place, in a fixed order (the first fault is the reason). */
function checkLine(line: string, end: number, format: TcpstatesFormat): Reject | undefined {
  if (!scanColumns(line, end, format.layout, cols)) {
    return reject('shape', `not a tcpstates${format.time ? ' -T' : ''}${format.wide ? ' -w' : ''} line`) as Reject;
  }
  const { starts, ends } = cols;
  let f = 0;
  if (format.time) {
    if (!isTime(line, starts[0]!, ends[0]!)) return bad('time', 'TIME(s) %s is not HH:MM:SS', line, 0);
    f++;
  }
  const skaddrField = f++;
  if (!isSkaddr(line, starts[skaddrField]!, ends[skaddrField]!)) {
    return bad('skaddr', 'SKADDR %s is not a hex address', line, skaddrField);
  }
  const pidField = f++;
  const pid = parseUint(line, starts[pidField]!, ends[pidField]!, PID_MAX);
  if (pid < 0) return bad('pid', `PID %s is not 0-${PID_MAX}`, line, pidField);
  const commField = f++;
  let family = 0;
  if (format.wide) {
    family = parseUint(line, starts[f]!, ends[f]!, 99);
    if (family !== 4 && family !== 6) return bad('ip_version', 'IP %s is not 4 or 6', line, f);
    f++;
  }
  const laddrField = f++;
  const lportField = f++;
  const raddrField = f++;
  const rportField = f++;
  const oldField = f++;
  const arrowField = f++;
  const newField = f++;
  const msField = f;
  if (line.charCodeAt(starts[arrowField]!) !== 0x2d || line.charCodeAt(starts[arrowField]! + 1) !== 0x3e ||
    ends[arrowField]! - starts[arrowField]! !== 2) {
    return bad('shape', 'expected "->" between the states, got %s', line, arrowField);
  }
  const lVersion = ipVersionAt(line, starts[laddrField]!, ends[laddrField]!);
  if (lVersion === 0) return bad('ip', 'LADDR %s is not an IP address', line, laddrField);
  const rVersion = ipVersionAt(line, starts[raddrField]!, ends[raddrField]!);
  if (rVersion === 0) return bad('ip', 'RADDR %s is not an IP address', line, raddrField);
  if (lVersion !== rVersion || (family !== 0 && family !== lVersion)) {
    return reject('ip_version', `${family ? `IP ${family} with ` : ''}LADDR IPv${lVersion} and RADDR IPv${rVersion}`) as Reject;
  }
  const lport = parseUint(line, starts[lportField]!, ends[lportField]!, 65535);
  if (lport < 0) return bad('port', 'LPORT %s is not 0-65535', line, lportField);
  const rport = parseUint(line, starts[rportField]!, ends[rportField]!, 65535);
  if (rport < 0) return bad('port', 'RPORT %s is not 0-65535', line, rportField);
  const oldState = stateAt(line, starts[oldField]!, ends[oldField]!);
  if (oldState === undefined) return bad('state', 'OLDSTATE %s is not a TCP state', line, oldField);
  const newState = stateAt(line, starts[newField]!, ends[newField]!);
  if (newState === undefined) return bad('state', 'NEWSTATE %s is not a TCP state', line, newField);
  const ms = checkFixed(line, starts[msField]!, ends[msField]!, 3);
  if (ms === CUT) return bad('shape', 'MS %s is not %.3f: a line cut short', line, msField);
  if (Number.isNaN(ms)) return bad('latency', 'MS %s is not a finite number >= 0', line, msField);
  at.skaddr = skaddrField;
  at.pid = pid;
  at.comm = commField;
  at.ipVersion = lVersion;
  at.laddr = laddrField;
  at.lport = lport;
  at.raddr = raddrField;
  at.rport = rport;
  at.ms = msField;
  at.oldState = oldState;
  at.newState = newState;
  return undefined;
}

/** The fields of the line checkLine last accepted, as strings and numbers. */
function fieldsOf(line: string): TcpstatesLine {
  const { starts, ends } = cols;
  const slice = (f: number): string => line.slice(starts[f]!, ends[f]!);
  return {
    kind: 'transition',
    skaddr: slice(at.skaddr),
    pid: at.pid,
    comm: displayComm(line, starts[at.comm]!, ends[at.comm]!),
    ipVersion: at.ipVersion,
    laddr: slice(at.laddr),
    lport: at.lport,
    raddr: slice(at.raddr),
    rport: at.rport,
    oldState: at.oldState,
    newState: at.newState,
    ms: Number(slice(at.ms)),
  };
}

/** One tcpstates event line (not a header) -> its fields, all validated, or a rejection. */
export function parseTcpstatesLine(line: string, end: number, format: TcpstatesFormat): TcpstatesLine | Reject {
  return checkLine(line, end, format) ?? fieldsOf(line);
}

/**
 * One tcpstates event line -> a connect event, a skip or a rejection; updates `sockets`. Accepts and rejects exactly
 * what parseTcpstatesLine does, but slices and decodes the fields only of the transitions connects are made of.
 */
export function decodeTcpstatesLine(line: string, end: number, format: TcpstatesFormat, sockets: ConnectingSockets,
  timeMs: number): DecodeResult {
  const rejected = checkLine(line, end, format);
  if (rejected !== undefined) return rejected;
  if (!partOfConnect(at.oldState, at.newState, at.pid)) return SKIP;
  return transitionResult(fieldsOf(line), sockets, timeMs);
}

function bad(reason: Reject['reason'], detail: string, line: string, field: number): Reject {
  return reject(reason, detail.replace('%s', () => excerpt(line, cols.starts[field]!, cols.ends[field]!))) as Reject;
}

export interface SocketOwner {
  readonly pid: number;
  readonly comm: string;
  /** The destination connect() was called for: the outcome line of the same socket has the same. */
  readonly raddr: string;
  readonly rport: number;
}

/**
 * Who called connect() on each socket still in SYN_SENT, keyed by SKADDR. SYN_SENT -> ESTABLISHED runs when the
 * SYN-ACK arrives, often in softirq context, where the tool's PID/COMM are whatever task was interrupted; CLOSE ->
 * SYN_SENT runs inside connect() itself, so its PID/COMM are right. Bounded: the oldest entry goes first (sockets
 * whose outcome was never seen, e.g. lost perf events).
 *
 * SKADDR is a kernel address, reused by the next socket as soon as one is freed (the recordings show it within a
 * second), and tcpstates reads one perf buffer per CPU, so lines of two sockets at one address can arrive out of
 * order (the new connect() before the old socket's outcome or its last FIN_WAIT2 -> CLOSE). So an outcome takes the
 * oldest connect seen at its SKADDR for the same destination, transitions that are not connects or outcomes leave
 * the owners alone, and a restarted tool starts with none (its gap may hide a close and a reuse). A connect without a trusted
 * owner has no known process: it is rejected (`owner`), never given the PID of the task its softirq interrupted.
 */
export class ConnectingSockets {
  readonly #max: number;
  /** Per SKADDR, the connects seen there whose outcome is not yet read, oldest first (see PER_ADDRESS). */
  readonly #owners = new Map<string, SocketOwner[]>();

  constructor(maxEntries = 65536) {
    if (!(maxEntries >= 1)) throw new RangeError(`maxEntries must be >= 1, got ${maxEntries}`);
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#owners.size;
  }

  remember(skaddr: string, owner: SocketOwner): void {
    const queue = this.#owners.get(skaddr);
    if (queue !== undefined) {
      // The next socket at this address, its connect() printed before the previous socket's outcome (another CPU's
      // perf buffer): both are kept, the oldest answered first. Bounded: an outcome that was lost leaves one behind.
      if (queue.length >= PER_ADDRESS) queue.shift();
      queue.push(owner);
      this.#owners.delete(skaddr); // now the newest entry: evicted last
      this.#owners.set(skaddr, queue);
      return;
    }
    if (this.#owners.size >= this.#max) {
      const oldest = this.#owners.keys().next();
      if (!oldest.done) this.#owners.delete(oldest.value);
    }
    this.#owners.set(skaddr, [owner]);
  }

  /**
   * The owner of a socket leaving SYN_SENT for raddr:rport (the oldest connect at this SKADDR to that destination),
   * forgotten as it is returned; `undefined` when no connect was seen here, 'mismatch' when only other destinations.
   */
  take(skaddr: string, raddr: string, rport: number): SocketOwner | 'mismatch' | undefined {
    const queue = this.#owners.get(skaddr);
    if (queue === undefined) return undefined;
    const i = queue.findIndex((o) => o.raddr === raddr && o.rport === rport);
    if (i < 0) return 'mismatch';
    const [owner] = queue.splice(i, 1);
    if (queue.length === 0) this.#owners.delete(skaddr);
    return owner;
  }

  clear(): void {
    this.#owners.clear();
  }
}

/** Connects remembered per SKADDR: the one in flight, and at most one more printed ahead of its predecessor's outcome. */
const PER_ADDRESS = 2;

/**
 * Whether a transition is part of a connect: its connect() (-> SYN_SENT in the caller's context, PID known) or its
 * outcome (SYN_SENT -> ESTABLISHED or CLOSE). Every other transition is skipped, its fields unread.
 */
function partOfConnect(oldState: string, newState: string, pid: number): boolean {
  return oldState === 'SYN_SENT' ? newState === 'ESTABLISHED' || newState === 'CLOSE' : newState === 'SYN_SENT' && pid > 0;
}

/** A validated transition -> a connect event, a skip, or a rejection; updates `sockets`. */
export function transitionResult(t: TcpstatesLine, sockets: ConnectingSockets, timeMs: number): DecodeResult {
  if (!partOfConnect(t.oldState, t.newState, t.pid)) return SKIP; // e.g. SYN_SENT -> SYN_RECV: simultaneous open
  if (t.oldState !== 'SYN_SENT') {
    sockets.remember(t.skaddr, { pid: t.pid, comm: t.comm, raddr: t.raddr, rport: t.rport });
    // Any other transition leaves the owner alone. tcpstates reads one perf buffer per CPU, so the last lines of an
    // earlier socket at this address (FIN_WAIT2 -> CLOSE in softirq on another CPU) are often printed after the new
    // socket's CLOSE -> SYN_SENT: forgetting here lost that connect (measured through the delay line, 3 runs in 4).
    // A stale owner (its outcome line lost) is caught by the destination check below and by a header's clear().
    return SKIP;
  }
  const failed = t.newState === 'CLOSE';
  const owner = sockets.take(t.skaddr, t.raddr, t.rport);
  if (owner === undefined) return reject('owner', 'connect() of this socket (its CLOSE -> SYN_SENT line) not seen: process unknown');
  if (owner === 'mismatch') {
    return reject('owner', 'the connect() seen at this SKADDR was for another destination (a reused socket address): process unknown');
  }
  const pid = owner.pid;
  if (t.rport < 1) return reject('port', 'RPORT 0 on a connect');
  // LPORT 0 on a failed connect is real: connect() failed before a local port was bound (EADDRNOTAVAIL).
  if (t.lport < 1 && !failed) return reject('port', 'LPORT 0 on an established connect');
  const event: ConnectEvent = {
    timeMs,
    tool: 'tcpstates',
    pid,
    comm: owner.comm,
    ipVersion: t.ipVersion,
    saddr: t.laddr,
    sport: t.lport,
    daddr: t.raddr,
    dport: t.rport,
    latencyMs: t.ms,
    failed,
  };
  return { kind: 'event', event };
}
