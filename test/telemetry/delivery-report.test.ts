// shutdown() says what it could not deliver, so the CLI can exit with a status that tells the truth (issue 11 item 2),
// and how many slow-connection logs the rate limit dropped (item 9).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createTelemetry } from '../../src/telemetry/index.ts';
import { freePort } from '../support/net.ts';
import { FAILURES, NINE_CONNECTS, options } from './helpers.ts';

test('everything written: nothing undelivered; the rate limit count is reported apart', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'connlat-report-')), 'out.jsonl');
  const t = createTelemetry(options({ exports: [{ kind: 'otlp-json', path: out }], slowLogRatePerSec: 0, slowLogBurst: 2 }));
  for (const e of [...NINE_CONNECTS, ...FAILURES]) t.record(e);
  const report = await t.shutdown();
  assert.equal(report.undelivered, undefined);
  assert.equal(report.logsRateLimited, 3); // 5 connects above 10 ms (4 ok, 1 failed), burst 2
  assert.equal(await t.shutdown(), report, 'idempotent');
  for (const l of readFileSync(out, 'utf8').trim().split('\n')) JSON.parse(l);
});

test('a full disk (/dev/full: ENOSPC): the last metric export and the log records are reported undelivered', async () => {
  const t = createTelemetry(options({ exports: [{ kind: 'otlp-json', path: '/dev/full' }] }));
  for (const e of NINE_CONNECTS) t.record(e);
  const report = await t.shutdown();
  assert.match(report.undelivered ?? '', /^metrics: the last export \(which holds every count\) failed \(.*ENOSPC.*\); 4 slow-connection log records \(export_failed: 4 \[ENOSPC: no space left on device, write\]\)$/);
});

test('the gateway down: the last metric export and the queued log records are reported undelivered', async () => {
  const port = await freePort();
  const t = createTelemetry(options({
    exports: [{ kind: 'otlp', endpoint: `http://127.0.0.1:${port}` }],
    delivery: { retry: { initialMs: 50, maxMs: 100 }, deadline: () => Date.now() + 600 },
  }));
  for (const e of NINE_CONNECTS) t.record(e);
  const report = await t.shutdown();
  assert.match(report.undelivered ?? '', /^metrics: the last export \(which holds every count\) failed \(14 UNAVAILABLE.*\); 4 slow-connection log records \(shutdown: 4 \[not delivered before the shutdown deadline\]\)$/);
});
