import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConnectEvent } from '../../src/event.ts';
import { LineDecoder } from '../../src/parse/decoder.ts';
import type { DecodeResult } from '../../src/parse/types.ts';
import { renderTcpconnlat, tcpconnlatHeader } from './render.ts';

const T = 1_700_000_000_000;

function decodeAll(lines: string[]): DecodeResult[] {
  const decoder = new LineDecoder('tcpconnlat');
  return lines.map((line) => decoder.decode(line, T));
}

function ev(pid: number, comm: string, saddr: string, daddr: string, dport: number, latencyMs: number,
  extra: Partial<ConnectEvent> = {}): DecodeResult {
  const event: ConnectEvent = {
    timeMs: T, tool: 'tcpconnlat', pid, comm, ipVersion: saddr.includes(':') ? 6 : 4, saddr, sport: undefined, daddr,
    dport, latencyMs, failed: false, ...extra,
  };
  return { kind: 'event', event };
}

function reasonOf(r: DecodeResult | undefined): string {
  return r?.kind === 'reject' ? r.reason : r?.kind ?? 'none';
}

describe('tcpconnlat: the blog post output', () => {
  const blog = [
    'PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)',
    '21168  curl         4  10.0.2.15        76.76.21.21      443   47.80',
    '5955   coredns      4  127.0.0.1        127.0.0.1        8080  0.02',
    '703    kubelet      4  172.18.8.101     172.18.8.101     6443  0.04',
    '703    kubelet      4  10.233.64.1      10.233.64.4      8181  0.07',
    '703    kubelet      4  169.254.25.10    169.254.25.10    9254  0.03',
    '703    kubelet      4  10.233.64.1      10.233.64.5      8080  0.03',
    '5537   node-cache   4  169.254.25.10    169.254.25.10    9254  0.06',
    '4204   etcd         4  172.18.8.101     172.18.8.103     2380  0.22',
    '4204   etcd         4  172.18.8.101     172.18.8.102     2380  0.21',
  ];
  it('header is exactly what the tool prints', () => assert.equal(blog[0], tcpconnlatHeader(false, false)));
  it('decodes every line to the exact event', () => {
    assert.deepEqual(decodeAll(blog), [
      { kind: 'skip' },
      ev(21168, 'curl', '10.0.2.15', '76.76.21.21', 443, 47.8),
      ev(5955, 'coredns', '127.0.0.1', '127.0.0.1', 8080, 0.02),
      ev(703, 'kubelet', '172.18.8.101', '172.18.8.101', 6443, 0.04),
      ev(703, 'kubelet', '10.233.64.1', '10.233.64.4', 8181, 0.07),
      ev(703, 'kubelet', '169.254.25.10', '169.254.25.10', 9254, 0.03),
      ev(703, 'kubelet', '10.233.64.1', '10.233.64.5', 8080, 0.03),
      ev(5537, 'node-cache', '169.254.25.10', '169.254.25.10', 9254, 0.06),
      ev(4204, 'etcd', '172.18.8.101', '172.18.8.103', 2380, 0.22),
      ev(4204, 'etcd', '172.18.8.101', '172.18.8.102', 2380, 0.21),
    ]);
  });
});

describe('tcpconnlat: hazards', () => {
  const base = { pid: 703, comm: 'kubelet', ip: 4, saddr: '10.0.0.1', daddr: '10.0.0.2', dport: 443, lat: '1.25' };
  const one = (spec: Partial<typeof base> & { time?: string; lport?: number }, header = tcpconnlatHeader(
    spec.time !== undefined, spec.lport !== undefined)): DecodeResult => decodeAll([header, renderTcpconnlat({ ...base, ...spec })])[1]!;

  it('COMM with spaces and digits that look like fields is read as COMM', () => {
    assert.deepEqual(one({ comm: '1 4 1.2.3.4 ' }), ev(703, '1 4 1.2.3.4', '10.0.0.1', '10.0.0.2', 443, 1.25));
    assert.deepEqual(one({ comm: '80 0.01' }), ev(703, '80 0.01', '10.0.0.1', '10.0.0.2', 443, 1.25));
    assert.deepEqual(one({ comm: ' lead' }), ev(703, ' lead', '10.0.0.1', '10.0.0.2', 443, 1.25));
    assert.deepEqual(one({ comm: '' }), ev(703, '', '10.0.0.1', '10.0.0.2', 443, 1.25));
  });
  it('COMM is truncated to 12 bytes by the tool', () => {
    assert.deepEqual(one({ comm: 'abcdefghijklmno' }), ev(703, 'abcdefghijkl', '10.0.0.1', '10.0.0.2', 443, 1.25));
  });
  it('COMM escape sequences are neutralised', () => {
    assert.deepEqual(one({ comm: '\x1b]0;pwned\x07' }), ev(703, '?]0;pwned?', '10.0.0.1', '10.0.0.2', 443, 1.25));
  });
  it('a newline in COMM splits the line: neither fragment is an event', () => {
    for (const comm of ['a\n4  1.2.3.4', '\n1 x', 'ab\n123456 abc', 'x\n9 6 ::1 ', 'abcdefghijk\n']) {
      const fragments = renderTcpconnlat({ ...base, comm }).split('\n');
      assert.equal(fragments.length, 2);
      const results = decodeAll([tcpconnlatHeader(false, false), ...fragments]).slice(1);
      assert.deepEqual(results.map(reasonOf), ['shape', 'shape'], JSON.stringify(fragments));
    }
  });
  it('IPv6 addresses overflow their 16-wide columns', () => {
    const saddr = 'fd00:10:244:1::1a';
    const daddr = '2606:4700:4700::1111:ffff:1';
    assert.deepEqual(one({ ip: 6, saddr, daddr }), ev(703, 'kubelet', saddr, daddr, 443, 1.25));
    assert.deepEqual(one({ ip: 6, saddr, daddr, lport: 65535, time: '3.000' }),
      ev(703, 'kubelet', saddr, daddr, 443, 1.25, { sport: 65535 }));
  });
  it('a 7-digit PID overflows its 6-wide column', () => {
    assert.deepEqual(one({ pid: 4194304 }), ev(4194304, 'kubelet', '10.0.0.1', '10.0.0.2', 443, 1.25));
    assert.deepEqual(one({ pid: 1234567, comm: '12 4  1.2.3.' }), ev(1234567, '12 4  1.2.3.', '10.0.0.1', '10.0.0.2', 443, 1.25));
  });
  it('-t and -L', () => {
    assert.deepEqual(one({ time: '0.000' }), ev(703, 'kubelet', '10.0.0.1', '10.0.0.2', 443, 1.25));
    assert.deepEqual(one({ time: '123456.789' }), ev(703, 'kubelet', '10.0.0.1', '10.0.0.2', 443, 1.25)); // overflows 9
    assert.deepEqual(one({ lport: 51234 }), ev(703, 'kubelet', '10.0.0.1', '10.0.0.2', 443, 1.25, { sport: 51234 }));
    assert.deepEqual(one({ lport: 1, time: '1.500' }), ev(703, 'kubelet', '10.0.0.1', '10.0.0.2', 443, 1.25, { sport: 1 }));
    assert.equal(tcpconnlatHeader(true, true),
      'TIME(s)   PID    COMM         IP SADDR            LPORT  DADDR            DPORT LAT(ms)');
  });
  it('rejects bad values with a stable reason', () => {
    const table: [Parameters<typeof one>[0], string][] = [
      [{ saddr: '10.0.0.256' }, 'ip'], [{ daddr: 'localhost' }, 'ip'], [{ saddr: '::1' }, 'ip_version'],
      [{ ip: 6 }, 'ip_version'], [{ ip: 5 }, 'ip_version'], [{ ip: 46 }, 'ip_version'],
      [{ dport: 0 }, 'port'], [{ dport: 65536 }, 'port'], [{ dport: 70000 }, 'port'], [{ lport: 0 }, 'port'],
      [{ lport: 65536 }, 'port'], [{ pid: 0 }, 'pid'], [{ pid: 4194305 }, 'pid'],
      [{ lat: 'nan' }, 'latency'], [{ lat: '-nan' }, 'latency'], [{ lat: 'inf' }, 'latency'], [{ lat: '-1.00' }, 'latency'],
      [{ lat: '1e3' }, 'latency'], [{ lat: '9'.repeat(400) + '.00' }, 'latency'],
      [{ time: 'x' }, 'time'], [{ time: '-1.000' }, 'time'], [{ time: '1.5' }, 'time'], [{ time: '1.5000' }, 'time'],
    ];
    for (const [spec, reason] of table) assert.equal(reasonOf(one(spec)), reason, JSON.stringify(spec));
    const r = one({ dport: 70000 });
    assert.ok(r.kind === 'reject' && r.detail === 'DPORT "70000" is not 1-65535');
  });
  it('rejects lines that are not exactly the printf layout', () => {
    const good = renderTcpconnlat(base);
    for (const line of [
      good.replace('703   ', '703  '), // field moved left
      good.replace('10.0.0.1 ', '10.0.0.1  '), // field moved right
      ' ' + good, good + ' 1', good.slice(0, 40), good.replace(/ /g, '\t'), '703',
      good.replace('kubelet      ', 'kubelet     '), // COMM 11 wide
      good.replace('kubelet      ', 'kubelet       '), // COMM 13 wide
    ]) {
      assert.equal(reasonOf(decodeAll([tcpconnlatHeader(false, false), line])[1]), 'shape', JSON.stringify(line));
    }
  });
  it('a line cut inside LAT(ms) is not a connect: the tool prints it with exactly %.2f', () => {
    // a recording that ends "...443   47" or a replay stopped mid-line: 47 ms would be a made-up connect
    for (const lat of ['47', '47.', '47.8', '4', '0.1', '47.800', '9'.repeat(400)]) {
      const r = one({ lat });
      assert.equal(reasonOf(r), 'shape', lat);
      assert.ok(r.kind === 'reject' && r.detail?.includes('%.2f'), JSON.stringify(r));
    }
    assert.equal(reasonOf(one({ lat: '47.80' })), 'event');
    // shape detection (no header) does not take a cut line for a connect either
    assert.equal(reasonOf(new LineDecoder('detect').decode(renderTcpconnlat({ ...base, lat: '47' }), T)), 'shape');
  });
  it('tolerates CRLF and trailing spaces, skips blank lines', () => {
    assert.deepEqual(decodeAll([renderTcpconnlat(base) + '\r', renderTcpconnlat(base) + '  ', '', '   ', '\r']).map(reasonOf),
      ['event', 'event', 'skip', 'skip', 'skip']);
  });
});
