import { test } from 'node:test';
import assert from 'node:assert/strict';
import { release } from 'node:os';
import { join } from 'node:path';
import { collectDoctorReport, decodeCapabilities, formatDoctorReport, parseMemlockLimit, probeTool } from '../../src/sources/doctor.ts';
import { FAKE_TOOLS } from './helpers.ts';

const capTable: [string, string[]][] = [
  ['000001fffeffffff', ['CAP_BPF', 'CAP_PERFMON', 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE']], // this VM: no CAP_SYS_RESOURCE (bit 24)
  ['000001ffffffffff', ['CAP_BPF', 'CAP_PERFMON', 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_SYS_RESOURCE']],
  ['000000c000000000', ['CAP_BPF', 'CAP_PERFMON']], // bits 38 and 39
  ['0000000000200000', ['CAP_SYS_ADMIN']], // bit 21
  ['0000000001080000', ['CAP_SYS_PTRACE', 'CAP_SYS_RESOURCE']], // bits 19 and 24
  ['0000000000000000', []],
];
for (const [hex, want] of capTable) {
  test(`decodeCapabilities ${hex}`, () => assert.deepEqual([...decodeCapabilities(hex)].sort(), want));
}

test('parseMemlockLimit reads the soft limit', () => {
  const limits = 'Limit                     Soft Limit           Hard Limit           Units\nMax locked memory         8388608              8388608              bytes\n';
  assert.equal(parseMemlockLimit(limits), 8388608);
  assert.equal(parseMemlockLimit('Max locked memory         unlimited            unlimited            bytes'), 'unlimited');
  assert.equal(parseMemlockLimit('garbage'), undefined);
});

test('probeTool: a tool that fails to attach, and one that attaches', async () => {
  const fail = await probeTool('stdbuf', join(FAKE_TOOLS, 'tcpconnlat-attach-fail.sh'), 3000);
  assert.equal(fail.attached, false);
  assert.match(fail.detail, /^did not attach \(exit 1: libbpf: failed to add legacy kprobe event/);
  const t0 = Date.now();
  const ok = await probeTool('stdbuf', join(FAKE_TOOLS, 'tcpstates-ok.sh'), 3000);
  assert.deepEqual(ok, { attached: true, detail: 'attached (printed its header)' });
  assert.ok(Date.now() - t0 < 2000, 'stopped right after the header, not at the timeout');
});

test('probeTool gives up after its timeout on a tool that neither attaches nor exits', async () => {
  const t0 = Date.now();
  const r = await probeTool('stdbuf', join(FAKE_TOOLS, 'silent-hang.sh'), 300);
  const ms = Date.now() - t0;
  assert.equal(r.attached, false);
  assert.match(r.detail, /^did not attach within 300 ms \(exit 0\)$/);
  assert.ok(ms >= 290 && ms < 2000, `probe took ${ms} ms`);
});

test('doctor with a tcpconnlat that cannot attach: auto picks tcpstates and says why', async () => {
  const t0 = Date.now();
  const report = await collectDoctorReport({
    tcpconnlatPath: join(FAKE_TOOLS, 'tcpconnlat-attach-fail.sh'),
    tcpstatesPath: join(FAKE_TOOLS, 'tcpstates-ok.sh'),
  });
  const ms = Date.now() - t0;
  assert.equal(report.auto.tool, 'tcpstates');
  assert.match(report.auto.reason, /tcpconnlat did not attach .*kprobe.*; tcpstates attached/);
  const byName = new Map(report.items.map((i) => [i.name, i]));
  assert.equal(byName.get('kernel')!.detail.startsWith(`Linux ${release()}`), true);
  for (const name of ['kernel', 'btf', 'tracefs', 'kprobe PMU', 'capabilities', 'perf_event_paranoid', 'RLIMIT_MEMLOCK', 'stdbuf', 'tcpconnlat', 'tcpstates', 'auto source']) {
    assert.ok(byName.has(name), `report has ${name}`);
  }
  assert.equal(byName.get('tcpconnlat attach (kprobe/fentry)')!.status, 'warn');
  assert.equal(byName.get('tcpstates attach (tracepoint)')!.status, 'ok');
  assert.equal(byName.get('auto source')!.status, 'ok');
  const text = formatDoctorReport(report);
  const lines = text.split('\n');
  assert.equal(lines.length, report.items.length);
  for (const l of lines) assert.match(l, /^(ok  |warn|fail)  \S/);
  assert.ok(ms < 8000, `doctor took ${ms} ms`);
});

test('doctor with missing tools fails those items and names no auto tool', async () => {
  const report = await collectDoctorReport({
    connlatProbePath: '/nonexistent/connlat-probe', tcpconnlatPath: '/nonexistent/tcpconnlat', tcpstatesPath: '/nonexistent/tcpstates',
  });
  assert.equal(report.auto.tool, undefined);
  const byName = new Map(report.items.map((i) => [i.name, i]));
  assert.equal(byName.get('tcpconnlat')!.status, 'fail');
  assert.equal(byName.get('connlat-probe')!.status, 'warn', 'optional: not part of libbpf-tools');
  assert.match(byName.get('tcpstates')!.detail, /not found at \/nonexistent\/tcpstates/);
  assert.equal(byName.get('auto source')!.status, 'fail');
});

test('doctor on the real tools of this machine', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to probe BPF');
  const t0 = Date.now();
  const report = await collectDoctorReport();
  const ms = Date.now() - t0;
  console.log(formatDoctorReport(report));
  console.log(`doctor took ${ms} ms`);
  const connlat = report.items.find((i) => i.name === 'tcpconnlat attach (kprobe/fentry)');
  const ours = report.items.find((i) => i.name === 'connlat-probe attach (tracepoints)');
  if (ours?.status === 'ok') assert.equal(report.auto.tool, 'connlat-probe');
  else if (connlat?.status === 'ok') assert.equal(report.auto.tool, 'tcpconnlat');
  else if (report.auto.tool !== undefined) assert.equal(report.auto.tool, 'tcpstates');
  assert.ok(ms < 5000, 'each probe is bounded at about 3 s and they run in parallel');
});
