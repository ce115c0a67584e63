// Test helper: renders tool lines exactly as the tools' printf calls do (libbpf-tools tcpconnlat.c, tcpstates.c), so
// tests and fixture generation never depend on the parser under test. Strings are latin1 (one char per byte), as
// the sources hand them to the decoder.

export function padRight(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function padLeft(text: string, width: number): string {
  return text.length >= width ? text : ' '.repeat(width - text.length) + text;
}

/** printf("%-N.Ms") of a C string: stops at the first NUL, keeps at most M bytes, pads to N. */
function cstr(text: string, precision: number, width: number): string {
  const nul = text.indexOf('\0');
  return padRight((nul < 0 ? text : text.slice(0, nul)).slice(0, precision), width);
}

export interface TcpconnlatLineSpec {
  /** text of the %-9.3f TIME(s) column (-t) */
  time?: string;
  pid: number;
  /** raw comm bytes as a latin1 string */
  comm: string;
  ip: number;
  saddr: string;
  /** -L */
  lport?: number;
  daddr: string;
  dport: number;
  /** text of the %.2f LAT(ms) column */
  lat: string;
}

export function renderTcpconnlat(s: TcpconnlatLineSpec): string {
  return (
    (s.time !== undefined ? padRight(s.time, 9) + ' ' : '') +
    padRight(String(s.pid), 6) + ' ' + cstr(s.comm, 12, 12) + ' ' + padRight(String(s.ip), 2) + ' ' +
    padRight(s.saddr, 16) + ' ' + (s.lport !== undefined ? padRight(String(s.lport), 6) + ' ' : '') +
    padRight(s.daddr, 16) + ' ' + padRight(String(s.dport), 5) + ' ' + s.lat
  );
}

export function tcpconnlatHeader(time: boolean, lport: boolean): string {
  return (
    (time ? padRight('TIME(s)', 9) + ' ' : '') +
    `${padRight('PID', 6)} ${padRight('COMM', 12)} ${padRight('IP', 2)} ${padRight('SADDR', 16)} ` +
    (lport ? padRight('LPORT', 6) + ' ' : '') + `${padRight('DADDR', 16)} ${padRight('DPORT', 5)} LAT(ms)`
  );
}

export interface TcpstatesLineSpec {
  /** HH:MM:SS (-T) */
  time?: string;
  /** -w */
  wide?: boolean;
  skaddr: string;
  pid: number;
  comm: string;
  /** only printed with -w */
  ip?: number;
  laddr: string;
  lport: number;
  raddr: string;
  rport: number;
  oldState: string;
  newState: string;
  /** text of the %.3f MS column */
  ms: string;
}

export function renderTcpstates(s: TcpstatesLineSpec): string {
  const addr = s.wide ? 26 : 15;
  return (
    (s.time !== undefined ? padLeft(s.time, 8) + ' ' : '') +
    padRight(s.skaddr, 16) + ' ' + padRight(String(s.pid), 7) + ' ' +
    (s.wide ? cstr(s.comm, 15, 16) : cstr(s.comm, 10, 10)) + ' ' +
    (s.wide ? padRight(String(s.ip ?? (s.laddr.includes(':') ? 6 : 4)), 2) + ' ' : '') +
    padRight(s.laddr, addr) + ' ' + padRight(String(s.lport), 5) + ' ' + padRight(s.raddr, addr) + ' ' +
    padRight(String(s.rport), 5) + ' ' + padRight(s.oldState, 11) + ' -> ' + padRight(s.newState, 11) + ' ' + s.ms
  );
}

export function tcpstatesHeader(time: boolean, wide: boolean): string {
  const addr = wide ? 26 : 15;
  return (
    (time ? padRight('TIME(s)', 8) + ' ' : '') +
    `${padRight('SKADDR', 16)} ${padRight('PID', 7)} ${padRight('COMM', wide ? 16 : 10)} ` +
    (wide ? padRight('IP', 2) + ' ' : '') +
    `${padRight('LADDR', addr)} ${padRight('LPORT', 5)} ${padRight('RADDR', addr)} ${padRight('RPORT', 5)} ` +
    `${padRight('OLDSTATE', 11)} -> ${padRight('NEWSTATE', 11)} MS`
  );
}

/** inet_ntop(AF_INET6) as glibc prints it: longest run (>= 2) of zero groups as "::", embedded IPv4 for ::a.b.c.d
 * and ::ffff:a.b.c.d. */
export function ntop6(words: readonly number[]): string {
  let bestBase = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestBase = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
      out += `${words[6]! >> 8}.${words[6]! & 0xff}.${words[7]! >> 8}.${words[7]! & 0xff}`;
      break;
    }
    out += words[i]!.toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':';
  return out;
}

/**
 * BCC's Python tcpconnlat (bpfcc-tools 0.26, tools/tcpconnlat.py), from its print() formats:
 *   header  [%-9s "TIME(s)", no separator] "%-7s %-12s %-2s %-16s [%-6s] %-16s %-5s %s"
 *   event   [%-9.3f secs, no separator]     "%-7d %-12.12s %-2d %-16s [%-6d] %-16s %-5d %.2f"
 * COMM is `task.decode('utf-8', 'replace')`, so %-12.12s counts characters, and stdout is UTF-8: the result is
 * returned as a latin1 string of those UTF-8 bytes, as the sources hand it to the decoder.
 */
export function renderBccTcpconnlat(s: TcpconnlatLineSpec): string {
  const nul = s.comm.indexOf('\0');
  const raw = Buffer.from(nul < 0 ? s.comm : s.comm.slice(0, nul), 'latin1');
  const chars = [...raw.toString('utf8')].slice(0, 12); // python slices code points
  const comm = chars.join('') + ' '.repeat(Math.max(0, 12 - chars.length));
  const text =
    (s.time !== undefined ? padRight(s.time, 9) : '') +
    padRight(String(s.pid), 7) + ' ' + comm + ' ' + padRight(String(s.ip), 2) + ' ' + padRight(s.saddr, 16) + ' ' +
    (s.lport !== undefined ? padRight(String(s.lport), 6) + ' ' : '') +
    padRight(s.daddr, 16) + ' ' + padRight(String(s.dport), 5) + ' ' + s.lat;
  return Buffer.from(text, 'utf8').toString('latin1');
}

export function bccTcpconnlatHeader(time: boolean, lport: boolean): string {
  return (
    (time ? padRight('TIME(s)', 9) : '') +
    `${padRight('PID', 7)} ${padRight('COMM', 12)} ${padRight('IP', 2)} ${padRight('SADDR', 16)} ` +
    (lport ? padRight('LPORT', 6) + ' ' : '') + `${padRight('DADDR', 16)} ${padRight('DPORT', 5)} LAT(ms)`
  );
}
