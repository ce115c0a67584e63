// Gateway outage through the real agent: two agents (one with a log queue large enough for the outage, one with a
// small one) read a fake tcpconnlat printing 1000 connects/s (1 in 50 slow: a log record each) and export OTLP gRPC
// to the real test receiver. Mid-stream the receiver is closed for OUTAGE_SECONDS (default 60) and a new one is
// started on the same port. Both agents stay up with bounded memory; after recovery the cumulative metrics hold
// every connect; the large-queue agent delivers every slow record, the small-queue one delivers exactly its queue's
// worth of the outage and counts the rest as connlat.logs.dropped{reason=queue_full}.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startAgent, type LiveAgent } from '../support/agent.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp/receiver.ts';
import { counterBy, FAKES, floodTotals, forResource, freePort, histogramTotal, logBodies, memoryMiB, sleep, waitUntil } from './helpers.ts';
import { EXIT } from '../../src/exit-status.ts';

const OUTAGE_S = Number(process.env.OUTAGE_SECONDS ?? 60);
const RATE = 1000;
const SLOW_EVERY = 50; // 20 slow connects/s: within the default slow-log rate (100/s)
const BEFORE_S = 8;
const AFTER_S = 6;
/** A quarter of the slow records of the outage: it must overflow (300 for 60 s). */
const SMALL_QUEUE = Math.max(10, Math.round((OUTAGE_S * RATE) / SLOW_EVERY / 4));
/** Peak RSS bound for an agent through the outage (MiB). Measured ~120 MiB; the queue adds < 10 MiB. */
const RSS_BOUND_MIB = 300;

test(`gateway outage of ${OUTAGE_S} s: agents stay up, metrics complete, slow logs queued and delivered or counted`, { timeout: (OUTAGE_S + 120) * 1000 }, async (t) => {
  const port = await freePort();
  let receiver: OtlpReceiver = await startOtlpReceiver({ port });
  const dir = mkdtempSync(join(tmpdir(), 'connlat-outage-'));
  const produceS = BEFORE_S + OUTAGE_S + AFTER_S;
  const agents: Record<'big' | 'small', { agent: LiveAgent; totals: string }> = {} as any;
  for (const [name, queue] of [['big', 20_000], ['small', SMALL_QUEUE]] as const) {
    const totals = join(dir, `${name}.totals`);
    const agent = startAgent(
      [
        '--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-flood.mjs'),
        '--export', 'otlp', '--otlp-endpoint', `http://127.0.0.1:${port}`,
        '--export-interval-ms', '2000', '--export-retry-max-ms', '2000', '--log-queue-size', String(queue),
        '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off',
      ],
      { FAKE_RATE: String(RATE), FAKE_SECONDS: String(produceS), FAKE_SLOW_EVERY: String(SLOW_EVERY), FAKE_DESTS: '20', FAKE_TOTAL_FILE: totals, OTEL_RESOURCE_ATTRIBUTES: `test.agent=${name}` },
    );
    agents[name] = { agent, totals };
  }
  t.after(async () => {
    for (const a of Object.values(agents)) await a.agent.stop('SIGTERM', 5000);
    await receiver.close();
  });
  for (const a of Object.values(agents)) await a.agent.waitForStderr(/reading tcpconnlat/, 30_000);
  await sleep(BEFORE_S * 1000);
  const before = Object.fromEntries(Object.entries(agents).map(([n, a]) => [n, memoryMiB(a.agent.child.pid!)]));

  const first = receiver; // holds what was delivered before the outage (logs are not cumulative)
  await receiver.close();
  const samples: Record<string, number[]> = { big: [], small: [] };
  const outageEnd = Date.now() + OUTAGE_S * 1000;
  while (Date.now() < outageEnd) {
    for (const [n, a] of Object.entries(agents)) {
      assert.equal(a.agent.child.exitCode, null, `${n} agent exited during the outage: ${a.agent.stderr()}`);
      samples[n]!.push(memoryMiB(a.agent.child.pid!).rss);
    }
    await sleep(1000);
  }
  receiver = await startOtlpReceiver({ port });
  const r = receiver;

  // The fakes stop printing at produceS and write their totals; then wait for the last cumulative export to hold them.
  for (const [n, a] of Object.entries(agents)) {
    await waitUntil(`${n} fake tool totals`, () => floodTotals(a.totals) !== undefined, (AFTER_S + 30) * 1000);
    const printed = floodTotals(a.totals)!;
    await waitUntil(
      `${n}: ${printed.events} connects in the exported histogram`,
      () => histogramTotal(forResource(r.metrics, 'test.agent', n)) === printed.events,
      60_000,
    );
  }
  const results: Record<string, { printed: { events: number; slow: number }; delivered: number; duplicates: number; dropped: Record<string, number>; failures: Record<string, number>; hwm: number }> = {};
  for (const [n, a] of Object.entries(agents)) {
    const printed = floodTotals(a.totals)!;
    const mine = (reqs: any[]) => forResource(reqs, 'test.agent', n);
    // the queue drains within a few retries; then the metrics carry the dropped count
    const allLogs = () => [...first.logs, ...r.logs];
    const status = () => ({ delivered: new Set(logBodies(mine(allLogs()))).size, dropped: counterBy(mine(r.metrics), 'connlat.logs.dropped', 'reason'), slow: printed.slow });
    await waitUntil(
      `${n}: every slow record delivered or counted`,
      () => status().delivered + (status().dropped.queue_full ?? 0) >= printed.slow,
      60_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(status())}\n${a.agent.stderr().slice(-3000)}`);
    });
    await sleep(2500); // one more export interval: nothing further may arrive
    const bodies = logBodies(mine(allLogs()));
    results[n] = {
      printed,
      delivered: new Set(bodies).size,
      duplicates: bodies.length - new Set(bodies).size,
      dropped: counterBy(mine(r.metrics), 'connlat.logs.dropped', 'reason'),
      failures: counterBy(mine(r.metrics), 'connlat.export.failures', 'signal'),
      hwm: memoryMiB(a.agent.child.pid!).hwm,
    };
    // OTLP is at-least-once: a batch the gateway took just as it went down may be sent again; it is reported, and
    // every assertion below counts distinct records.
    assert.ok(results[n]!.failures.logs! > 0 && results[n]!.failures.metrics! > 0, `${n}: failed attempts counted: ${JSON.stringify(results[n]!.failures)}`);
    assert.ok(results[n]!.hwm < RSS_BOUND_MIB, `${n}: peak RSS ${results[n]!.hwm.toFixed(1)} MiB < ${RSS_BOUND_MIB} MiB`);
  }
  const big = results.big!;
  const small = results.small!;
  assert.equal(big.delivered, big.printed.slow, 'queue above the outage: every slow record delivered');
  assert.deepEqual(big.dropped, {}, 'nothing dropped');
  assert.ok((small.dropped.queue_full ?? 0) > 0, 'the small queue overflowed');
  assert.equal(small.delivered + small.dropped.queue_full!, small.printed.slow, 'delivered + counted as dropped = printed');
  assert.deepEqual(Object.keys(small.dropped), ['queue_full']);

  for (const [n, a] of Object.entries(agents)) {
    // the small queue lost records: its exit status says so (issue 11: an exit status that tells the truth)
    const want = n === 'small' ? EXIT.undelivered.code : EXIT.ok.code;
    assert.equal(await a.agent.stop('SIGTERM', 20_000), want, a.agent.stderr());
    assert.match(a.agent.stderr(), /metrics export failed: 14 UNAVAILABLE/);
  }
  assert.match(agents.small.agent.stderr(), /slow-connection log records dropped \(queue_full\)/);
  assert.match(agents.small.agent.stderr(), /ERROR +not delivered: \d+ slow-connection log records \(queue_full: \d+/);
  assert.doesNotMatch(agents.big.agent.stderr(), /not delivered:/);
  const fig = (n: string) => {
    const s = samples[n]!;
    return `${n}: printed ${results[n]!.printed.events} connects / ${results[n]!.printed.slow} slow, delivered ${results[n]!.delivered} slow (${results[n]!.duplicates} sent twice), dropped ${JSON.stringify(results[n]!.dropped)}, failed attempts ${JSON.stringify(results[n]!.failures)}, RSS before ${before[n]!.rss.toFixed(1)} MiB, during outage min ${Math.min(...s).toFixed(1)} max ${Math.max(...s).toFixed(1)} MiB, peak (VmHWM) ${results[n]!.hwm.toFixed(1)} MiB`;
  };
  t.diagnostic(fig('big'));
  t.diagnostic(fig('small'));
});
