// connlat-probe lines (src/parse/connlat-probe.ts): recorded output of the real tool decodes to the exact events,
// hazards (COMM text, overflowing columns, bad values) get a stable rejection reason, and properties over any event
// the tool can print.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { ConnectEvent } from '../../src/event.ts';
import { CONNLAT_PROBE_HEADER, connlatProbeHeaderVersion } from '../../src/parse/connlat-probe.ts';
import { LineDecoder } from '../../src/parse/decoder.ts';
import { type DecodeResult, REJECT_REASONS, type StreamFormat } from '../../src/parse/types.ts';
import { ntop6, padRight } from './render.ts';

const T = 1_700_000_000_000;
const reasonOf = (r: DecodeResult | undefined): string => (r?.kind === 'reject' ? r.reason : r?.kind ?? 'none');

interface ProbeLineSpec {
  time: string; pid: number; comm: string; ip: number; saddr: string; lport: number; daddr: string; dport: number;
  lat: string; retx: number; rtt: string; result: string;
}

/** printf("%-9.3f %-6u %-12.12s %-2d %-16s %-6u %-16s %-5u %-7.2f %-4u %-7s %s") as connlat-probe.c prints it. */
function render(s: ProbeLineSpec): string {
  const nul = s.comm.indexOf('\0');
  const comm = padRight((nul < 0 ? s.comm : s.comm.slice(0, nul)).slice(0, 12), 12);
  return [padRight(s.time, 9), padRight(String(s.pid), 6), comm, padRight(String(s.ip), 2), padRight(s.saddr, 16),
    padRight(String(s.lport), 6), padRight(s.daddr, 16), padRight(String(s.dport), 5), padRight(s.lat, 7),
    padRight(String(s.retx), 4), padRight(s.rtt, 7), s.result].join(' ');
}

function decodeAll(lines: string[], format: StreamFormat = 'connlat-probe'): DecodeResult[] {
  const decoder = new LineDecoder(format);
  return lines.map((line) => decoder.decode(line, T));
}

function ev(fields: Partial<ConnectEvent> & Pick<ConnectEvent, 'pid' | 'comm' | 'saddr' | 'daddr' | 'dport' | 'latencyMs'>): DecodeResult {
  const result = fields.result ?? 'ok';
  const event: ConnectEvent = {
    timeMs: T, tool: 'connlat-probe', ipVersion: fields.saddr.includes(':') ? 6 : 4, sport: undefined, failed: result !== 'ok',
    result, errno: undefined, synRetransmits: 0, handshakeRttMs: undefined, ...fields,
  };
  return { kind: 'event', event };
}

// stdout of bpf-tools/connlat-probe on the 6.18 test VM (client and server namespaces joined by veth; the kernel's
// default tcp_syn_linear_timeouts=4 and tcp_syn_retries=2: 1 s SYN timeouts, 5 retransmits by the 7 s time-out);
// test/e2e/spans-jaeger.test.ts replays it too
const RECORDED = readFileSync(new URL('../fixtures/connlat-probe-recorded.txt', import.meta.url), 'latin1').split('\n').slice(0, -1);

describe('connlat-probe: recorded output', () => {
  it('the header is exactly what the tool prints, and names format 1', () => {
    assert.equal(RECORDED[0], CONNLAT_PROBE_HEADER);
    assert.equal(connlatProbeHeaderVersion(CONNLAT_PROBE_HEADER), 1);
  });
  it('decodes every line to the exact event', () => {
    const c = { pid: 2902, comm: 'python3' };
    assert.deepEqual(decodeAll(RECORDED), [
      { kind: 'skip' },
      ev({ ...c, saddr: '10.204.9.1', sport: 56032, daddr: '10.204.9.2', dport: 7005, latencyMs: 0.18, result: 'refused' }),
      ev({ ...c, saddr: 'fd0c:204:9::1', sport: 43912, daddr: 'fd0c:204:9::2', dport: 7004, latencyMs: 1011.65, synRetransmits: 1,
        handshakeRttMs: 1 }),
      ev({ ...c, saddr: '10.204.9.1', sport: 58472, daddr: '10.204.9.2', dport: 7003, latencyMs: 1021.7, synRetransmits: 1,
        result: 'net_unreachable' }),
      ev({ ...c, saddr: 'fd0c:204:9::1', sport: 44748, daddr: 'fd0c:204:9::2', dport: 7002, latencyMs: 1012.44, synRetransmits: 1,
        result: 'host_unreachable' }),
      ev({ ...c, saddr: 'fd0c:204:9::1', sport: 46038, daddr: 'fd0c:204:9::2', dport: 7001, latencyMs: 2501.14, synRetransmits: 2,
        result: 'aborted' }),
      ev({ ...c, saddr: '10.204.9.1', sport: 56770, daddr: '10.204.9.2', dport: 7001, latencyMs: 7125.9, synRetransmits: 5,
        result: 'timed_out' }),
      ev({ pid: 28954, comm: 'curl', saddr: '127.0.0.1', sport: 40432, daddr: '127.0.0.1', dport: 18080, latencyMs: 0.31,
        handshakeRttMs: 0.031 }),
      ev({ pid: 31086, comm: 'python3', saddr: '::ffff:127.0.0.1', sport: 57274, daddr: '::ffff:127.0.0.1', dport: 1, latencyMs: 0.01,
        result: 'refused' }),
    ]);
  });
  it('the header is recognised without being told the tool, and a line alone tells the format too', () => {
    const d = new LineDecoder('detect');
    assert.deepEqual(d.decode(RECORDED[0]!, T), { kind: 'skip' });
    assert.equal(d.tool, 'connlat-probe');
    const alone = new LineDecoder('detect');
    assert.equal(reasonOf(alone.decode(RECORDED[1]!, T)), 'event');
    assert.equal(alone.tool, 'connlat-probe');
  });
  it('another format version is refused by name, not guessed at', () => {
    const v2 = CONNLAT_PROBE_HEADER.replace(/1$/, '2');
    assert.deepEqual(decodeAll([v2])[0], { kind: 'reject', reason: 'shape',
      detail: 'connlat-probe output format 2; this connlat reads format 1' });
    assert.equal(connlatProbeHeaderVersion('TIME(s) PID'), undefined);
  });
});

describe('connlat-probe: hazards', () => {
  const base: ProbeLineSpec = { time: '1.500', pid: 703, comm: 'kubelet', ip: 4, saddr: '10.0.0.1', lport: 51234,
    daddr: '10.0.0.2', dport: 443, lat: '1.25', retx: 0, rtt: '0.120', result: 'ok' };
  const one = (spec: Partial<ProbeLineSpec>): DecodeResult => decodeAll([CONNLAT_PROBE_HEADER, render({ ...base, ...spec })])[1]!;
  const okEvent = (extra: Partial<ConnectEvent> = {}) =>
    ev({ pid: 703, comm: 'kubelet', saddr: '10.0.0.1', sport: 51234, daddr: '10.0.0.2', dport: 443, latencyMs: 1.25,
      handshakeRttMs: 0.12, ...extra });

  it('every result the tool prints, with its errno for other', () => {
    for (const result of ['refused', 'timed_out', 'host_unreachable', 'net_unreachable', 'aborted'] as const) {
      assert.deepEqual(one({ result, rtt: '-', retx: 3 }), okEvent({ result, failed: true, handshakeRttMs: undefined, synRetransmits: 3 }));
    }
    assert.deepEqual(one({ result: 'other:104', rtt: '-' }),
      okEvent({ result: 'other', errno: 104, failed: true, handshakeRttMs: undefined }));
    assert.deepEqual(one({ rtt: '-' }), okEvent({ handshakeRttMs: undefined })); // established without an RTT sample
  });
  it('LPORT 0 (failed before a port was bound) is no port', () => {
    assert.deepEqual(one({ lport: 0, result: 'aborted', rtt: '-' }),
      okEvent({ sport: undefined, result: 'aborted', failed: true, handshakeRttMs: undefined }));
  });
  it('COMM with spaces and digits that look like fields is read as COMM', () => {
    assert.deepEqual(one({ comm: '1 4 1.2.3.4 ' }), okEvent({ comm: '1 4 1.2.3.4' }));
    assert.deepEqual(one({ comm: '0 - ok' }), okEvent({ comm: '0 - ok' }));
    assert.deepEqual(one({ comm: 'abcdefghijklmno' }), okEvent({ comm: 'abcdefghijkl' }));
    assert.deepEqual(one({ comm: '\x1b]0;pwned\x07' }), okEvent({ comm: '?]0;pwned?' }));
  });
  it('IPv6 addresses, 7-digit PIDs, long latencies and TIME overflow their columns', () => {
    const saddr = 'fd00:10:244:1::1a';
    const daddr = '2606:4700:4700::1111:ffff:1';
    assert.deepEqual(one({ ip: 6, saddr, daddr }), okEvent({ saddr, daddr, ipVersion: 6 }));
    assert.deepEqual(one({ pid: 4194304, time: '123456.789', lat: '130000.00', retx: 65535, rtt: '12345.678' }),
      okEvent({ pid: 4194304, latencyMs: 130000, synRetransmits: 65535, handshakeRttMs: 12345.678 }));
  });
  it('rejects bad values with a stable reason', () => {
    const table: [Partial<ProbeLineSpec>, string][] = [
      [{ saddr: '10.0.0.256' }, 'ip'], [{ daddr: 'localhost' }, 'ip'], [{ saddr: '::1' }, 'ip_version'], [{ ip: 6 }, 'ip_version'],
      [{ ip: 5 }, 'ip_version'], [{ dport: 0 }, 'port'], [{ dport: 65536 }, 'port'], [{ lport: 65536 }, 'port'],
      [{ pid: 0 }, 'pid'], [{ pid: 4194305 }, 'pid'], [{ lat: 'nan' }, 'latency'], [{ lat: '-1.00' }, 'latency'],
      [{ time: 'x' }, 'time'], [{ retx: 65536 }, 'result'], [{ rtt: 'nan' }, 'result'], [{ rtt: '-1' }, 'result'],
      [{ result: 'refused', rtt: '1.000' }, 'result'], // a failed connect has no handshake RTT
      [{ result: 'OK' }, 'result'], [{ result: 'other' }, 'result'], [{ result: 'other:' }, 'result'],
      [{ result: 'other:0' }, 'result'], [{ result: 'other:4096' }, 'result'], [{ result: 'other:-1' }, 'result'],
      [{ result: 'other:011' }, 'result'], [{ result: 'refusedx' }, 'result'],
      // decimals are exactly printf's: fewer is a line cut short (LAT) or not what the tool prints
      [{ lat: '1.2' }, 'shape'], [{ lat: '1' }, 'shape'], [{ time: '1.5' }, 'time'], [{ rtt: '1.00' }, 'result'],
    ];
    for (const [spec, reason] of table) assert.equal(reasonOf(one(spec)), reason, JSON.stringify(spec));
    const r = one({ result: 'exploded', rtt: '-' });
    assert.ok(r.kind === 'reject' && r.detail === 'RESULT "exploded" is not one connlat-probe prints');
  });
  it('rejects lines that are not exactly the printf layout', () => {
    const good = render(base);
    for (const line of [
      good.replace('703    ', '703   '), // field moved left
      good.replace('10.0.0.1 ', '10.0.0.1  '), // field moved right
      good.replace('1.25    ', '1.25   '), // LAT(ms) narrower than 7
      ' ' + good, good + ' x', good.slice(0, 60), good.replace(/ /g, '\t'),
      good.replace(' ok', ''), // no RESULT
      good.replace('kubelet      ', 'kubelet     '), // COMM 11 wide
    ]) {
      assert.equal(reasonOf(decodeAll([CONNLAT_PROBE_HEADER, line])[1]), 'shape', JSON.stringify(line));
    }
  });
  it('a tcpconnlat -t -L line is not a connlat-probe line, nor the reverse', () => {
    const connlat = '1.500     703    kubelet      4  10.0.0.1         51234  10.0.0.2         443   1.25';
    assert.equal(reasonOf(decodeAll([CONNLAT_PROBE_HEADER, connlat])[1]), 'shape');
    assert.equal(reasonOf(decodeAll([render(base)], 'tcpconnlat')[0]), 'shape');
  });
});

// ---- property-based --------------------------------------------------------------------------------------------

const commBytes = fc.array(fc.integer({ min: 1, max: 255 }).filter((b) => b !== 0x0a && b !== 0x0d), { maxLength: 15 })
  .map((bytes) => Buffer.from(bytes).toString('latin1'));
function shown(latin1: string): string {
  const text = Buffer.from(latin1.slice(0, 12).replace(/ +$/, ''), 'latin1').toString('utf8');
  return text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '?');
}
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const ipv6 = fc.array(fc.oneof(fc.constant(0), fc.constant(0xffff), fc.nat(0xffff)), { minLength: 8, maxLength: 8 }).map(ntop6);
const addrPair = fc.oneof(fc.tuple(fc.constant(4 as const), ipv4, ipv4), fc.tuple(fc.constant(6 as const), ipv6, ipv6));
const decimal = (digits: number) => fc.tuple(fc.nat(2_000_000), fc.nat(10 ** digits - 1))
  .map(([i, f]) => `${i}.${String(f).padStart(digits, '0')}`);
const outcome = fc.oneof(
  fc.tuple(fc.constant('ok'), fc.option(decimal(3), { nil: undefined })),
  fc.tuple(fc.constantFrom('refused', 'timed_out', 'host_unreachable', 'net_unreachable', 'aborted'), fc.constant(undefined)),
  fc.tuple(fc.integer({ min: 1, max: 4095 }).map((e) => `other:${e}`), fc.constant(undefined)),
);
const probeLine = fc.record({
  time: decimal(3), pid: fc.integer({ min: 1, max: 4194304 }), comm: commBytes, addrs: addrPair, lport: fc.nat(65535),
  dport: fc.integer({ min: 1, max: 65535 }), lat: decimal(2), retx: fc.nat(65535), outcome,
});
type ProbeCase = typeof probeLine extends fc.Arbitrary<infer V> ? V : never;
const text = (c: ProbeCase, comm = c.comm): string => render({ time: c.time, pid: c.pid, comm, ip: c.addrs[0], saddr: c.addrs[1],
  lport: c.lport, daddr: c.addrs[2], dport: c.dport, lat: c.lat, retx: c.retx, rtt: c.outcome[1] ?? '-', result: c.outcome[0] });

describe('connlat-probe properties', () => {
  it('a line printed from any event the tool can print decodes to that event', () => {
    fc.assert(fc.property(probeLine, fc.boolean(), (c, withHeader) => {
      const d = new LineDecoder(withHeader ? 'connlat-probe' : 'detect');
      if (withHeader) d.decode(CONNLAT_PROBE_HEADER, T);
      const [ip, saddr, daddr] = c.addrs;
      const [resultText, rtt] = c.outcome;
      const other = resultText.startsWith('other:');
      assert.deepEqual(d.decode(text(c), T), {
        kind: 'event',
        event: { timeMs: T, tool: 'connlat-probe', pid: c.pid, comm: shown(c.comm), ipVersion: ip, saddr,
          sport: c.lport === 0 ? undefined : c.lport, daddr, dport: c.dport, latencyMs: Number(c.lat), failed: resultText !== 'ok',
          result: other ? 'other' : resultText, errno: other ? Number(resultText.slice(6)) : undefined, synRetransmits: c.retx,
          handshakeRttMs: rtt === undefined ? undefined : Number(rtt) },
      });
    }), { numRuns: 3000 });
  });

  it('mutated and arbitrary lines never throw and never yield an out-of-range event', () => {
    const mutated = fc.tuple(probeLine.map((c) => text(c)), fc.array(fc.tuple(fc.nat(200), fc.nat(2), fc.string({ maxLength: 3 })), { maxLength: 4 }))
      .map(([line, edits]) => {
        for (const [at, op, s] of edits) {
          const i = at % (line.length + 1);
          line = op === 0 ? line.slice(0, i) + s + line.slice(i) : op === 1 ? line.slice(0, i) + line.slice(i + 1)
            : line.slice(0, i) + s + line.slice(i + s.length);
        }
        return line;
      });
    const anyText = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }),
      fc.string({ unit: fc.constantFrom(...' 0123456789.:abcdef-46okrefusd_\n\t'.split('')), maxLength: 160 }), mutated);
    fc.assert(fc.property(fc.array(anyText, { minLength: 1, maxLength: 8 }), fc.boolean(), (lines, withHeader) => {
      const d = new LineDecoder('connlat-probe');
      if (withHeader) d.decode(CONNLAT_PROBE_HEADER, T);
      for (const line of lines) {
        const r = d.decode(line, T);
        if (r.kind === 'reject') assert.ok((REJECT_REASONS as readonly string[]).includes(r.reason));
        if (r.kind !== 'event') continue;
        const e = r.event;
        assert.ok(Number.isInteger(e.pid) && e.pid >= 1 && e.pid <= 4194304);
        assert.equal(isIP(e.saddr), e.ipVersion);
        assert.equal(isIP(e.daddr), e.ipVersion);
        assert.ok(e.dport >= 1 && e.dport <= 65535 && (e.sport === undefined || (e.sport >= 1 && e.sport <= 65535)));
        assert.ok(Number.isFinite(e.latencyMs) && e.latencyMs >= 0);
        assert.ok(Number.isInteger(e.synRetransmits) && e.synRetransmits! >= 0 && e.synRetransmits! <= 65535);
        assert.equal(e.failed, e.result !== 'ok');
        assert.ok(e.handshakeRttMs === undefined || (e.result === 'ok' && Number.isFinite(e.handshakeRttMs) && e.handshakeRttMs >= 0));
        assert.ok((e.result === 'other') === (e.errno !== undefined));
        assert.ok(!/[\x00-\x1f\x7f-\x9f]/.test(e.comm));
      }
    }), { numRuns: 5000 });
  });

  // The head fragment ends inside COMM and lacks every later field; the tail starts with the rest of COMM, which puts
  // its next field at column 12 at most, while IP (after TIME, PID and COMM) is at column 32 or later.
  it('a line split by a newline (or CR) inside COMM yields no event from any fragment', () => {
    const breakers = fc.array(fc.integer({ min: 1, max: 255 }), { maxLength: 11 })
      .chain((bytes) => fc.tuple(fc.constant(bytes), fc.nat(bytes.length), fc.constantFrom(0x0a, 0x0d)))
      .map(([bytes, at, nl]) => Buffer.from([...bytes.slice(0, at), nl, ...bytes.slice(at)]).toString('latin1'));
    fc.assert(fc.property(probeLine, breakers, fc.boolean(), (c, comm, withHeader) => {
      const fragments = text(c, comm).split(/\r|\n/);
      const d = new LineDecoder(withHeader ? 'connlat-probe' : 'detect');
      if (withHeader) d.decode(CONNLAT_PROBE_HEADER, T);
      for (const fragment of fragments) {
        const r = d.decode(fragment, T);
        if (/^[ \t]*$/.test(fragment)) assert.equal(r.kind, 'skip');
        else assert.equal(reasonOf(r), 'shape', JSON.stringify(fragment));
      }
    }), { numRuns: 5000 });
  });
});
