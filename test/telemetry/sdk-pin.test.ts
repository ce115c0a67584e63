// The pre-aggregation (src/telemetry/aggregation/) builds the SDK's MetricData itself and relies on SDK internals
// (MetricReader.collect ignoring a producer's resource, the InstrumentDescriptor fields): @opentelemetry/sdk-metrics
// is pinned to an exact version, and aggregate.test.ts compares our output with that version's own aggregation.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

test('@opentelemetry/sdk-metrics is pinned to an exact version, and that version is installed', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
  const pinned = pkg.dependencies['@opentelemetry/sdk-metrics']!;
  assert.match(pinned, /^\d+\.\d+\.\d+$/, `exact version, got ${pinned}`);
  const manifest = new URL('../../node_modules/@opentelemetry/sdk-metrics/package.json', import.meta.url);
  const installed = (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
  assert.equal(installed, pinned);
});
