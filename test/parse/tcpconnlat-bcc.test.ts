// BCC's Python tcpconnlat (bpfcc-tools' tcpconnlat-bpfcc, Debian 0.26): PID %-7d, COMM counted in characters, and
// with -t its TIME(s) runs into PID with no space. Supported in full, from its header or its line shape; never a mix
// of accepted and rejected rows (issue 11 item 3). Lines are rendered from its print() formats (render.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LineDecoder } from '../../src/parse/decoder.ts';
import type { DecodeResult } from '../../src/parse/types.ts';
import { bccTcpconnlatHeader, renderBccTcpconnlat, tcpconnlatHeader } from './render.ts';

const T = 1_700_000_000_000;
const kinds = (rs: DecodeResult[]) => rs.map((r) => (r.kind === 'reject' ? `reject:${r.reason}` : r.kind));
const events = (rs: DecodeResult[]) => rs.flatMap((r) => (r.kind === 'event' ? [r.event] : []));

// the Debian example output's rows, with PIDs of 1 to 7 digits
const ROWS = [
  { pid: 1201, comm: 'wget', ip: 4, saddr: '10.153.223.157', daddr: '23.23.100.231', dport: 80, lat: '1.65', lport: 51000 },
  { pid: 1234567, comm: 'curl', ip: 4, saddr: '10.153.223.157', daddr: '104.20.25.153', dport: 443, lat: '0.75', lport: 51002 },
  { pid: 20337, comm: 'python2.7', ip: 6, saddr: '1234:ab12:2040:5020:2299:0:5:0', daddr: '1234:ab12:20:9f1d:2299:dde9:0:f5', dport: 7001, lat: '62.20', lport: 51004 },
  { pid: 7, comm: 'na\u00c3\u00afve-app-long-name', ip: 6, saddr: '::1', daddr: '::1', dport: 80, lat: '0.05', lport: 1 }, // UTF-8 bytes of naïve-app-long-name
];
const TIMES = ['0.000', '1.500', '12345.678', '123456.789']; // the last two fill or overflow %-9.3f: PID follows at once

describe('BCC tcpconnlat (Python, bpfcc-tools 0.26)', () => {
  for (const time of [false, true]) {
    for (const lport of [false, true]) {
      it(`${time ? '-t ' : ''}${lport ? '-L ' : ''}every row is an event, with its header and from its shape alone`, () => {
        const lines = ROWS.map((r, i) => renderBccTcpconnlat({ ...r, ...(time ? { time: TIMES[i]! } : {}), lport: lport ? r.lport : undefined }));
        if (time) assert.ok(lines[2]!.startsWith('12345.6782033'), 'TIME(s) runs into PID');
        for (const withHeader of [true, false]) {
          const d = new LineDecoder(withHeader ? 'tcpconnlat' : 'detect');
          const rs = (withHeader ? [bccTcpconnlatHeader(time, lport), ...lines] : lines).map((l) => d.decode(l, T));
          assert.deepEqual(kinds(rs), [...(withHeader ? ['skip'] : []), 'event', 'event', 'event', 'event'], lines.join('\n'));
          assert.deepEqual(d.options, { time, lport, bcc: true });
          const got = events(rs);
          assert.deepEqual(got.map((e) => e.pid), ROWS.map((r) => r.pid));
          assert.deepEqual(got.map((e) => e.comm), ['wget', 'curl', 'python2.7', 'naïve-app-lo']);
          assert.deepEqual(got.map((e) => e.latencyMs), [1.65, 0.75, 62.2, 0.05]);
          assert.deepEqual(got.map((e) => e.sport), ROWS.map((r) => (lport ? r.lport : undefined)));
          assert.deepEqual(got.map((e) => [e.saddr, e.daddr, e.dport]), ROWS.map((r) => [r.saddr, r.daddr, r.dport]));
        }
      });
    }
  }
  it('headers differ from libbpf-tools by one column of PID width', () => {
    assert.equal(bccTcpconnlatHeader(false, false), 'PID     COMM         IP SADDR            DADDR            DPORT LAT(ms)');
    assert.equal(bccTcpconnlatHeader(true, true), 'TIME(s)  PID     COMM         IP SADDR            LPORT  DADDR            DPORT LAT(ms)');
    assert.notEqual(bccTcpconnlatHeader(false, false), tcpconnlatHeader(false, false));
  });
  it('a 7-digit PID fits both tools: it does not decide the format, so the rows after it are not rejected', () => {
    const d = new LineDecoder('detect');
    const lines = [ROWS[1]!, ROWS[0]!, ROWS[2]!].map((r) => renderBccTcpconnlat({ ...r, lport: undefined }));
    assert.deepEqual(kinds(lines.map((l) => d.decode(l, T))), ['event', 'event', 'event']);
    assert.deepEqual(d.options, { time: false, lport: false, bcc: true });
  });
  it('a cut BCC line is not a connect either', () => {
    const d = new LineDecoder('tcpconnlat');
    d.decode(bccTcpconnlatHeader(true, false), T);
    const line = renderBccTcpconnlat({ ...ROWS[0]!, time: '1.500', lport: undefined });
    assert.deepEqual(kinds([d.decode(line.slice(0, -1), T), d.decode(line.slice(0, -3), T)]), ['reject:shape', 'reject:shape']);
    assert.deepEqual(kinds([d.decode('1.5      1201    wget         4  10.0.0.1         10.0.0.2         80    1.65', T)]), ['reject:time']);
  });
});
