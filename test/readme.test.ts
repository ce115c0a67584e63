// The README documents every flag: its table is generated from SETTINGS and must match them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { withFlags, withTelemetryTables } from '../scripts/readme-flags.ts';

test('README flag and exit status tables match src/config.ts and src/exit-status.ts (regenerate: npx node scripts/readme-flags.ts)', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  assert.equal(readme, withFlags(readme));
});

test('README names the two commands', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  assert.match(readme, /sudo scripts\/start\.sh/);
  assert.match(readme, /^(sudo )?npm test/m);
});

test('README metric and attribute tables match src/telemetry/schema.ts (regenerate: npx node scripts/readme-flags.ts)', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  assert.equal(readme, withTelemetryTables(readme));
});
