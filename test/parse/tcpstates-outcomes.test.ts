// What is accepted, skipped and rejected (with which reason and detail) stays exactly what it was before the in-place
// validation of non-connect transitions: the outcomes in test/fixtures/tcpstates-outcomes.json were written by the
// parser that sliced and decoded every field of every line (see tcpstates-outcomes.ts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { outcomeCases, outcomesOf, OUTCOMES_FIXTURE } from './tcpstates-outcomes.ts';

const pinned = JSON.parse(readFileSync(OUTCOMES_FIXTURE, 'utf8')) as string[][];
const cases = outcomeCases();

describe('tcpstates: outcomes identical to the parser that decoded every field', () => {
  it('the fixture covers every case, with events, skips and every reason a tcpstates line can get', () => {
    assert.equal(pinned.length, cases.length);
    const kinds = new Set(pinned.flat().map((r) => (r.startsWith('{') ? 'event' : r.split(':')[0])));
    for (const k of ['event', 'skip', 'shape', 'time', 'skaddr', 'pid', 'owner', 'ip_version', 'ip', 'port', 'state', 'latency']) {
      assert.ok(kinds.has(k), `no ${k} outcome in the fixture`);
    }
  });
  for (const [i, c] of cases.entries()) {
    it(`${c.format.time ? '-T ' : ''}${c.format.wide ? '-w ' : ''}${i === cases.length - 1 ? 'mixed, no header' : 'layout'}: ${c.lines.length} lines`, () => {
      const got = outcomesOf(c.lines);
      const want = pinned[i]!;
      assert.equal(got.length, want.length);
      for (let n = 0; n < got.length; n++) assert.equal(got[n], want[n], `line ${n}: ${JSON.stringify(c.lines[n])}`);
    });
  }
});
