import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createLineSplitter, MAX_LINE_CHARS, readLines } from '../../src/sources/lines.ts';

function split(chunks: string[], max?: number): string[] {
  const out: string[] = [];
  const s = createLineSplitter((t) => void out.push(t), max);
  for (const c of chunks) s.push(c, 1);
  s.end(1);
  return out;
}

const cases: { name: string; chunks: string[]; want: string[]; max?: number }[] = [
  { name: 'one chunk, two lines', chunks: ['a\nb\n'], want: ['a', 'b'] },
  { name: 'line split across chunks', chunks: ['ab', 'c\nd', 'e\n'], want: ['abc', 'de'] },
  { name: 'unterminated last line delivered at end', chunks: ['a\nlast'], want: ['a', 'last'] },
  { name: 'empty lines kept', chunks: ['\n\nx\n'], want: ['', '', 'x'] },
  { name: 'newline alone in a chunk', chunks: ['abc', '\n', '\n'], want: ['abc', ''] },
  { name: 'nothing', chunks: [], want: [] },
  { name: 'long line in one chunk truncated', chunks: ['0123456789\nok\n'], want: ['01234', 'ok'], max: 5 },
  { name: 'long line across chunks truncated, rest dropped', chunks: ['012', '345', '678', '9\nok'], want: ['01234', 'ok'], max: 5 },
  { name: 'exactly max is not truncated', chunks: ['01234\n'], want: ['01234'], max: 5 },
  { name: 'pending plus chunk over max', chunks: ['0123', '4567\nz\n'], want: ['01234', 'z'], max: 5 },
];

for (const c of cases) {
  test(`line splitter: ${c.name}`, () => {
    assert.deepEqual(split(c.chunks, c.max), c.want);
  });
}

test('readLines decodes latin1 byte-for-byte and stamps lines with the read time', async () => {
  const bytes = Buffer.from([0x41, 0xff, 0xe9, 0x0a, 0x80, 0x42]); // "A\xff\xe9\n\x80B" without a final newline
  const got: { text: string; atMs: number }[] = [];
  const before = Date.now();
  await readLines(Readable.from([bytes.subarray(0, 2), bytes.subarray(2)], { objectMode: false }), (text, atMs) =>
    got.push({ text, atMs }),
  );
  assert.deepEqual(
    got.map((g) => [...g.text].map((ch) => ch.charCodeAt(0))),
    [
      [0x41, 0xff, 0xe9],
      [0x80, 0x42],
    ],
  );
  for (const g of got) assert.ok(g.atMs >= before && g.atMs <= Date.now());
});

test('readLines caps a hostile 1 MiB line without a newline at MAX_LINE_CHARS and keeps going', async () => {
  const hostile = 'x'.repeat(1024 * 1024);
  const got: string[] = [];
  await readLines(Readable.from([Buffer.from(hostile), Buffer.from('\nnext\n')]), (t) => void got.push(t));
  assert.equal(got.length, 2);
  assert.equal(got[0]?.length, MAX_LINE_CHARS);
  assert.equal(got[1], 'next');
});

test('readLines rejects when the stream errors, after delivering the whole lines it read (not the cut one)', async () => {
  const got: string[] = [];
  const stream = new Readable({ read() {} });
  const p = readLines(stream, (t) => void got.push(t));
  stream.push(Buffer.from('one\ntw'));
  setImmediate(() => stream.destroy(new Error('boom')));
  await assert.rejects(p, /boom/);
  assert.deepEqual(got, ['one']);
});

test('readLines: an unterminated last line is a line at end of input, not when the stream is destroyed (a cut)', async () => {
  const ended: string[] = [];
  const a = new Readable({ read() {} });
  const pa = readLines(a, (t) => void ended.push(t));
  a.push(Buffer.from('one\n47.8'));
  a.push(null);
  await pa;
  assert.deepEqual(ended, ['one', '47.8']);

  const cut: string[] = [];
  const b = new Readable({ read() {} });
  const pb = readLines(b, (t) => void cut.push(t));
  b.push(Buffer.from('one\n47'));
  setImmediate(() => b.destroy());
  await pb;
  assert.deepEqual(cut, ['one']);
});
