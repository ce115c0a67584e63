import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ipVersionOf } from '../../src/parse/ip.ts';
import { ntop6 } from './render.ts';

describe('ipVersionOf', () => {
  const cases: [string, 0 | 4 | 6][] = [
    ['10.0.2.15', 4], ['0.0.0.0', 4], ['255.255.255.255', 4], ['169.254.25.10', 4],
    ['256.1.1.1', 0], ['1.2.3', 0], ['1.2.3.4.5', 0], ['01.2.3.4', 0], ['1.2.3.4 ', 0], ['1..3.4', 0], ['', 0],
    ['1.2.3.-4', 0], ['1.2.3.4a', 0], ['a.b.c.d', 0],
    ['::', 6], ['::1', 6], ['fd00:213::1', 6], ['::ffff:127.0.0.1', 6], ['::1.2.3.4', 6], ['1:2:3:4:5:6:7:8', 6],
    ['2606:4700::6810:84e5', 6], ['1:0:0:2::3', 6], ['fe80::1', 6], ['1:2:3:4:5:6:1.2.3.4', 6], ['ABCD::1', 6],
    [':::', 0], ['1:::2', 0], ['1::2::3', 0], [':1', 0], ['1:', 0], ['1:2:3:4:5:6:7', 0], ['1:2:3:4:5:6:7:8:9', 0],
    ['1:2:3:4:5:6:7::8', 0], ['12345::1', 0], ['fe80::1%eth0', 0], ['::ffff:256.0.0.1', 0], ['::1.2.3', 0],
    ['g::1', 0], ['1:2:3:4:5:6:7:1.2.3.4', 0], ['::1.2.3.4:5', 0],
  ];
  for (const [text, version] of cases) {
    it(`${JSON.stringify(text)} -> ${version}`, () => assert.equal(ipVersionOf(text), version));
  }

  it('accepts every address inet_ntop prints', () => {
    const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
    const word = fc.oneof(fc.constant(0), fc.constant(0xffff), fc.nat(0xffff));
    const v6 = fc.array(word, { minLength: 8, maxLength: 8 }).map(ntop6);
    fc.assert(fc.property(v4, (a) => ipVersionOf(a) === 4), { numRuns: 2000 });
    fc.assert(fc.property(v6, (a) => ipVersionOf(a) === 6), { numRuns: 5000 });
  });

  it('accepts nothing node:net isIP rejects, and agrees with it on the version', () => {
    const alphabet = fc.constantFrom(...'0123456789abcdefABCDEF:.%g '.split(''));
    const text = fc.oneof(fc.string({ unit: alphabet, maxLength: 45 }), fc.string({ maxLength: 20 }));
    fc.assert(fc.property(text, (s) => {
      const v = ipVersionOf(s);
      return v === 0 || isIP(s) === v;
    }), { numRuns: 20000 });
  });
});
