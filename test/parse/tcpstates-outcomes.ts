// The tcpstates lines of test/parse/tcpstates-outcomes.test.ts: valid, malformed and hostile lines in each of the
// four layouts, plus seeded mutations of them. Deterministic, so the outcomes pinned in
// test/fixtures/tcpstates-outcomes.json (written by `node test/parse/tcpstates-outcomes.ts --write`) stay comparable.
// The pinned outcomes were written by the parser that sliced and decoded every field of every line (before the
// in-place validation of non-connect transitions): the test shows the two accept and reject exactly the same lines.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LineDecoder } from '../../src/parse/decoder.ts';
import type { DecodeResult } from '../../src/parse/types.ts';
import { renderTcpstates, tcpstatesHeader, type TcpstatesLineSpec } from './render.ts';

export const OUTCOMES_FIXTURE = fileURLToPath(new URL('../fixtures/tcpstates-outcomes.json', import.meta.url));
export const OUTCOMES_TIME_MS = 1_700_000_000_000;

/** Attacker-controlled COMM values: escapes, bidi overrides, UTF-8 (valid and not), fields and arrows, NUL, newline. */
const HOSTILE_COMMS = [
  'python3', '1 ::1 80 ::', 'SYN_SENT ->', '-> CLOSE 9', ' 0 -> ', '\x1b[31mred', '\u00e2\u0080\u00ae' + 'evil', // U+202E as latin1 bytes
  '\u00ff\u00fe\u00fd', 'caf\u00c3\u00a9', '\x00hidden', 'tab\there', 'cr\rhere', 'a\n1 4 ::1 8', '\nffff 1 x', 'abcdefghi\n',
  'abcdefghijklmno', '               ', '%s%n%d', '"quote\\', 'ESTABLISHED',
];

const STATES: [string, string][] = [
  ['CLOSE', 'SYN_SENT'], ['SYN_SENT', 'ESTABLISHED'], ['SYN_SENT', 'CLOSE'], ['SYN_SENT', 'SYN_RECV'], ['CLOSE', 'LISTEN'],
  ['LISTEN', 'SYN_RECV'], ['SYN_RECV', 'ESTABLISHED'], ['ESTABLISHED', 'FIN_WAIT1'], ['FIN_WAIT1', 'FIN_WAIT2'],
  ['FIN_WAIT2', 'CLOSE'], ['ESTABLISHED', 'CLOSE_WAIT'], ['CLOSE_WAIT', 'LAST_ACK'], ['LAST_ACK', 'CLOSE'],
  ['FIN_WAIT1', 'CLOSING'], ['CLOSING', 'TIME_WAIT'], ['LISTEN', 'CLOSE'], ['NEW_SYN_RECV', 'UNKNOWN'],
];

/** Field changes that break one thing each (some two: which reason wins is part of the outcome). */
const BREAKS: Partial<TcpstatesLineSpec>[] = [
  { laddr: '10.0.0.1' }, { ip: 4 }, { ip: 5 }, { ip: 46 }, { raddr: 'fd00::213::2' }, { laddr: '256.1.1.1' }, { raddr: '1.2.3' },
  { laddr: '01.2.3.4' }, { raddr: 'fe80::1%eth0' }, { laddr: '::ffff:1.2.3.4' }, { rport: 0 }, { rport: 65536 }, { lport: 99999 },
  { lport: 0 }, { oldState: 'SYN_SEN' }, { newState: '(null)' }, { newState: 'established' }, { oldState: 'CLOSED' },
  { skaddr: 'fffg888107827500' }, { skaddr: 'FFFF888107827500' }, { skaddr: 'ffff8881078275001' }, { skaddr: '0' },
  { ms: 'nan' }, { ms: 'inf' }, { ms: '-0.144' }, { ms: '1e3' }, { ms: '0.1' }, { ms: '0' }, { ms: '0.14' }, { ms: '0.1440' },
  { ms: '165.' }, { ms: '9'.repeat(400) + '.000' }, { ms: '9'.repeat(308) + '.000' }, { ms: '9'.repeat(309) + '.000' },
  { time: '01:02:0x' }, { time: '1:02:03' }, { time: '12:3a:00' }, { time: '24:00:00' }, { pid: 4194305 }, { pid: 0 },
  { pid: 4194304 }, { laddr: 'nope', oldState: 'BAD' }, { rport: 70000, newState: 'X' }, { skaddr: 'zz', pid: 4194305 },
  { ms: 'x', raddr: 'y' }, { laddr: '10.1.1.1', raddr: 'fd00::1' }, { laddr: 'fd00::1', raddr: '10.1.1.1', ip: 4 },
];

interface Case {
  readonly format: { time: boolean; wide: boolean };
  /** lines in the order one decoder reads them (owners carry over from line to line) */
  readonly lines: string[];
}

function rng(seed: number): () => number {
  return () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
}

const MUTATION_CHARS = ' 0123456789abcdef.:->_ABCDEFGHIJKLMNOPQRSTUVWXYZ\t\r\x1b\u00ff\u00c3';

/** One or two random edits (replace, insert, delete a char, or a field shifted by a space) of a valid line. */
function mutate(line: string, rand: () => number): string {
  let s = line;
  const edits = 1 + Math.floor(rand() * 2);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * s.length);
    const c = MUTATION_CHARS[Math.floor(rand() * MUTATION_CHARS.length)]!;
    switch (Math.floor(rand() * 4)) {
      case 0: s = s.slice(0, at) + c + s.slice(at + 1); break;
      case 1: s = s.slice(0, at) + c + s.slice(at); break;
      case 2: s = s.slice(0, at) + s.slice(at + 1); break;
      default: s = s.slice(0, at) + ' ' + s.slice(at); break;
    }
  }
  return s;
}

/** Every case: per layout, each transition (v4 and v6) with each hostile COMM, each break, then mutations. */
export function outcomeCases(): Case[] {
  const cases: Case[] = [];
  const rand = rng(13);
  for (const [time, wide] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    const base = (v6: boolean): TcpstatesLineSpec => ({
      ...(time ? { time: '23:59:59' } : {}), wide, skaddr: 'ffff888107827500', pid: 12601, comm: 'python3',
      laddr: v6 ? 'fd00:213::1' : '10.213.0.1', lport: 50762, raddr: v6 ? 'fd00:213::2' : '10.213.0.2', rport: 8443,
      oldState: 'SYN_SENT', newState: 'ESTABLISHED', ms: '0.144',
    });
    const lines: string[] = [tcpstatesHeader(time, wide)];
    const valid: string[] = [];
    for (const v6 of [false, true]) {
      for (const comm of HOSTILE_COMMS) {
        // every transition with a plain COMM; the connect lines and one other with each hostile one
        for (const [oldState, newState] of comm === 'python3' ? STATES : STATES.slice(0, 4).concat([STATES[7]!])) {
          const lport = oldState === 'CLOSE' && newState === 'SYN_SENT' ? 0 : 50762;
          // split at CR/LF as the sources do: a newline in COMM gives two fragments
          const text = renderTcpstates({ ...base(v6), comm, oldState, newState, lport });
          for (const fragment of text.split(/\r?\n/)) {
            lines.push(fragment);
            valid.push(fragment);
          }
        }
      }
      for (const change of BREAKS) {
        for (const [oldState, newState] of [['CLOSE', 'SYN_SENT'], ['SYN_SENT', 'ESTABLISHED'], ['SYN_SENT', 'CLOSE'], ['FIN_WAIT1', 'FIN_WAIT2']]) {
          const spec = { ...base(v6), oldState: oldState!, newState: newState!, ...change };
          if (!time && spec.time !== undefined) continue; // a TIME column in a layout without one is a shape case below
          lines.push(renderTcpstates(spec));
        }
      }
    }
    for (const text of valid.slice(0, 5)) {
      lines.push(text.replace(' -> ', ' => '), text.replace(' -> ', '  -> '), text + ' x', text + '\r', text.slice(0, -1), text.slice(0, 60));
    }
    for (let i = 0; i < 400; i++) lines.push(mutate(valid[Math.floor(rand() * valid.length)]!, rand));
    cases.push({ format: { time, wide }, lines });
  }
  // detection without a header, and other layouts' lines under a header
  const all = cases.flatMap((c) => c.lines.slice(1, 400));
  cases.push({ format: { time: false, wide: false }, lines: all.filter((_, i) => i % 3 === 0) });
  return cases;
}

/** What a fresh LineDecoder('tcpstates') makes of each line of a case: 'skip', 'reason: detail' or the event as JSON. */
export function outcomesOf(lines: readonly string[]): string[] {
  const decoder = new LineDecoder('tcpstates');
  return lines.map((line) => show(decoder.decode(line, OUTCOMES_TIME_MS)));
}

function show(r: DecodeResult): string {
  if (r.kind === 'skip') return 'skip';
  if (r.kind === 'reject') return `${r.reason}: ${r.detail}`;
  const { timeMs: _, tool: __, ...event } = r.event;
  return JSON.stringify(event);
}

if (process.argv[2] === '--write') {
  const outcomes = outcomeCases().map((c) => outcomesOf(c.lines));
  writeFileSync(OUTCOMES_FIXTURE, JSON.stringify(outcomes) + '\n');
  console.log(`wrote ${outcomes.flat().length} outcomes to ${OUTCOMES_FIXTURE}`);
}
