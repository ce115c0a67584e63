import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConnectEvent } from '../../src/event.ts';
import { LineDecoder } from '../../src/parse/decoder.ts';
import { ConnectingSockets, parseTcpstatesLine, TCPSTATES_FORMATS } from '../../src/parse/tcpstates.ts';
import type { DecodeResult } from '../../src/parse/types.ts';
import { renderTcpstates, tcpstatesHeader, type TcpstatesLineSpec } from './render.ts';

const T = 1_700_000_000_000;

function decodeAll(lines: string[], decoder = new LineDecoder('tcpstates')): DecodeResult[] {
  return lines.map((line) => decoder.decode(line, T));
}

function ev(pid: number, comm: string, saddr: string, sport: number, daddr: string, dport: number, latencyMs: number,
  failed = false): DecodeResult {
  const event: ConnectEvent = {
    timeMs: T, tool: 'tcpstates', pid, comm, ipVersion: saddr.includes(':') ? 6 : 4, saddr, sport, daddr, dport,
    latencyMs, failed,
  };
  return { kind: 'event', event };
}

const reasonOf = (r: DecodeResult | undefined): string => (r?.kind === 'reject' ? r.reason : r?.kind ?? 'none');
const SKIP = { kind: 'skip' };

describe('tcpstates -T: lines captured on this machine', () => {
  const capture = [
    'TIME(s)  SKADDR           PID     COMM       LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS',
    '13:31:59 ffff888103a83780 3512    curl       127.0.0.1       0     127.0.0.1       1     CLOSE       -> SYN_SENT    0.000',
    '13:31:59 ffff888103a83780 3512    curl       127.0.0.1       54722 127.0.0.1       1     SYN_SENT    -> CLOSE       0.145',
    '13:31:59 ffff888103a83780 3513    python3    127.0.0.1       48853 0.0.0.0         0     CLOSE       -> LISTEN      0.000',
    '13:31:59 ffff888103a80000 3513    python3    127.0.0.1       0     127.0.0.1       48853 CLOSE       -> SYN_SENT    0.000',
    '13:31:59 ffff888103a80000 3513    python3    127.0.0.1       49898 127.0.0.1       48853 SYN_SENT    -> ESTABLISHED 0.162',
    '13:31:59 ffff888103a81bc0 3513    python3    127.0.0.1       48853 127.0.0.1       49898 LISTEN      -> SYN_RECV    0.000',
    '13:31:59 ffff888103a81bc0 3513    python3    127.0.0.1       48853 127.0.0.1       49898 SYN_RECV    -> ESTABLISHED 0.012',
    '13:31:59 ffff888103a80000 3513    python3    127.0.0.1       49898 127.0.0.1       48853 ESTABLISHED -> FIN_WAIT1   0.058',
  ];
  it('header is exactly what the tool prints', () => assert.equal(capture[0], tcpstatesHeader(true, false)));
  it('one refused connect, one connect, everything else skipped', () => {
    assert.deepEqual(decodeAll(capture), [
      SKIP, SKIP,
      ev(3512, 'curl', '127.0.0.1', 54722, '127.0.0.1', 1, 0.145, true),
      SKIP, SKIP,
      ev(3513, 'python3', '127.0.0.1', 49898, '127.0.0.1', 48853, 0.162),
      SKIP, SKIP, SKIP,
    ]);
  });
});

describe('tcpstates: who connected', () => {
  const line = (s: Partial<TcpstatesLineSpec>): string => renderTcpstates({
    skaddr: 'ffff888165792e40', pid: 11412, comm: 'python3', laddr: '10.213.0.1', lport: 0, raddr: '10.213.0.2',
    rport: 8080, oldState: 'CLOSE', newState: 'SYN_SENT', ms: '0.000', ...s,
  });
  it('prefers the PID/COMM of the CLOSE -> SYN_SENT line over the softirq context of the resolving line', () => {
    // from test/fixtures/recordings/tcpstates-T.txt: the SYN-ACK interrupted "compile"
    assert.deepEqual(decodeAll([
      line({}),
      line({ pid: 11555, comm: 'compile', lport: 50954, oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '165.913' }),
    ]), [SKIP, ev(11412, 'python3', '10.213.0.1', 50954, '10.213.0.2', 8080, 165.913)]);
  });
  it('forgets the socket once the connect resolves; a reused SKADDR gets its new owner', () => {
    const d = new LineDecoder('tcpstates');
    const r = decodeAll([
      line({}),
      line({ lport: 1, oldState: 'SYN_SENT', newState: 'CLOSE', ms: '0.104' }),
      line({ pid: 14, comm: 'ksoftirqd/0', lport: 2, oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '1.000' }),
      line({ pid: 777, comm: 'curl' }),
      line({ pid: 0, comm: 'swapper/1', lport: 3, oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '2.000' }),
    ], d);
    assert.deepEqual(r.slice(1).map((x) => (x.kind === 'event' ? `${x.event.pid} ${x.event.comm}` : reasonOf(x))),
      ['11412 python3', 'owner', 'skip', '777 curl']);
  });
  it('without the connect() line the process is unknown: never the task the softirq interrupted (owner rejection)', () => {
    // e.g. tcpstates started while the connect was in flight, or its CLOSE -> SYN_SENT line lost in the perf buffer
    const r = decodeAll([
      line({ pid: 4242, comm: 'busy-test', lport: 5, oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '1.000' }),
      line({ pid: 4242, comm: 'busy-test', lport: 6, oldState: 'SYN_SENT', newState: 'CLOSE', ms: '3.000' }),
      line({ pid: 0, comm: 'swapper/0', lport: 7, oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '1.000' }),
    ]);
    assert.deepEqual(r.map(reasonOf), ['owner', 'owner', 'owner']);
    assert.ok(r[0]!.kind === 'reject' && /CLOSE -> SYN_SENT/.test(r[0]!.detail ?? ''));
  });
  it('SKADDR reuse after lost events: a socket closed meanwhile takes its owner with it', () => {
    // socket A: connect() seen, its outcome lost, then its later life seen; socket B at the same address: its connect()
    // lost, its outcome seen in softirq. Before: B's connect was attributed to A's process.
    const r = decodeAll([
      line({ pid: 100, comm: 'conn-a', raddr: '10.213.0.9', rport: 80 }),
      line({ pid: 0, comm: 'swapper/0', lport: 40000, raddr: '10.213.0.9', rport: 80, oldState: 'ESTABLISHED', newState: 'FIN_WAIT1', ms: '5.000' }),
      line({ pid: 0, comm: 'swapper/0', lport: 40000, raddr: '10.213.0.9', rport: 80, oldState: 'FIN_WAIT1', newState: 'CLOSE', ms: '1.000' }),
      line({ pid: 7, comm: 'ksoftirqd', lport: 41000, raddr: '10.213.0.2', rport: 443, oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '2.000' }),
    ]);
    assert.deepEqual(r.map(reasonOf), ['skip', 'skip', 'skip', 'owner']);
  });
  it('SKADDR reuse with the old socket\'s last lines printed late (another CPU\'s perf buffer): the new owner stays', () => {
    // measured through the delay line: socat's new connect() line came before the old socket's FIN_WAIT2 -> CLOSE
    const r = decodeAll([
      line({ pid: 17600, comm: 'MainThread' }),
      line({ pid: 17617, comm: 'socat', lport: 35874, oldState: 'FIN_WAIT1', newState: 'FIN_WAIT2', ms: '154.798' }),
      line({ pid: 17617, comm: 'socat', lport: 35874, oldState: 'FIN_WAIT2', newState: 'CLOSE', ms: '0.029' }),
      line({ pid: 17617, comm: 'socat', lport: 35894, oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '150.497' }),
    ]);
    assert.deepEqual(r.map((x) => (x.kind === 'event' ? `${x.event.pid} ${x.event.comm} ${x.event.sport}` : reasonOf(x))),
      ['skip', 'skip', 'skip', '17600 MainThread 35894']);
  });
  it('SKADDR reuse with the new connect() printed before the old socket\'s outcome: each outcome gets its own owner', () => {
    const r = decodeAll([
      line({ pid: 100, comm: 'first' }),
      line({ pid: 200, comm: 'second' }),
      line({ pid: 0, comm: 'swapper/1', lport: 40000, oldState: 'SYN_SENT', newState: 'CLOSE', ms: '150.100' }),
      line({ pid: 0, comm: 'swapper/1', lport: 40002, oldState: 'SYN_SENT', newState: 'CLOSE', ms: '150.200' }),
    ]);
    assert.deepEqual(r.map((x) => (x.kind === 'event' ? `${x.event.pid} ${x.event.comm} ${x.event.sport}` : reasonOf(x))),
      ['skip', 'skip', '100 first 40000', '200 second 40002']);
  });
  it('SKADDR reuse with every line of the old socket lost after connect(): the destination does not match its owner', () => {
    const r = decodeAll([
      line({ pid: 100, comm: 'conn-a', raddr: '10.213.0.9', rport: 80 }),
      line({ pid: 7, comm: 'ksoftirqd', lport: 41000, raddr: '10.213.0.2', rport: 443, oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '2.000' }),
    ]);
    assert.deepEqual(r.map(reasonOf), ['skip', 'owner']);
  });
  it('a restarted tool (its header again) starts with no owners: the gap may hide a close and a reuse', () => {
    const d = new LineDecoder('tcpstates');
    const r = decodeAll([
      tcpstatesHeader(false, false),
      line({}),
      tcpstatesHeader(false, false),
      line({ pid: 7, comm: 'ksoftirqd', lport: 41000, oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '2.000' }),
    ], d);
    assert.deepEqual(r.map(reasonOf), ['skip', 'skip', 'skip', 'owner']);
  });
  it('keeps at most maxEntries sockets, evicting the oldest', () => {
    const sockets = new ConnectingSockets(3);
    const to = { raddr: '10.0.0.1', rport: 80 };
    for (const k of ['a', 'b', 'c', 'd']) sockets.remember(k, { pid: 1, comm: k, ...to });
    assert.equal(sockets.size, 3);
    assert.equal(sockets.take('a', to.raddr, to.rport), undefined);
    sockets.remember('b', { pid: 2, comm: 'b2', ...to }); // a second connect at b: b is now the newest address
    sockets.remember('e', { pid: 1, comm: 'e', ...to }); // evicts c
    assert.equal(sockets.take('c', to.raddr, to.rport), undefined);
    assert.equal(sockets.take('b', to.raddr, 443), 'mismatch');
    assert.deepEqual(sockets.take('b', to.raddr, to.rport), { pid: 1, comm: 'b', ...to }); // oldest first
    assert.deepEqual(sockets.take('b', to.raddr, to.rport), { pid: 2, comm: 'b2', ...to });
    assert.equal(sockets.size, 2);
  });
  it('the decoder bound holds over 70,000 connects that never resolve', () => {
    const d = new LineDecoder('tcpstates', { connectingSocketsMax: 65536 });
    for (let i = 0; i < 70000; i++) d.decode(line({ skaddr: 'ffff8881' + (i * 64).toString(16).padStart(8, '0') }), T);
    const first = d.decode(line({ skaddr: 'ffff888100000000', pid: 9, comm: 'irq', lport: 1,
      oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '1.000' }), T);
    const last = d.decode(line({ skaddr: 'ffff8881' + (69999 * 64).toString(16).padStart(8, '0'), pid: 9, comm: 'irq', lport: 1,
      oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '1.000' }), T);
    assert.equal(reasonOf(first), 'owner'); // evicted: its process is unknown, not the softirq's task
    assert.ok(last.kind === 'event' && last.event.pid === 11412);
  });
});

describe('tcpstates: layouts and hazards', () => {
  const spec: TcpstatesLineSpec = {
    skaddr: 'ffff888107827500', pid: 12601, comm: 'python3', laddr: 'fd00:213::1', lport: 50762, raddr: 'fd00:213::2',
    rport: 8443, oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '0.144',
  };
  const expected = ev(12601, 'python3', 'fd00:213::1', 50762, 'fd00:213::2', 8443, 0.144);
  /** The socket's connect() line, then its outcome `s`: a tcpstates connect is attributed from the first. */
  const connect = (s: TcpstatesLineSpec): string[] =>
    [renderTcpstates({ ...s, lport: 0, oldState: 'CLOSE', newState: 'SYN_SENT', ms: '0.000' }), renderTcpstates(s)];
  it('-w, -T -w, and narrow with IPv6 overflowing the 15-wide columns', () => {
    for (const [time, wide] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const s = { ...spec, ...(time ? { time: '23:59:59' } : {}), wide };
      assert.deepEqual(decodeAll([tcpstatesHeader(time, wide), ...connect(s)]), [SKIP, SKIP, expected], `${time} ${wide}`);
      assert.deepEqual(decodeAll(connect(s)), [SKIP, expected], `detected ${time} ${wide}`);
    }
    assert.equal(tcpstatesHeader(false, true),
      'SKADDR           PID     COMM             IP LADDR                      LPORT RADDR                      RPORT OLDSTATE    -> NEWSTATE    MS');
  });
  it('wide COMM is not truncated (15 bytes); narrow COMM is cut at 10', () => {
    const comm = 'abcdefghijklmno';
    const wide = decodeAll([tcpstatesHeader(false, true), ...connect({ ...spec, wide: true, comm })])[2]!;
    const narrow = decodeAll([tcpstatesHeader(false, false), ...connect({ ...spec, comm })])[2]!;
    assert.ok(wide.kind === 'event' && wide.event.comm === comm);
    assert.ok(narrow.kind === 'event' && narrow.event.comm === 'abcdefghij');
  });
  it('COMM with spaces, digits and arrows cannot move fields; a newline in it yields no event', () => {
    for (const wide of [false, true]) {
      for (const comm of ['1 ::1 80 ::', 'SYN_SENT ->', '-> CLOSE 9']) {
        const r = decodeAll([tcpstatesHeader(false, wide), ...connect({ ...spec, wide, comm })])[2]!;
        assert.ok(r.kind === 'event' && r.event.comm === comm.slice(0, wide ? 15 : 10));
      }
      for (const comm of ['a\n1 4 ::1 8', '\nffff 1 x', 'abcdefghi\n']) {
        const fragments = renderTcpstates({ ...spec, wide, comm }).split('\n');
        assert.deepEqual(decodeAll([tcpstatesHeader(false, wide), ...fragments]).slice(1).map(reasonOf), ['shape', 'shape']);
      }
    }
  });
  it('a 7-digit PID fills its column; PID 0 is accepted on non-connect lines', () => {
    const r = decodeAll([renderTcpstates({ ...spec, pid: 4194304, oldState: 'CLOSE', newState: 'SYN_SENT', lport: 0 }),
      renderTcpstates({ ...spec, pid: 1 })]);
    const resolved = r[1]!;
    assert.ok(resolved.kind === 'event' && resolved.event.pid === 4194304);
    assert.deepEqual(decodeAll([renderTcpstates({ ...spec, pid: 0, oldState: 'LISTEN', newState: 'SYN_RECV' })]), [SKIP]);
  });
  it('LPORT 0 is accepted on a failed connect (no local port bound yet), rejected on an established one', () => {
    assert.deepEqual(decodeAll(connect({ ...spec, lport: 0, newState: 'CLOSE', ms: '0.010' })),
      [SKIP, ev(12601, 'python3', 'fd00:213::1', 0, 'fd00:213::2', 8443, 0.01, true)]);
    assert.deepEqual(decodeAll(connect({ ...spec, lport: 0 })).map(reasonOf), ['skip', 'port']);
  });
  it('rejects bad values with a stable reason', () => {
    const table: [Partial<TcpstatesLineSpec>, string][] = [
      [{ laddr: '10.0.0.1' }, 'ip_version'], [{ wide: true, ip: 4 }, 'ip_version'], [{ wide: true, ip: 5 }, 'ip_version'],
      [{ raddr: 'fd00::213::2' }, 'ip'], [{ rport: 0 }, 'port'], [{ rport: 65536 }, 'port'], [{ lport: 99999 }, 'port'],
      [{ oldState: 'SYN_SEN' }, 'state'], [{ newState: '(null)' }, 'state'], [{ skaddr: 'fffg888107827500' }, 'skaddr'], [{ skaddr: 'FFFF888107827500' }, 'shape'],
      [{ skaddr: 'ffff8881078275001' }, 'skaddr'], [{ ms: 'nan' }, 'latency'], [{ ms: 'inf' }, 'latency'],
      [{ ms: '-0.144' }, 'latency'], [{ time: '01:02:0x' }, 'time'], [{ time: '1:02:03' }, 'shape'], [{ time: '12:3a:00' }, 'time'],
      [{ pid: 4194305 }, 'pid'], [{ ms: '0.1' }, 'shape'], [{ ms: '0' }, 'shape'], [{ ms: '0.14' }, 'shape'],
      [{ ms: '0.1440' }, 'shape'], [{ ms: '165.' }, 'shape'],
    ];
    for (const [change, reason] of table) {
      const s = { ...spec, ...change };
      // the connect() line goes first when it parses (its own fields are what the case breaks, if not the outcome's)
      const [call, outcome] = connect(s);
      const d = new LineDecoder('tcpstates');
      d.decode(tcpstatesHeader(s.time !== undefined, s.wide === true), T);
      d.decode(call!, T);
      assert.equal(reasonOf(d.decode(outcome!, T)), reason, JSON.stringify(change));
    }
    const arrow = renderTcpstates(spec).replace(' -> ', ' => ');
    assert.equal(reasonOf(decodeAll([tcpstatesHeader(false, false), arrow])[1]), 'shape');
  });
  it('parseTcpstatesLine returns the fields of any transition', () => {
    const text = renderTcpstates({ ...spec, time: '13:37:00', oldState: 'FIN_WAIT1', newState: 'FIN_WAIT2', ms: '42.990' });
    assert.deepEqual(parseTcpstatesLine(text, text.length, TCPSTATES_FORMATS[1]!), {
      kind: 'transition', skaddr: 'ffff888107827500', pid: 12601, comm: 'python3', ipVersion: 6, laddr: 'fd00:213::1',
      lport: 50762, raddr: 'fd00:213::2', rport: 8443, oldState: 'FIN_WAIT1', newState: 'FIN_WAIT2', ms: 42.99,
    });
  });
});
