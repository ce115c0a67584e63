// A stage's running totals (the enricher's counters) leave as one observable counter, read at each collection.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createTelemetry } from '../../src/telemetry/index.ts';
import { readOtlpJson } from '../support/agent.ts';
import { attrs, lastMetric, options } from './helpers.ts';

test('observeTotals exports the totals as they are at collection, keys in snake_case', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'connlat-totals-')), 'out.jsonl');
  const telemetry = createTelemetry(options({ exports: [{ kind: 'otlp-json', path }] }));
  const totals = { enriched: 0, processGone: 0, watchErrors: 0 };
  telemetry.observeTotals('connlat.enrich.operations', 'test', 'operation', () => totals);
  totals.enriched = 41;
  totals.processGone = 2;
  totals.watchErrors = 1;
  await telemetry.shutdown();
  const m = lastMetric(readOtlpJson(path).metrics, 'connlat.enrich.operations');
  assert.ok(m.sum.isMonotonic);
  const got = Object.fromEntries(m.sum.dataPoints.map((dp: any) => [attrs(dp.attributes).operation, Number(dp.asInt)]));
  assert.deepEqual(got, { enriched: 41, process_gone: 2, watch_errors: 1 });
});

test('observeTotals with enrichment off exports nothing', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'connlat-totals-')), 'out.jsonl');
  const telemetry = createTelemetry(options({ exports: [{ kind: 'otlp-json', path }] }));
  telemetry.observeTotals('connlat.enrich.operations', 'test', 'operation', () => undefined);
  await telemetry.shutdown();
  const m = lastMetric(readOtlpJson(path).metrics, 'connlat.enrich.operations');
  assert.equal(m?.sum?.dataPoints?.length ?? 0, 0);
});
