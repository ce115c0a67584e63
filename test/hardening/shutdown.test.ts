// Shutdown with data in flight, over OTLP gRPC to the real receiver. SIGTERM: the tool is SIGINTed and drained, the
// last metric export and every queued slow record reach the gateway (count in = count out). With the gateway down,
// the agent still exits within --shutdown-timeout-ms and says exactly how many slow records it could not deliver.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAgent } from '../support/agent.ts';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { FAKES, floodTotals, histogramTotal, logBodies, sleep, waitUntil } from './helpers.ts';
import { EXIT } from '../../src/exit-status.ts';

test('SIGTERM with lines in flight: every connect and every slow record reaches the OTLP gateway', { timeout: 90_000 }, async (t) => {
  const receiver = await startOtlpReceiver();
  const dir = mkdtempSync(join(tmpdir(), 'connlat-shutdown-'));
  const totalFile = join(dir, 'total');
  const agent = startAgent(
    [
      '--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-buffered.mjs'),
      '--export', 'otlp', '--otlp-endpoint', receiver.endpoint, '--export-interval-ms', '60000',
      '--slow-ms', '5', '--slow-log-rate', '100000', '--slow-log-burst', '100000',
      '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off',
    ],
    { FAKE_TOTAL_FILE: totalFile },
  );
  t.after(async () => {
    await agent.stop('SIGTERM', 5000);
    await receiver.close();
  });
  await agent.waitForStderr(/reading tcpconnlat/, 30_000);
  await sleep(2000);
  assert.equal(await agent.stop('SIGTERM', 20_000), 0, agent.stderr());
  const printed = Number(readFileSync(totalFile, 'utf8'));
  // the fake's latency of line i is (i % 97) / 10 ms: slow (> 5 ms) when i % 97 >= 51
  let slow = 0;
  for (let i = 1; i <= printed; i++) if (i % 97 >= 51) slow++;
  assert.ok(printed > 500, `the fake printed ${printed} lines`);
  assert.equal(histogramTotal(receiver.metrics), printed, 'count in == count out (metrics)');
  const bodies = logBodies(receiver.logs);
  assert.equal(bodies.length, slow, 'count in == count out (slow-connection logs)');
  t.diagnostic(`printed ${printed} lines (${slow} slow); received ${histogramTotal(receiver.metrics)} in the histogram and ${bodies.length} log records`);
});

test('SIGTERM with the gateway down: exits within the shutdown timeout and counts the undelivered slow records', { timeout: 90_000 }, async (t) => {
  const receiver = await startOtlpReceiver();
  const dir = mkdtempSync(join(tmpdir(), 'connlat-shutdown-'));
  const totals = join(dir, 'totals');
  const timeoutMs = 4000;
  const agent = startAgent(
    [
      '--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-flood.mjs'),
      '--export', 'otlp', '--otlp-endpoint', receiver.endpoint, '--export-interval-ms', '1000',
      '--shutdown-timeout-ms', String(timeoutMs), '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off',
    ],
    { FAKE_RATE: '500', FAKE_SLOW_EVERY: '10', FAKE_TOTAL_FILE: totals },
  );
  t.after(async () => {
    await agent.stop('SIGTERM', 5000);
  });
  await agent.waitForStderr(/reading tcpconnlat/, 30_000);
  await waitUntil('some slow records delivered', () => logBodies(receiver.logs).length > 20, 20_000);
  await receiver.close();
  const deliveredBefore = logBodies(receiver.logs).length;
  await sleep(3000); // ~150 slow records queue up
  const began = Date.now();
  const code = await agent.stop('SIGTERM', 20_000);
  const took = Date.now() - began;
  assert.equal(code, EXIT.undelivered.code, agent.stderr());
  assert.match(agent.stderr(), /ERROR +not delivered: .*\d+ slow-connection log records \(shutdown: \d+/);
  assert.ok(took < timeoutMs + 1500, `stopped in ${took} ms (shutdown timeout ${timeoutMs} ms)`);
  const printed = floodTotals(totals)!;
  const m = /slow-connection log records dropped \(shutdown\): (\d+), not delivered before the shutdown deadline/.exec(agent.stderr());
  assert.ok(m, agent.stderr());
  assert.equal(deliveredBefore + Number(m[1]), printed.slow, 'delivered before the outage + counted at shutdown = printed');
  t.diagnostic(`printed ${printed.slow} slow records; ${deliveredBefore} delivered before the gateway went down, ${m[1]} counted as dropped at shutdown; exit ${code} after ${took} ms (timeout ${timeoutMs} ms)`);
});
