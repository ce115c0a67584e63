import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { ConnectEvent } from '../../src/event.ts';
import { LineDecoder } from '../../src/parse/decoder.ts';
import { type DecodeResult, MAX_LINE_BYTES, REJECT_REASONS, type StreamFormat } from '../../src/parse/types.ts';
import { ntop6, renderTcpconnlat, renderTcpstates, tcpconnlatHeader, tcpstatesHeader } from './render.ts';

const T = 1_700_000_000_000;
const reasonOf = (r: DecodeResult): string => (r.kind === 'reject' ? r.reason : r.kind);
const BLOG = '21168  curl         4  10.0.2.15        76.76.21.21      443   47.80';
const STATES = '13:31:59 ffff888103a80000 3513    python3    127.0.0.1       49898 127.0.0.1       48853 SYN_SENT    -> ESTABLISHED 0.162';
/** The connect() line of the socket STATES resolves (tcpstates attributes a connect to it, and only with it). */
const STATES_CONNECT = '13:31:59 ffff888103a80000 3513    python3    127.0.0.1       0     127.0.0.1       48853 CLOSE       -> SYN_SENT    0.000';

describe('LineDecoder', () => {
  it('rejects over-long lines before anything else, at MAX_LINE_BYTES + 1', () => {
    const d = new LineDecoder('tcpconnlat');
    const r = d.decode(BLOG + ' '.repeat(5 * 1024), T);
    assert.deepEqual(r, { kind: 'reject', reason: 'too_long', detail: `line of ${BLOG.length + 5120} bytes (max 4096)` });
    assert.equal(reasonOf(d.decode(BLOG + ' '.repeat(MAX_LINE_BYTES - BLOG.length), T)), 'event');
    assert.equal(reasonOf(d.decode('x'.repeat(MAX_LINE_BYTES + 1), T)), 'too_long');
  });
  it('skips empty and whitespace-only lines', () => {
    const d = new LineDecoder('detect');
    for (const line of ['', ' ', '\t', '\r', '   \t \r']) assert.equal(reasonOf(d.decode(line, T)), 'skip');
    assert.equal(d.tool, undefined);
  });
  it('a header selects the tool and its options, and a later header switches them', () => {
    const d = new LineDecoder('detect');
    assert.equal(d.tool, undefined);
    assert.equal(reasonOf(d.decode(tcpconnlatHeader(true, true), T)), 'skip');
    assert.equal(d.tool, 'tcpconnlat');
    assert.deepEqual(d.options, { time: true, lport: true });
    assert.equal(reasonOf(d.decode(BLOG, T)), 'shape'); // no TIME/LPORT columns
    assert.equal(reasonOf(d.decode(tcpconnlatHeader(false, false) + '\r', T)), 'skip');
    assert.equal(reasonOf(d.decode(BLOG, T)), 'event');
    assert.equal(reasonOf(d.decode(tcpstatesHeader(true, false), T)), 'skip');
    assert.equal(d.tool, 'tcpstates');
    assert.deepEqual(d.options, { time: true, wide: false });
    assert.equal(reasonOf(d.decode(STATES_CONNECT, T)), 'skip');
    assert.equal(reasonOf(d.decode(STATES, T)), 'event');
  });
  it('a fixed-format decoder refuses the other tool\'s header and unknown headers', () => {
    const d = new LineDecoder('tcpconnlat');
    assert.equal(d.tool, 'tcpconnlat');
    assert.deepEqual(d.decode(tcpstatesHeader(false, false), T), { kind: 'reject', reason: 'shape', detail: 'not a tcpconnlat header' });
    assert.equal(reasonOf(d.decode('PID    COMM', T)), 'shape');
    assert.equal(reasonOf(d.decode('Tracing connects ... Hit Ctrl-C to end', T)), 'shape');
    assert.equal(d.tool, 'tcpconnlat');
  });
  it('without a header, the first line that fits a layout decides the format', () => {
    const cases: [StreamFormat, string, string, object][] = [
      ['detect', BLOG, 'tcpconnlat', { time: false, lport: false }],
      ['detect', '0.000     ' + BLOG, 'tcpconnlat', { time: true, lport: false }],
      ['detect', STATES, 'tcpstates', { time: true, wide: false }],
      ['detect', STATES.slice(9), 'tcpstates', { time: false, wide: false }],
      ['tcpstates', STATES, 'tcpstates', { time: true, wide: false }],
    ];
    for (const [format, line, tool, options] of cases) {
      const d = new LineDecoder(format);
      if (line.endsWith(STATES.slice(9))) {
        // a tcpstates connect needs its connect() line first, and that line (a skip) is the one that decides
        assert.equal(reasonOf(d.decode(line === STATES ? STATES_CONNECT : STATES_CONNECT.slice(9), T)), 'skip', line);
        assert.equal(d.tool, tool);
      }
      assert.equal(reasonOf(d.decode(line, T)), 'event', line);
      assert.equal(d.tool, tool);
      assert.deepEqual(d.options, options);
    }
    const d = new LineDecoder('detect');
    assert.deepEqual(d.decode('garbage', T), { kind: 'reject', reason: 'shape', detail: 'fits no tcpconnlat, tcpstates or connlat-probe layout' });
    assert.equal(d.tool, undefined);
    assert.equal(reasonOf(d.decode(BLOG.replace('443 ', '0   '), T)), 'port'); // right shape, bad value: decides
    assert.equal(d.tool, 'tcpconnlat');
    assert.equal(reasonOf(new LineDecoder('tcpconnlat').decode(STATES, T)), 'shape');
  });
  it('every reason is in the fixed set', () => {
    assert.deepEqual([...REJECT_REASONS].sort(),
      ['ip', 'ip_version', 'latency', 'owner', 'pid', 'port', 'result', 'shape', 'skaddr', 'state', 'time', 'too_long']);
  });
});

// ---- property-based --------------------------------------------------------------------------------------------

/** COMM bytes the kernel can hold: 0-15 bytes, no NUL. CR and LF are kept out (a source splits lines there). */
const commBytes = fc.array(fc.integer({ min: 1, max: 255 }).filter((b) => b !== 0x0a && b !== 0x0d), { maxLength: 15 })
  .map((bytes) => Buffer.from(bytes).toString('latin1'));
/** Independent oracle of the COMM display rule. */
function shown(latin1: string, max: number): string {
  const text = Buffer.from(latin1.slice(0, max).replace(/ +$/, ''), 'latin1').toString('utf8');
  return text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '?');
}
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const ipv6 = fc.array(fc.oneof(fc.constant(0), fc.constant(0xffff), fc.nat(0xffff)), { minLength: 8, maxLength: 8 }).map(ntop6);
const addrPair = fc.oneof(
  fc.tuple(fc.constant(4 as const), ipv4, ipv4),
  fc.tuple(fc.constant(6 as const), ipv6, ipv6),
);
const decimal = (digits: number) => fc.tuple(fc.nat(2_000_000), fc.nat(10 ** digits - 1))
  .map(([i, f]) => `${i}.${String(f).padStart(digits, '0')}`);
const pid = fc.integer({ min: 1, max: 4194304 });
const port = fc.integer({ min: 1, max: 65535 });
const hhmmss = fc.tuple(fc.nat(23), fc.nat(59), fc.nat(59)).map((p) => p.map((n) => String(n).padStart(2, '0')).join(':'));
const skaddr = fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }).map((n) => n.toString(16));

const connlatLine = fc.record({
  time: fc.option(decimal(3), { nil: undefined }), pid, comm: commBytes, addrs: addrPair,
  lport: fc.option(port, { nil: undefined }), dport: port, lat: decimal(2),
});

const statesConnect = fc.record({
  time: fc.option(hhmmss, { nil: undefined }), wide: fc.boolean(), skaddr, pid, comm: commBytes, addrs: addrPair,
  lport: port, rport: port, ms: decimal(3), failed: fc.boolean(), irqPid: fc.nat(4194304), irqComm: commBytes,
});

function connlatText(c: typeof connlatLine extends fc.Arbitrary<infer V> ? V : never): string {
  const [ip, saddr, daddr] = c.addrs;
  return renderTcpconnlat({ time: c.time, pid: c.pid, comm: c.comm, ip, saddr, lport: c.lport, daddr, dport: c.dport, lat: c.lat });
}

function statesTexts(c: typeof statesConnect extends fc.Arbitrary<infer V> ? V : never): [string, string] {
  const [, laddr, raddr] = c.addrs;
  const common = { time: c.time, wide: c.wide, skaddr: c.skaddr, laddr, raddr, rport: c.rport };
  return [
    renderTcpstates({ ...common, pid: c.pid, comm: c.comm, lport: 0, oldState: 'CLOSE', newState: 'SYN_SENT', ms: '0.000' }),
    renderTcpstates({ ...common, pid: c.irqPid, comm: c.irqComm, lport: c.lport, oldState: 'SYN_SENT',
      newState: c.failed ? 'CLOSE' : 'ESTABLISHED', ms: c.ms }),
  ];
}

/** The invariants every emitted event holds, whatever the input. */
function checkEvent(e: ConnectEvent): void {
  assert.ok(Number.isInteger(e.pid) && e.pid >= 1 && e.pid <= 4194304, `pid ${e.pid}`);
  assert.ok(e.ipVersion === 4 || e.ipVersion === 6);
  assert.equal(isIP(e.saddr), e.ipVersion);
  assert.equal(isIP(e.daddr), e.ipVersion);
  assert.ok(Number.isInteger(e.dport) && e.dport >= 1 && e.dport <= 65535, `dport ${e.dport}`);
  if (e.tool === 'tcpconnlat') assert.ok(e.sport === undefined || (Number.isInteger(e.sport) && e.sport >= 1 && e.sport <= 65535));
  else assert.ok(Number.isInteger(e.sport) && e.sport! >= (e.failed ? 0 : 1) && e.sport! <= 65535, `sport ${e.sport}`);
  assert.ok(Number.isFinite(e.latencyMs) && e.latencyMs >= 0, `latency ${e.latencyMs}`);
  assert.ok(!/[\x00-\x1f\x7f-\x9f]/.test(e.comm), `comm ${JSON.stringify(e.comm)}`);
  assert.equal(e.timeMs, T);
}

describe('LineDecoder properties', () => {
  it('a tcpconnlat line printed from any valid event decodes to that event', () => {
    fc.assert(fc.property(connlatLine, fc.boolean(), (c, withHeader) => {
      const d = new LineDecoder(withHeader ? 'tcpconnlat' : 'detect');
      if (withHeader) d.decode(tcpconnlatHeader(c.time !== undefined, c.lport !== undefined), T);
      const [ip, saddr, daddr] = c.addrs;
      assert.deepEqual(d.decode(connlatText(c), T), {
        kind: 'event',
        event: { timeMs: T, tool: 'tcpconnlat', pid: c.pid, comm: shown(c.comm, 12), ipVersion: ip, saddr, sport: c.lport,
          daddr, dport: c.dport, latencyMs: Number(c.lat), failed: false },
      });
    }), { numRuns: 3000 });
  });

  it('a tcpstates connect printed from any valid event decodes to that event, owned by the connect() caller', () => {
    fc.assert(fc.property(statesConnect, fc.boolean(), (c, withHeader) => {
      const d = new LineDecoder(withHeader ? 'tcpstates' : 'detect');
      if (withHeader) d.decode(tcpstatesHeader(c.time !== undefined, c.wide), T);
      const [open, resolve] = statesTexts(c);
      const [ip, saddr, daddr] = c.addrs;
      assert.deepEqual(d.decode(open, T), { kind: 'skip' });
      assert.deepEqual(d.decode(resolve, T), {
        kind: 'event',
        event: { timeMs: T, tool: 'tcpstates', pid: c.pid, comm: shown(c.comm, c.wide ? 15 : 10), ipVersion: ip, saddr,
          sport: c.lport, daddr, dport: c.rport, latencyMs: Number(c.ms), failed: c.failed },
      });
    }), { numRuns: 3000 });
  });

  it('arbitrary and mutated lines never throw and never yield an out-of-range event', () => {
    const valid = fc.oneof(connlatLine.map(connlatText), statesConnect.map((c) => statesTexts(c)[1]));
    const mutated = fc.tuple(valid, fc.array(fc.tuple(fc.nat(200), fc.nat(2), fc.string({ maxLength: 3 })), { maxLength: 4 }))
      .map(([line, edits]) => {
        for (const [at, op, text] of edits) {
          const i = at % (line.length + 1);
          line = op === 0 ? line.slice(0, i) + text + line.slice(i) : op === 1 ? line.slice(0, i) + line.slice(i + 1)
            : line.slice(0, i) + text + line.slice(i + text.length);
        }
        return line;
      });
    const anyText = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }),
      fc.string({ unit: fc.constantFrom(...' 0123456789.:abcdef-46\n\t'.split('')), maxLength: 160 }), mutated);
    const headers = [tcpconnlatHeader(false, false), tcpconnlatHeader(true, true), tcpstatesHeader(false, false),
      tcpstatesHeader(true, true), undefined];
    fc.assert(fc.property(fc.array(anyText, { minLength: 1, maxLength: 8 }), fc.constantFrom(...headers),
      fc.constantFrom<StreamFormat>('detect', 'tcpconnlat', 'tcpstates'), (lines, header, format) => {
        const d = new LineDecoder(format);
        if (header !== undefined) d.decode(header, T);
        for (const line of lines) {
          const r = d.decode(line, T);
          if (r.kind === 'event') checkEvent(r.event);
          else if (r.kind === 'reject') assert.ok((REJECT_REASONS as readonly string[]).includes(r.reason));
        }
      }), { numRuns: 5000 });
  });

  // Why it holds: the head fragment ends inside COMM, so it lacks every later field; the tail fragment starts with the
  // rest of COMM, which puts the next field at column 16 at most (COMM is at most 16 wide), while every layout puts
  // the field after COMM at column 20 or later (tcpconnlat: PID 6 + COMM 12 + 2 separators; tcpstates: 36 or later).
  it('a line split by a newline (or CR) inside COMM yields no event from any fragment', () => {
    const breakers = fc.array(fc.integer({ min: 1, max: 255 }), { minLength: 0, maxLength: 14 })
      .chain((bytes) => fc.tuple(fc.constant(bytes), fc.nat(bytes.length), fc.constantFrom(0x0a, 0x0d)))
      .map(([bytes, at, nl]) => Buffer.from([...bytes.slice(0, at), nl, ...bytes.slice(at)]).toString('latin1'));
    const line = fc.oneof(
      fc.tuple(connlatLine, breakers).map(([c, comm]) => ({
        header: tcpconnlatHeader(c.time !== undefined, c.lport !== undefined), text: connlatText({ ...c, comm }) })),
      fc.tuple(statesConnect, breakers, fc.boolean()).map(([c, comm, second]) => ({
        header: tcpstatesHeader(c.time !== undefined, c.wide),
        text: statesTexts(second ? { ...c, irqComm: comm } : { ...c, comm })[second ? 1 : 0] })),
    );
    fc.assert(fc.property(line, fc.boolean(), ({ header, text }, withHeader) => {
      const fragments = text.split(/\r|\n/);
      fc.pre(fragments.length > 1); // the tool's COMM precision may have cut the newline off
      const d = new LineDecoder('detect');
      if (withHeader) d.decode(header, T);
      for (const fragment of fragments) {
        const r = d.decode(fragment, T);
        if (/^[ \t]*$/.test(fragment)) assert.equal(r.kind, 'skip');
        else assert.equal(reasonOf(r), 'shape', JSON.stringify(fragment));
      }
    }), { numRuns: 5000 });
  });
});
