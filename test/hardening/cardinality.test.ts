// Cardinality attack: a fake tcpconnlat prints 100k distinct destinations in 10 s through the real agent (OTLP gRPC
// to the real receiver). The agent does not crash, its peak RSS (VmHWM) stays under RSS_BOUND_MIB, the series stay
// within --cardinality-limit, everything beyond goes to the otel.metric.overflow=true series, and no event is lost.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAgent } from '../support/agent.ts';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { attrs } from '../telemetry/helpers.ts';
import { FAKES, floodTotals, histogramPoints, histogramTotal, memoryMiB, waitUntil } from './helpers.ts';

const DESTS = 100_000;
const LIMIT = 2000;
/** Peak RSS bound for the agent (MiB); measured figures are in RELIABILITY.md. */
const RSS_BOUND_MIB = 350;

test(`cardinality attack: ${DESTS} destinations in 10 s, bounded series and memory, overflow counted`, { timeout: 180_000 }, async (t) => {
  const receiver = await startOtlpReceiver();
  const dir = mkdtempSync(join(tmpdir(), 'connlat-card-'));
  const totals = join(dir, 'totals');
  const agent = startAgent(
    [
      '--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-flood.mjs'),
      '--export', 'otlp', '--otlp-endpoint', receiver.endpoint, '--export-interval-ms', '2000', '--cardinality-limit', String(LIMIT),
      '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off',
    ],
    { FAKE_RATE: String(DESTS / 10), FAKE_SECONDS: '10', FAKE_DESTS: String(DESTS), FAKE_TOTAL_FILE: totals },
  );
  t.after(async () => {
    await agent.stop('SIGTERM', 5000);
    await receiver.close();
  });
  await agent.waitForStderr(/reading tcpconnlat/, 30_000);
  await waitUntil('the fake tool totals', () => floodTotals(totals) !== undefined, 60_000);
  const printed = floodTotals(totals)!;
  assert.equal(printed.events, DESTS);
  await waitUntil(`${DESTS} events exported`, () => histogramTotal(receiver.metrics) === DESTS, 60_000);
  const points = histogramPoints(receiver.metrics);
  const overflow = points.filter((dp) => attrs(dp.attributes)['otel.metric.overflow'] === true);
  const hwm = memoryMiB(agent.child.pid!).hwm;
  assert.equal(agent.child.exitCode, null, agent.stderr());
  assert.equal(await agent.stop('SIGTERM', 20_000), 0, agent.stderr());
  assert.ok(points.length <= LIMIT, `${points.length} series <= ${LIMIT}`);
  assert.equal(overflow.length, 1, 'one overflow series');
  const overflowCount = Number(overflow[0].count);
  assert.equal(overflowCount, DESTS - (points.length - 1), 'every destination beyond the limit is in the overflow series');
  assert.ok(hwm < RSS_BOUND_MIB, `peak RSS ${hwm.toFixed(1)} MiB < ${RSS_BOUND_MIB} MiB`);
  t.diagnostic(`${DESTS} events, ${points.length} series (limit ${LIMIT}), overflow series count ${overflowCount}; peak RSS (VmHWM) ${hwm.toFixed(1)} MiB`);
});
