import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, DEFAULT_BACKOFF } from '../../src/backoff.ts';

test('defaults: 500 ms initial, 30 s cap, reset after 60 s', () => {
  assert.deepEqual(DEFAULT_BACKOFF, { initialMs: 500, maxMs: 30_000, resetAfterMs: 60_000 });
});

test('ceilings double up to the cap; full jitter stays within [0, ceiling]', () => {
  const b = new Backoff({}, () => 1);
  const delays = Array.from({ length: 10 }, () => b.next(10));
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  const zero = new Backoff({}, () => 0);
  assert.equal(zero.next(10), 0);
  const jitter = new Backoff({ initialMs: 100, maxMs: 1000, resetAfterMs: 1000 });
  for (let i = 0; i < 200; i++) {
    const ceiling = jitter.ceilingMs();
    const d = jitter.next(1);
    assert.ok(d >= 0 && d <= ceiling && ceiling <= 1000, `delay ${d} within [0, ${ceiling}]`);
  }
});

test('a run that lasted resetAfterMs resets the backoff; a shorter one does not', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 10_000, resetAfterMs: 1000 }, () => 1);
  assert.equal(b.next(5), 100);
  assert.equal(b.next(5), 200);
  assert.equal(b.next(999), 400);
  assert.equal(b.next(1000), 100);
  assert.equal(b.next(5), 200);
});
