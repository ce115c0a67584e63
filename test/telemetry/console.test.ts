// The console target: the SDK console exporters print the histogram and the slow log record to stdout.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

describe('telemetry: console target', () => {
  it('prints metrics and slow-connection logs to stdout', () => {
    const script = `
      import { createTelemetry } from ${JSON.stringify(fileURLToPath(new URL('../../src/telemetry/index.ts', import.meta.url)))};
      import { NINE_CONNECTS, options } from ${JSON.stringify(fileURLToPath(new URL('./helpers.ts', import.meta.url)))};
      const t = createTelemetry(options({ exports: [{ kind: 'console' }] }));
      for (const e of NINE_CONNECTS) t.record(e);
      await t.shutdown();
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(out, /tcp\.connect\.duration/);
    assert.match(out, /curl\[21168\] 10\.0\.2\.15 -> 76\.76\.21\.21:443 connect took 47\.80 ms/);
    assert.match(out, /tcp\.connect\.slow/);
  });
});
