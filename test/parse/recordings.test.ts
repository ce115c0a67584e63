// Checks the numbers test/fixtures/recordings/README.md states for each recording, which replay tests rely on.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { LineDecoder } from '../../src/parse/decoder.ts';

const dir = new URL('../fixtures/recordings/', import.meta.url);
const readme = readFileSync(new URL('README.md', dir), 'utf8');
const rows = readme.split('\n').filter((l) => /^\| [A-Za-z-]+\.txt \|/.test(l))
  .map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));

describe('recordings match their README numbers', () => {
  it('lists all four recordings', () => {
    assert.deepEqual(rows.map((r) => r[0]),
      ['tcpconnlat-blog.txt', 'tcpconnlat-t-L.txt', 'tcpstates-T.txt', 'tcpstates-w.txt']);
  });
  for (const row of rows) {
    const [file, tool, options, ...numbers] = row as [string, string, string, ...string[]];
    it(file, () => {
      const lines = readFileSync(new URL(file, dir), 'latin1').split('\n');
      assert.equal(lines.pop(), '', 'ends with a newline');
      const d = new LineDecoder('detect');
      const n = { lines: lines.length, events: 0, failed: 0, rejected: 0, skipped: 0, sum: 0, okSum: 0, over10: 0,
        okOver10: 0, over100: 0, okOver100: 0 };
      for (const line of lines) {
        const r = d.decode(line, 0);
        if (r.kind === 'skip') n.skipped++;
        else if (r.kind === 'reject') n.rejected++;
        else {
          const { latencyMs: ms, failed } = r.event;
          assert.notEqual(ms, 10);
          assert.notEqual(ms, 100);
          n.events++;
          n.sum += ms;
          if (ms > 10) n.over10++;
          if (ms > 100) n.over100++;
          if (failed) n.failed++;
          else {
            n.okSum += ms;
            if (ms > 10) n.okOver10++;
            if (ms > 100) n.okOver100++;
          }
        }
      }
      assert.equal(d.tool, tool);
      const flags = Object.entries(d.options ?? {}).filter(([, on]) => on)
        .map(([k]) => ({ time: tool === 'tcpconnlat' ? '-t' : '-T', lport: '-L', wide: '-w' })[k]).join(' ');
      assert.equal(flags, options);
      const [lines_, events, failed, rejected, skipped, sum, okSum, over10, okOver10, over100, okOver100] = numbers.map(Number);
      assert.deepEqual(
        { ...n, sum: Math.round(n.sum * 1000) / 1000, okSum: Math.round(n.okSum * 1000) / 1000 },
        { lines: lines_, events, failed, rejected, skipped, sum, okSum, over10, okOver10, over100, okOver100 },
      );
    });
  }
});
