// The one scrubber of untrusted text (src/scrub.ts): a table of what becomes what.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isUnsafeChar, scrub } from '../src/scrub.ts';

test('scrub replaces every unsafe character and keeps the rest', () => {
  const cases: Array<[string, Parameters<typeof scrub>[1], string]> = [
    ['curl', {}, 'curl'],
    ['a\u001b[31mred', {}, 'a?[31mred'],
    ['line\nbreak\r\t', {}, 'line?break??'],
    ['del\u007f c1\u009b', {}, 'del? c1?'],
    ['sep\u2028par\u2029', {}, 'sep?par?'],
    ['bidi\u202etxt\u2066\u200f', {}, 'bidi?txt??'],
    ['ünïcode 名前', {}, 'ünïcode 名前'],
    ['ünï\u0001', { asciiOnly: true }, '?n??'],
    ['two\nlines', { replacement: ' ' }, 'two lines'],
    ['abcdef', { max: 3 }, 'abc...'],
    ['ab\ncdef', { max: 3 }, 'ab?...'],
    ['abc', { max: 3 }, 'abc'],
  ];
  for (const [input, opts, want] of cases) assert.equal(scrub(input, opts), want, JSON.stringify(input));
});

test('isUnsafeChar: C0, DEL, C1, line separators and bidi controls only', () => {
  const unsafe = [0, 0x0a, 0x1b, 0x1f, 0x7f, 0x80, 0x9b, 0x9f, 0x2028, 0x2029, 0x200e, 0x200f, 0x202a, 0x202e, 0x2066, 0x2069];
  const safe = [0x20, 0x41, 0x7e, 0xa0, 0xe9, 0x200d, 0x2030, 0x2065, 0x206a, 0x540d];
  for (const c of unsafe) assert.equal(isUnsafeChar(c), true, c.toString(16));
  for (const c of safe) assert.equal(isUnsafeChar(c), false, c.toString(16));
});
