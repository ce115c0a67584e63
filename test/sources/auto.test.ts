// AutoSource against real processes: a fake tcpconnlat that fails exactly like the real one on a kernel without
// kprobes, a fake one that attaches, and (as root) the real tools of this machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoSource } from '../../src/sources/auto.ts';
import { FAKE_TOOLS, recorder, waitFor } from './helpers.ts';
import { findProbe } from '../support/probe/probe.ts';

const tmp = await mkdtemp(join(tmpdir(), 'connlat-auto-'));

/** Runs `src` until `done()` holds (or timeoutMs), stops it, and returns what it reported. */
async function runUntil(src: AutoSource, done: (r: ReturnType<typeof recorder>) => boolean, what: string, timeoutMs = 5000) {
  const r = recorder();
  const running = src.run(r);
  await waitFor(() => done(r), timeoutMs, what);
  await src.stop();
  await running;
  return r;
}

test('auto falls back to tcpstates when tcpconnlat cannot attach, and says why exactly once', async () => {
  const src = new AutoSource({
    tcpconnlatPath: join(FAKE_TOOLS, 'tcpconnlat-attach-fail.sh'),
    tcpstatesPath: join(FAKE_TOOLS, 'tcpstates-ok.sh'),
    backoff: { initialMs: 10, maxMs: 50, resetAfterMs: 60_000 },
  });
  assert.equal(src.format(), 'tcpconnlat');
  const r = recorder();
  const done = src.run(r);
  await waitFor(() => r.lines.length === 2 && src.ready(), 5000, 'tcpstates header and line');
  assert.equal(src.format(), 'tcpstates');
  assert.match(src.description, /tcpstates-ok\.sh/);
  assert.equal(r.selected.length, 1);
  assert.equal(r.selected[0]!.tool, 'tcpstates');
  assert.match(r.selected[0]!.reason, /tcpconnlat could not attach its kprobe\/fentry programs .*failed to .*kprobe/);
  assert.match(r.selected[0]!.reason, /using tcpstates/);
  assert.equal(r.restarts.length, 0, 'the failed tcpconnlat is not restarted');
  assert.deepEqual(r.diagnostics, [], 'the fallback reason is the only message, no separate attach diagnostic');
  assert.match(r.lines[0]!.text, /^SKADDR/);
  await src.stop();
  await done;
  assert.equal(r.selected.length, 1);
  assert.equal(src.ready(), false);
});

test('auto falls back on the attach diagnosis alone when tcpconnlat lingers instead of exiting', async () => {
  const src = new AutoSource({
    tcpconnlatPath: join(FAKE_TOOLS, 'tcpconnlat-attach-fail-linger.sh'),
    tcpstatesPath: join(FAKE_TOOLS, 'tcpstates-ok.sh'),
  });
  const r = recorder();
  const t0 = Date.now();
  const done = src.run(r);
  await waitFor(() => r.lines.length === 2, 5000, 'tcpstates output');
  assert.ok(Date.now() - t0 < 3000, `fell back in ${Date.now() - t0} ms`);
  assert.deepEqual(r.selected.map((s) => s.tool), ['tcpstates']);
  assert.match(r.selected[0]!.reason, /failed to auto-attach/);
  assert.equal(r.restarts.length, 0);
  await src.stop();
  await done;
});

test('auto keeps tcpconnlat when it attaches', async () => {
  const src = new AutoSource({
    tcpconnlatPath: join(FAKE_TOOLS, 'crash-after-lines.sh'),
    tcpconnlatArgs: ['2', '0', join(tmp, 'connlat-ok-state'), 'tcpconnlat'],
    tcpstatesPath: join(FAKE_TOOLS, 'tcpstates-ok.sh'),
  });
  const r = await runUntil(src, (r) => r.lines.length === 3 && src.ready(), 'tcpconnlat header and lines', 5000);
  assert.deepEqual(r.selected.map((s) => s.tool), ['tcpconnlat']);
  assert.match(r.selected[0]!.reason, /attached/);
  assert.equal(src.format(), 'tcpconnlat');
  assert.match(r.lines[0]!.text, /^PID +COMM +IP/);
});

test('auto uses tcpstates when there is no tcpconnlat binary', async () => {
  const src = new AutoSource({ tcpconnlatPath: join(tmp, 'missing-tcpconnlat'), tcpstatesPath: join(FAKE_TOOLS, 'tcpstates-ok.sh') });
  const r = await runUntil(src, (r) => r.lines.length === 2, 'tcpstates output', 5000);
  assert.deepEqual(r.selected.map((s) => s.tool), ['tcpstates']);
  assert.match(r.selected[0]!.reason, /tcpconnlat not found at .*missing-tcpconnlat/);
});

test('auto on the real tools of this machine picks one tool, once, and format() follows it', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to load BPF programs');
  const ok = await Promise.all(['/usr/sbin/tcpconnlat', '/usr/sbin/tcpstates'].map((p) => access(p).then(() => true, () => false)));
  if (!ok.every(Boolean)) return t.skip('libbpf-tools (/usr/sbin/tcpconnlat, /usr/sbin/tcpstates) not installed');
  const src = new AutoSource({ tcpconnlatPath: '/usr/sbin/tcpconnlat', tcpstatesPath: '/usr/sbin/tcpstates' });
  const r = recorder();
  const done = src.run(r);
  try {
    await waitFor(() => src.ready(), 15_000, `a real tool to attach (diagnostics: ${r.diagnostics.join(' | ')})`);
  } catch (e) {
    await src.stop();
    await done;
    return t.skip(`BPF cannot run here: ${(e as Error).message}`);
  }
  await src.stop();
  await done;
  assert.equal(r.selected.length, 1);
  assert.equal(src.format(), r.selected[0]!.tool);
  if (r.selected[0]!.tool === 'tcpstates') assert.match(r.selected[0]!.reason, /tcpconnlat/);
  console.log(`auto on this machine: ${r.selected[0]!.tool}: ${r.selected[0]!.reason}`);
});

test('auto prefers connlat-probe when it attaches (the real one)', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to load BPF programs');
  const probe = await findProbe();
  if (probe.skip) return t.skip(probe.skip);
  const src = new AutoSource({
    connlatProbePath: probe.path,
    tcpconnlatPath: join(FAKE_TOOLS, 'tcpconnlat-attach-fail.sh'),
    tcpstatesPath: join(FAKE_TOOLS, 'tcpstates-ok.sh'),
  });
  assert.equal(src.format(), 'connlat-probe');
  const r = await runUntil(src, (r) => r.lines.length >= 1 && src.ready(), 'connlat-probe header', 15_000);
  assert.deepEqual(r.selected.map((s) => s.tool), ['connlat-probe']);
  assert.match(r.selected[0]!.reason, /^connlat-probe attached \(tracepoints/);
  assert.match(r.lines[0]!.text, /^TIME\(s\) +PID +COMM .* # connlat-probe format 1$/);
  assert.deepEqual(r.diagnostics, []);
});

test('auto passes over a connlat-probe that cannot attach, then a tcpconnlat that cannot, and names both', async () => {
  const src = new AutoSource({
    connlatProbePath: join(FAKE_TOOLS, 'connlat-probe-attach-fail.sh'),
    tcpconnlatPath: join(FAKE_TOOLS, 'tcpconnlat-attach-fail.sh'),
    tcpstatesPath: join(FAKE_TOOLS, 'tcpstates-ok.sh'),
    backoff: { initialMs: 10, maxMs: 50, resetAfterMs: 60_000 },
  });
  const r = await runUntil(src, (r) => r.lines.length === 2, 'tcpstates output', 5000);
  assert.deepEqual(r.selected.map((s) => s.tool), ['tcpstates']);
  assert.match(r.selected[0]!.reason,
    /^connlat-probe could not attach its tracepoint programs \(failed to attach BPF program to sock:inet_sk_error_report .*\); tcpconnlat could not attach its kprobe\/fentry programs .*; using tcpstates/);
  assert.equal(r.restarts.length, 0, 'neither failed tool is restarted');
});

test('auto with no connlat-probe installed says so and keeps tcpconnlat when it attaches', async () => {
  const src = new AutoSource({
    connlatProbePath: join(tmp, 'missing-connlat-probe'),
    tcpconnlatPath: join(FAKE_TOOLS, 'crash-after-lines.sh'),
    tcpconnlatArgs: ['2', '0', join(tmp, 'connlat-ok-state-2'), 'tcpconnlat'],
    tcpstatesPath: join(FAKE_TOOLS, 'tcpstates-ok.sh'),
  });
  const r = await runUntil(src, (r) => r.lines.length === 3, 'tcpconnlat header and lines', 5000);
  assert.deepEqual(r.selected.map((s) => s.tool), ['tcpconnlat']);
  assert.match(r.selected[0]!.reason, /^connlat-probe not found at .*missing-connlat-probe; tcpconnlat attached/);
});
