// ToolSource against real processes: fake tools in test/fixtures/fake-tools run under the real stdbuf.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ToolSource } from '../../src/sources/tool.ts';
import { FAKE_TOOLS, recorder, waitFor } from './helpers.ts';

const tmp = await mkdtemp(join(tmpdir(), 'connlat-sources-'));

test('a crashing tool is restarted with growing backoff; ready() is false while crash-looping', async () => {
  const src = new ToolSource({
    tool: 'tcpstates',
    path: join(FAKE_TOOLS, 'crash-after-lines.sh'),
    args: ['3', '4', join(tmp, 'crash-state')],
    backoff: { initialMs: 150, maxMs: 10_000, resetAfterMs: 60_000 },
    random: () => 1, // pin the jitter at its ceiling so the gaps are exact
    readyStableMs: 300,
  });
  const r = recorder();
  const samples: { atMs: number; ready: boolean }[] = [];
  const sampler = setInterval(() => samples.push({ atMs: Date.now(), ready: src.ready() }), 5);
  const done = src.run(r);
  try {
    await waitFor(() => r.lines.filter((l) => l.text.startsWith('SKADDR')).length === 5, 10_000, 'the fifth run');
    await waitFor(() => src.ready(), 3000, 'ready after a run stays up');
  } finally {
    clearInterval(sampler);
  }
  await src.stop();
  await done;

  assert.equal(src.restarts, 4);
  assert.equal(r.restarts.length, 4);
  for (const [i, want] of [150, 300, 600, 1200].entries()) {
    assert.match(r.restarts[i]!.desc, new RegExp(`exited with code 1.*restart ${i + 1} in ${want} ms`));
  }
  // Gap = from the restart decision to the next run's header: the backoff delay plus the start of the tool.
  const headers = r.lines.filter((l) => l.text.startsWith('SKADDR'));
  const gaps = r.restarts.map((rs, i) => headers[i + 1]!.atMs - rs.atMs);
  console.log(`measured restart gaps (ms): ${gaps.join(', ')}`);
  for (const [i, want] of [150, 300, 600, 1200].entries()) assert.ok(gaps[i]! >= want, `gap ${i} = ${gaps[i]} >= ${want}`);
  for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i]! > gaps[i - 1]!, `gaps grow: ${gaps.join(', ')}`);
  // Every line of every run arrived, the crashed ones included.
  assert.equal(r.lines.length, 5 * 4);
  for (let run = 1; run <= 5; run++) for (let i = 1; i <= 3; i++) assert.ok(r.lines.some((l) => l.text === `run ${run} line ${i}`));
  // Not ready from the first crash until the fifth run had been up for readyStableMs.
  const firstCrash = r.restarts[0]!.atMs;
  const stableFrom = headers[4]!.atMs + 300;
  const loop = samples.filter((s) => s.atMs >= firstCrash && s.atMs < stableFrom - 5);
  assert.ok(loop.length > 100, `sampled ${loop.length} times while crash-looping`);
  assert.ok(loop.every((s) => !s.ready), 'ready() stayed false while crash-looping');
  assert.equal(src.ready(), false, 'not ready after stop');
});

test('stop() delivers every line printed before SIGINT; SIGTERM is ignored by the tool and not used', async () => {
  const src = new ToolSource({ tool: 'tcpstates', path: join(FAKE_TOOLS, 'sigint-flush.mjs'), stopTimeoutMs: 5000 });
  const r = recorder();
  const done = src.run(r);
  await waitFor(() => r.lines.length > 200, 10_000, 'a few blocks of output');
  await waitFor(() => src.ready(), 5000, 'ready once the run has stayed up readyStableMs');
  const pid = src.pid!;
  process.kill(pid, 'SIGTERM');
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(src.pid, pid, 'still running after SIGTERM');
  const t0 = Date.now();
  await src.stop();
  const stopMs = Date.now() - t0;
  await done;
  const last = r.lines.at(-1)!.text;
  const m = /^END total=(\d+)$/.exec(last);
  assert.ok(m, `last line is the END marker, got ${last}`);
  const total = Number(m[1]);
  const data = r.lines.filter((l) => l.text.startsWith('data '));
  assert.equal(data.length, total, 'count in == count out');
  assert.deepEqual(
    data.map((l) => l.text),
    Array.from({ length: total }, (_, i) => `data ${i + 1}`),
  );
  assert.ok(stopMs < 5000, `stopped by SIGINT in ${stopMs} ms, not by the SIGKILL timeout`);
  assert.equal(r.restarts.length, 0);
  console.log(`stop(): ${total} lines in, ${data.length} out, stop took ${stopMs} ms`);
});

test('stop() SIGKILLs a tool that ignores SIGINT after stopTimeoutMs, keeping lines it printed', async () => {
  const src = new ToolSource({
    tool: 'tcpstates',
    path: join(FAKE_TOOLS, 'sigint-flush.mjs'),
    args: ['--ignore-int'],
    stopTimeoutMs: 300,
  });
  const r = recorder();
  const done = src.run(r);
  await waitFor(() => r.lines.length > 100, 10_000, 'output');
  const t0 = Date.now();
  await src.stop();
  const stopMs = Date.now() - t0;
  await done;
  assert.ok(stopMs >= 290 && stopMs < 3000, `stop took ${stopMs} ms`);
  const data = r.lines.filter((l) => l.text.startsWith('data '));
  // Flushed in blocks of 50: whatever it wrote arrived complete and in order.
  assert.equal(data.length % 50, 0);
  assert.ok(data.length >= 100);
  assert.deepEqual(
    data.map((l) => l.text),
    Array.from({ length: data.length }, (_, i) => `data ${i + 1}`),
  );
  assert.equal(r.restarts.length, 0, 'a stop is not a restart');
});

test('a stderr flood is summarised: lost events summed exactly, each failure kind reported once, noise capped', async () => {
  const src = new ToolSource({
    tool: 'tcpstates',
    path: join(FAKE_TOOLS, 'stderr-flood.mjs'),
    args: ['--lines', '5000', '--crashes', '1', '--state', join(tmp, 'flood-state')],
    backoff: { initialMs: 10, maxMs: 100, resetAfterMs: 60_000 },
    kernelRelease: '5.10.0', // new enough for CAP_BPF, old enough that RLIMIT_MEMLOCK matters: both are reported
  });
  const r = recorder();
  const done = src.run(r);
  await waitFor(() => r.lines.length === 1, 10_000, 'the header of the second run');
  await src.stop();
  await done;
  assert.equal(r.restarts.length, 1, JSON.stringify(r.restarts));
  assert.equal(r.lost, 2 * 500 * 7, 'lost events summed over two runs of 500 lines each');
  assert.equal(r.diagnostics.filter((d) => d.includes('not permitted to load BPF') && d.includes('CAP_BPF and CAP_PERFMON')).length, 1);
  assert.equal(r.diagnostics.filter((d) => d.includes('RLIMIT_MEMLOCK') && d.includes('could not raise')).length, 1);
  assert.ok(r.diagnostics.length <= 13, `${r.diagnostics.length} diagnostics for 10000 stderr lines`);
  console.log(`stderr flood: 10000 stderr lines -> ${r.diagnostics.length} diagnostics, lost=${r.lost}`);
});

test('a missing tool binary rejects run() with one line naming the path', async () => {
  const src = new ToolSource({ tool: 'tcpstates', path: join(tmp, 'no-such-tool') });
  await assert.rejects(src.run(recorder()), (e: Error) => {
    assert.match(e.message, /no executable at .*no-such-tool/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
});

test('a tool that exits cleanly is restarted too', async () => {
  const src = new ToolSource({
    tool: 'tcpstates',
    path: '/bin/true',
    backoff: { initialMs: 20, maxMs: 40, resetAfterMs: 60_000 },
  });
  const r = recorder();
  const done = src.run(r);
  await waitFor(() => r.restarts.length >= 3, 5000, 'three restarts');
  await src.stop();
  await done;
  assert.match(r.restarts[0]!.desc, /tcpstates exited with code 0; restart 1 in \d+ ms/);
  assert.equal(r.lines.length, 0);
  assert.equal(src.ready(), false);
});

test('stop() during a long backoff returns at once and does not start the tool again', async () => {
  const src = new ToolSource({
    tool: 'tcpstates',
    path: join(FAKE_TOOLS, 'crash-after-lines.sh'),
    args: ['1', '1000', join(tmp, 'long-backoff-state')],
    backoff: { initialMs: 10_000, maxMs: 10_000, resetAfterMs: 60_000 },
    random: () => 1,
  });
  const r = recorder();
  const done = src.run(r);
  await waitFor(() => r.restarts.length === 1, 5000, 'the first crash');
  const t0 = Date.now();
  await src.stop();
  await done;
  assert.ok(Date.now() - t0 < 1000, `stop took ${Date.now() - t0} ms`);
  assert.equal(r.lines.length, 2, 'one run only');
});

test('stop() right after run() neither hangs nor leaves the tool running', async () => {
  const src = new ToolSource({ tool: 'tcpstates', path: join(FAKE_TOOLS, 'sigint-flush.mjs'), stopTimeoutMs: 2000 });
  const r = recorder();
  const done = src.run(r);
  await src.stop();
  await done;
  assert.equal(src.pid, undefined);
  assert.equal(src.ready(), false);
  assert.equal(r.restarts.length, 0);
});
