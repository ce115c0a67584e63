// The agent around a supervised tool, with fake tool scripts standing in for tcpconnlat (which cannot attach on this
// kernel): /readyz is false while the tool crash-loops and true once a run stays up, restarts are counted, and a
// SIGTERM to the agent SIGINTs the tool, drains every line it still held, flushes, and exits 0 with nothing lost.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/net.ts';
import { readOtlpJson, startAgent } from '../support/agent.ts';
import { lastMetric } from '../telemetry/helpers.ts';

const FAKES = fileURLToPath(new URL('../fixtures/fake-tools/', import.meta.url));

function histogramCount(metrics: any[]): number {
  const m = lastMetric(metrics, 'tcp.connect.duration');
  return (m?.histogram.dataPoints ?? []).reduce((a: number, dp: any) => a + Number(dp.count), 0);
}
function counterTotal(metrics: any[], name: string): number {
  const m = lastMetric(metrics, name);
  return (m?.sum?.dataPoints ?? []).reduce((a: number, dp: any) => a + Number(dp.asInt ?? dp.asDouble), 0);
}

test('crash loop: not ready while crash-looping, ready when a run stays up, restarts counted', { timeout: 90_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-sup-'));
  const out = join(dir, 'out.jsonl');
  const health = await freePort();
  const agent = startAgent(
    ['--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-crashloop.sh'), '--export', `otlp-json:${out}`, '--health-addr', `127.0.0.1:${health}`, '--view', 'off', '--slow-ms', '10'],
    { FAKE_STATE: join(dir, 'runs'), FAKE_CRASHES: '4' },
  );
  t.after(() => agent.stop('SIGKILL', 1000));
  const samples: Array<[number, number]> = []; // [runs so far, /readyz status]
  const start = Date.now();
  let readySince: number | undefined;
  while (Date.now() - start < 60_000) {
    let status = 0;
    try {
      status = (await fetch(`http://127.0.0.1:${health}/readyz`)).status;
    } catch {
      // not listening yet
    }
    let runs = 0;
    try {
      runs = Number(readFileSync(join(dir, 'runs'), 'utf8'));
    } catch {
      // no run yet
    }
    samples.push([runs, status]);
    if (status === 200) readySince ??= Date.now();
    if (readySince !== undefined && Date.now() - readySince > 1500) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(readySince !== undefined, `never became ready: ${agent.stderr()}`);
  // While the first 4 runs crash-looped, /readyz never said ready.
  assert.ok(samples.filter(([runs]) => runs >= 1 && runs <= 4).every(([, status]) => status === 503), 'not ready while crash-looping');
  assert.ok(samples.some(([runs, status]) => runs >= 1 && runs <= 4 && status === 503));
  assert.equal(await agent.stop('SIGTERM'), 0, agent.stderr());
  const { metrics, logs } = readOtlpJson(out);
  assert.equal(counterTotal(metrics, 'connlat.tool.restarts'), 4);
  assert.equal(histogramCount(metrics), 2 * 5, 'two connects from each of the 5 runs');
  assert.equal(logs.flatMap((r) => r.resourceLogs[0].scopeLogs[0].logRecords).length, 5, 'the 47.80 ms connect of each run');
  assert.match(agent.stderr(), /tcpconnlat exited .*restarting with backoff/);
});

test('SIGTERM: the tool is SIGINTed, every line it held is drained and exported, exit 0', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-sup-'));
  const out = join(dir, 'out.jsonl');
  const totalFile = join(dir, 'total');
  const agent = startAgent(
    ['--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-buffered.mjs'), '--export', `otlp-json:${out}`, '--export-interval-ms', '60000', '--health-addr', 'off', '--view', 'off'],
    { FAKE_TOTAL_FILE: totalFile },
  );
  t.after(() => agent.stop('SIGKILL', 1000));
  await agent.waitForStderr(/reading tcpconnlat/);
  await new Promise((r) => setTimeout(r, 1500));
  const began = Date.now();
  assert.equal(await agent.stop('SIGTERM'), 0, agent.stderr());
  const tookMs = Date.now() - began;
  const printed = Number(readFileSync(totalFile, 'utf8'));
  assert.ok(printed > 100, `the fake printed ${printed} lines`);
  const { metrics } = readOtlpJson(out);
  assert.equal(histogramCount(metrics), printed, 'count in == count out');
  assert.ok(tookMs < 10_000, `stopped in ${tookMs} ms`);
  assert.match(agent.stderr(), new RegExp(`stopped: ${printed + 1} lines read, ${printed} connect events, 0 rejected`));
});
