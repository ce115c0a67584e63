// The list splitter against JSON.parse: the same items and the same rest, however the bytes are cut into chunks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ListSplitter, MAX_ITEM_BYTES } from '../../src/enrich/list-stream.ts';

function split(chunks: Buffer[]): { items: unknown[]; rest: unknown } {
  const items: unknown[] = [];
  const s = new ListSplitter((i) => items.push(i));
  for (const c of chunks) s.push(c);
  return { items, rest: s.end() };
}

const tricky = {
  kind: 'PodList',
  apiVersion: 'v1',
  metadata: { resourceVersion: '42', continue: 'eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDJ9' },
  items: [
    { metadata: { name: 'a', namespace: 'items', annotations: { note: 'braces } ] { [ and "quotes" and \\ backslash \\"' } } },
    { metadata: { name: 'ünïcødé-名前-🚀', labels: { items: '[1,2]' } }, spec: { containers: [{ name: 'c', args: ['{', ']', '\\\\'] }] } },
    { metadata: { name: 'empty' }, status: {} },
  ],
};

describe('ListSplitter', () => {
  it('every two-way cut of a tricky list gives JSON.parse\'s items and rest', () => {
    const bytes = Buffer.from(JSON.stringify(tricky));
    const want = { items: tricky.items, rest: { ...tricky, items: [] } };
    for (let cut = 0; cut <= bytes.length; cut++) assert.deepEqual(split([bytes.subarray(0, cut), bytes.subarray(cut)]), want, `cut at ${cut}`);
  });

  it('one byte at a time, with whitespace, keys after items, and "items" as a value elsewhere', () => {
    const text = ` { "kind" : "items" , "items" : [ {"a":[1,{"b":"}"}]} , {"c":"\\u007d\\\\"} ] , "metadata" : {"continue":"x"} } `;
    const got = split([...Buffer.from(text)].map((b) => Buffer.from([b])));
    assert.deepEqual(got, { items: [{ a: [1, { b: '}' }] }, { c: '}\\' }], rest: { kind: 'items', items: [], metadata: { continue: 'x' } } });
  });

  for (const [name, text, items, rest] of [
    ['empty items', '{"items":[],"metadata":{}}', [], { items: [], metadata: {} }],
    ['null items', '{"metadata":{"resourceVersion":"1"},"items":null}', [], { metadata: { resourceVersion: '1' }, items: null }],
    ['no items', '{"metadata":{}}', [], { metadata: {} }],
  ] as const) {
    it(name, () => assert.deepEqual(split([Buffer.from(text)]), { items, rest }));
  }

  it('a truncated response is an error, not a short list', () => {
    const s = new ListSplitter(() => {});
    s.push(Buffer.from('{"items":[{"a":1},{"b":'));
    assert.throws(() => s.end(), /JSON ended early/);
  });

  it('an item past the size bound is refused', () => {
    const s = new ListSplitter(() => {});
    s.push(Buffer.from('{"items":[{"a":"'));
    assert.throws(() => s.push(Buffer.alloc(MAX_ITEM_BYTES + 1, 0x61)), /an item over/);
  });
});
