// A gateway that accepts TCP connections but never answers (a hung Collector, a half-dead load balancer): unlike a
// refused connection, each export now waits for its deadline (OTEL_EXPORTER_OTLP_TIMEOUT) and fails with
// DEADLINE_EXCEEDED. The agent stays up, counts the failures, rebuilds its channel, and once a real gateway is back on
// the same port the cumulative metrics are complete and every queued slow record is delivered.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAgent } from '../support/agent.ts';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { counterBy, FAKES, floodTotals, freePort, histogramTotal, logBodies, sleep, waitUntil } from './helpers.ts';

const HUNG_S = 15;

test(`gateway hung for ${HUNG_S} s (accepts, never answers): DEADLINE_EXCEEDED counted, everything delivered after`, { timeout: 180_000 }, async (t) => {
  const port = await freePort();
  const first = await startOtlpReceiver({ port });
  const dir = mkdtempSync(join(tmpdir(), 'connlat-hung-'));
  const totals = join(dir, 'totals');
  const agent = startAgent(
    [
      '--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-flood.mjs'),
      '--export', 'otlp', '--otlp-endpoint', `http://127.0.0.1:${port}`, '--export-interval-ms', '1000', '--export-retry-max-ms', '1000',
      '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off',
    ],
    { OTEL_EXPORTER_OTLP_TIMEOUT: '1500', FAKE_RATE: '200', FAKE_SLOW_EVERY: '20', FAKE_SECONDS: String(HUNG_S + 8), FAKE_TOTAL_FILE: totals },
  );
  let second: Awaited<ReturnType<typeof startOtlpReceiver>> | undefined;
  t.after(async () => {
    await agent.stop('SIGTERM', 5000);
    await second?.close();
  });
  await agent.waitForStderr(/reading tcpconnlat/, 30_000);
  await waitUntil('first exports', () => first.metrics.length > 0 && first.logs.length > 0, 20_000);
  await first.close();

  const sockets = new Set<Socket>();
  const hung = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => hung.listen(port, '127.0.0.1', () => r()));
  await sleep(HUNG_S * 1000);
  assert.equal(agent.child.exitCode, null, agent.stderr());
  const connectionsWhileHung = sockets.size;
  for (const s of sockets) s.destroy();
  await new Promise((r) => hung.close(r));
  second = await startOtlpReceiver({ port });
  const r = second;

  await waitUntil('the fake tool totals', () => floodTotals(totals) !== undefined, 30_000);
  const printed = floodTotals(totals)!;
  await waitUntil(`${printed.events} connects exported`, () => histogramTotal(r.metrics) === printed.events, 30_000);
  const delivered = () => new Set(logBodies([...first.logs, ...r.logs])).size;
  await waitUntil(`${printed.slow} slow records`, () => delivered() === printed.slow, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}: ${delivered()}\n${agent.stderr()}`);
  });
  await sleep(1500);
  const failures = counterBy(r.metrics, 'connlat.export.failures', 'signal');
  assert.ok(failures.metrics! >= 3 && failures.logs! >= 2, JSON.stringify(failures));
  assert.deepEqual(counterBy(r.metrics, 'connlat.logs.dropped', 'reason'), {});
  assert.match(agent.stderr(), /export failed: 4 DEADLINE_EXCEEDED/);
  assert.equal(await agent.stop('SIGTERM', 20_000), 0, agent.stderr());
  t.diagnostic(`${printed.events} connects and ${printed.slow} slow records, all delivered after ${HUNG_S} s of a hung gateway (${connectionsWhileHung} TCP connections opened to it); failed attempts ${JSON.stringify(failures)}`);
});
