import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { displayComm } from '../../src/parse/comm.ts';

const show = (latin1: string): string => displayComm(latin1, 0, latin1.length);
const utf8AsLatin1 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

describe('displayComm', () => {
  it('keeps plain ASCII, trims printf padding only at the end', () => {
    assert.equal(show('kubelet     '), 'kubelet');
    assert.equal(show(' a b  '), ' a b');
    assert.equal(show('            '), '');
  });
  it('decodes UTF-8 bytes', () => {
    assert.equal(show(utf8AsLatin1('naïve-app')), 'naïve-app');
    assert.equal(show(utf8AsLatin1('日本語')), '日本語');
  });
  it('replaces a UTF-8 sequence cut by %-12.12s with U+FFFD', () => {
    assert.equal(show(utf8AsLatin1('abcdefghijké').slice(0, 12)), 'abcdefghijk\ufffd');
  });
  it('replaces C0, DEL and C1 controls so COMM cannot drive a terminal or split a log line', () => {
    assert.equal(show('\x1b[31mred\x07'), '?[31mred?');
    assert.equal(show('a\tb\rc\x7f'), 'a?b?c?');
    assert.equal(show(utf8AsLatin1('\u009b2J')), '?2J'); // C1 CSI encoded as UTF-8
    assert.equal(show('\x9b2J'), '\ufffd2J'); // a lone 0x9b byte is not UTF-8
  });
  it('replaces line separators and bidi overrides', () => {
    assert.equal(show(utf8AsLatin1('a\u2028b\u202ec\u2066')), 'a?b?c?');
  });
});
