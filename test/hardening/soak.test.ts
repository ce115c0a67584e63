// Soak: 20k connect events/s from a fake tcpconnlat through the real agent for SOAK_SECONDS (default 300, the real
// 5 minutes), exporting OTLP gRPC to the real receiver. The agent's RSS and CPU are sampled every 5 s and reported;
// no growth: the mean RSS of the last minute is not above the mean of the second minute by more than a margin. Every
// event printed is in the exported histogram, every slow record delivered.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAgent } from '../support/agent.ts';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { cpuSeconds, FAKES, floodTotals, histogramTotal, logBodies, memoryMiB, sleep, waitUntil } from './helpers.ts';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 300);
const RATE = 20_000;
const SAMPLE_MS = 5000;
/** RSS growth allowed from the second minute to the last: max(10%, 20 MiB). */
const marginMiB = (base: number) => Math.max(0.1 * base, 20);

test(`soak: ${RATE} events/s for ${SECONDS} s, RSS flat, every event exported`, { timeout: (SECONDS + 180) * 1000 }, async (t) => {
  const receiver = await startOtlpReceiver();
  const dir = mkdtempSync(join(tmpdir(), 'connlat-soak-'));
  const totals = join(dir, 'totals');
  const agent = startAgent(
    [
      '--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-flood.mjs'),
      '--export', 'otlp', '--otlp-endpoint', receiver.endpoint, '--export-interval-ms', '5000',
      '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off',
    ],
    { FAKE_RATE: String(RATE), FAKE_SECONDS: String(SECONDS), FAKE_DESTS: '500', FAKE_SLOW_EVERY: '1000', FAKE_TOTAL_FILE: totals },
  );
  t.after(async () => {
    await agent.stop('SIGTERM', 5000);
    await receiver.close();
  });
  await agent.waitForStderr(/reading tcpconnlat/, 30_000);
  const pid = agent.child.pid!;
  const began = Date.now();
  const samples: Array<{ s: number; rss: number; cpu: number }> = [];
  let lastCpu = cpuSeconds(pid);
  let lastAt = Date.now();
  while (Date.now() - began < SECONDS * 1000) {
    await sleep(SAMPLE_MS);
    assert.equal(agent.child.exitCode, null, `agent exited: ${agent.stderr()}`);
    const cpu = cpuSeconds(pid);
    const now = Date.now();
    samples.push({ s: Math.round((now - began) / 1000), rss: memoryMiB(pid).rss, cpu: (100 * (cpu - lastCpu)) / ((now - lastAt) / 1000) });
    lastCpu = cpu;
    lastAt = now;
  }
  await waitUntil('the fake tool totals', () => floodTotals(totals) !== undefined, 60_000);
  const printed = floodTotals(totals)!;
  await waitUntil(`${printed.events} events exported`, () => histogramTotal(receiver.metrics) === printed.events, 60_000).catch((err: Error) => {
    throw new Error(`${err.message}: exported ${histogramTotal(receiver.metrics)}\n${agent.stderr().slice(-2000)}`);
  });
  await waitUntil(`${printed.slow} slow records`, () => logBodies(receiver.logs).length >= printed.slow, 30_000);
  assert.equal(new Set(logBodies(receiver.logs)).size, printed.slow);
  const hwm = memoryMiB(pid).hwm;
  assert.equal(await agent.stop('SIGTERM', 20_000), 0, agent.stderr());

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const window = SECONDS >= 180 ? 60 : SECONDS / 3;
  const second = samples.filter((x) => x.s > window && x.s <= 2 * window).map((x) => x.rss);
  const last = samples.filter((x) => x.s > SECONDS - window).map((x) => x.rss);
  const cpu = mean(samples.map((x) => x.cpu));
  t.diagnostic(`printed ${printed.events} events (${(printed.events / SECONDS).toFixed(0)}/s), ${printed.slow} slow; all exported`);
  t.diagnostic(`RSS MiB (t=s:rss): ${samples.map((x) => `${x.s}:${x.rss.toFixed(0)}`).join(' ')}`);
  t.diagnostic(`CPU % of one core (t=s:cpu): ${samples.map((x) => `${x.s}:${x.cpu.toFixed(0)}`).join(' ')}`);
  t.diagnostic(`RSS mean ${window}s-window 2: ${mean(second).toFixed(1)} MiB, last: ${mean(last).toFixed(1)} MiB; peak ${hwm.toFixed(1)} MiB; CPU mean ${cpu.toFixed(1)}% of one core`);
  assert.ok(mean(last) <= mean(second) + marginMiB(mean(second)), `RSS grew: ${mean(second).toFixed(1)} -> ${mean(last).toFixed(1)} MiB`);
});
