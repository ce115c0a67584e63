import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  classifyStderrLine,
  capabilityFinding,
  diagnosticFor,
  MAX_OTHER_LINES,
  StderrDiagnoser,
  type StderrKind,
} from '../../src/sources/stderr.ts';

// Real lines: libbpf-tools (tcpconnlat.c, tcpstates.c, trace_helpers.c), libbpf.c, and what /usr/sbin/tcpconnlat and
// /usr/sbin/tcpstates printed on this machine (no kprobes; tracefs unmounted in a private mount namespace).
const table: [string, StderrKind, number?][] = [
  ['lost 7 events on CPU #1', 'lost', 7],
  ['lost 18446744073709551 events on CPU #12', 'lost', 18446744073709551],
  // connlat-probe (bpf-tools/connlat-probe/connlat-probe.c)
  ['lost 3 events on CPU #1 (ring buffer full)', 'lost', 3],
  ['lost 1 events on CPU #0 (connect start not seen)', 'lost', 1],
  ['lost 2 events (the kernel skipped a BPF program re-entered on its CPU)', 'lost', 2],
  ['lost 2 eventsX', 'other'],
  ["libbpf: failed to add legacy kprobe event for 'tcp_v4_connect+0x0': No such file or directory", 'attach'],
  ["libbpf: prog 'tcp_v4_connect': failed to create kprobe 'tcp_v4_connect+0x0' perf event: No such file or directory", 'attach'],
  ["libbpf: prog 'tcp_v4_connect': failed to auto-attach: -2", 'attach'],
  ["libbpf: prog 'fentry_tcp_v4_connect': failed to attach: ERROR: strerror_r(-524)=22", 'attach'],
  ['failed to attach BPF programs: -2', 'attach'],
  ["libbpf: failed to determine tracepoint 'sock/inet_sock_set_state' perf event ID: No such file or directory", 'tracefs'],
  ["libbpf: prog 'handle_set_state': failed to create tracepoint 'sock/inet_sock_set_state' perf event: No such file or directory", 'tracefs'],
  ["libbpf: Error in bpf_object__probe_loading():Operation not permitted(1). Couldn't load trivial BPF program. Make sure your kernel supports BPF (CONFIG_BPF_SYSCALL=y) and/or that RLIMIT_MEMLOCK is set to big enough value.", 'permission'],
  ['libbpf: map \'events\': failed to create: Operation not permitted(-1)', 'permission'],
  ['failed to load BPF object: -1', 'permission'],
  ["libbpf: failed to load object 'tcpstates_bpf'", 'load'],
  ["libbpf: failed to load BPF skeleton 'tcpstates_bpf': -1", 'load'],
  ['failed to open BPF object', 'load'],
  ['libbpf: Failed to bump RLIMIT_MEMLOCK (err = -1), you might need to do it explicitly!', 'memlock'],
  ['failed to set temporary RLIMIT_MEMLOCK: operation not permitted', 'memlock'],
  ['failed to increase rlimit: -1', 'memlock'],
  ['failed to fetch necessary BTF for CO-RE: No such file or directory', 'btf'],
  ['libbpf: failed to find valid kernel BTF', 'btf'],
  ["stdbuf: failed to run command '/nope/tcpstates': No such file or directory", 'missing'],
  ['something else entirely', 'other'],
  ['', 'other'],
];

for (const [line, kind, lost] of table) {
  test(`classify: ${kind}: ${line.slice(0, 70)}`, () => {
    const c = classifyStderrLine(line);
    assert.equal(c.kind, kind);
    if (lost !== undefined) assert.equal(c.lost, lost);
  });
}

test('a permission failure says what the process lacks, or that it lacks nothing (seccomp or an LSM refuses)', () => {
  const all = 'ffffffffff'; // every capability (root)
  const bpfPerfmon = 'c000000000';
  const perfmonOnly = '4000000000';
  assert.equal(capabilityFinding('6.18.0', perfmonOnly), 'this process lacks CAP_BPF');
  assert.equal(capabilityFinding('6.18.0', '0'), 'this process lacks CAP_BPF and CAP_PERFMON');
  assert.match(capabilityFinding('6.18.0', bpfPerfmon), /^this process holds CAP_BPF and CAP_PERFMON, so its seccomp profile \(or an LSM\) refuses/);
  assert.match(capabilityFinding('6.18.0', all), /^this process holds CAP_SYS_ADMIN, so its seccomp profile/);
  assert.equal(capabilityFinding('5.4.0', bpfPerfmon), 'this process lacks CAP_SYS_ADMIN', 'before 5.8 only CAP_SYS_ADMIN allows bpf()');
  const line = diagnosticFor('permission', 'tcpstates', '6.18.0', 'libbpf: ...', perfmonOnly)!;
  assert.match(line, /needs CAP_BPF and CAP_PERFMON \(or root\); in Kubernetes add them to securityContext\.capabilities\.add or run privileged; this process lacks CAP_BPF$/);
  assert.doesNotMatch(diagnosticFor('permission', 'tcpstates', '6.18.0')!, /this process/, 'no finding without the CapEff');
});

test('capability advice depends on the kernel version', () => {
  const modern = diagnosticFor('permission', 'tcpstates', '6.18.44-fc')!;
  assert.match(modern, /CAP_BPF and CAP_PERFMON/);
  assert.match(modern, /6\.18\.44-fc/);
  const old = diagnosticFor('permission', 'tcpstates', '5.4.0-150-generic')!;
  assert.match(old, /CAP_SYS_ADMIN/);
  assert.doesNotMatch(old, /CAP_BPF/);
  assert.match(diagnosticFor('memlock', 'tcpconnlat', '5.10.0')!, /older than 5\.11.*CAP_SYS_RESOURCE/);
  assert.match(diagnosticFor('memlock', 'tcpconnlat', '6.1.0')!, /CAP_SYS_RESOURCE/);
  assert.match(diagnosticFor('attach', 'tcpconnlat', '6.1.0')!, /falls back to tcpstates/);
  assert.match(diagnosticFor('tracefs', 'tcpstates', '6.1.0')!, /mount -t tracefs nodev \/sys\/kernel\/tracing/);
  assert.equal(diagnosticFor('other', 'tcpstates', '6.1.0'), undefined);
  assert.equal(diagnosticFor('lost', 'tcpstates', '6.1.0'), undefined);
});

test('diagnoser: each failure kind once per source across runs, lost events summed, unknown lines capped', () => {
  const diags: string[] = [];
  let lost = 0;
  const d = new StderrDiagnoser('tcpstates', '6.18.0', { diagnostic: (m) => void diags.push(m), lostEvents: (n) => void (lost += n) });
  for (let run = 0; run < 3; run++) {
    d.beginRun();
    for (let i = 0; i < 1000; i++) {
      d.handle('lost 3 events on CPU #0');
      d.handle("libbpf: Error in bpf_object__probe_loading():Operation not permitted(1). Couldn't load trivial BPF program.");
      d.handle(`noise ${i}\x1b[2J`);
    }
    d.endOfStartup();
  }
  assert.equal(lost, 9000);
  assert.equal(d.lostTotal, 9000);
  assert.equal(diags.filter((m) => m.includes('CAP_BPF')).length, 1);
  const noise = diags.filter((m) => m.includes('stderr: noise'));
  assert.equal(noise.length, MAX_OTHER_LINES);
  assert.ok(noise.every((m) => !m.includes('\x1b')), 'control characters are replaced');
  assert.equal(diags.filter((m) => m.includes('suppressed')).length, 1);
  assert.equal(diags.length, 1 + MAX_OTHER_LINES + 1);
});

test('diagnoser: an attach failure caused by missing tracefs is not reported as an attach failure', () => {
  const diags: string[] = [];
  const d = new StderrDiagnoser('tcpstates', '6.18.0', { diagnostic: (m) => void diags.push(m), lostEvents: () => {} });
  d.beginRun();
  d.handle("libbpf: failed to determine tracepoint 'sock/inet_sock_set_state' perf event ID: No such file or directory");
  d.handle("libbpf: prog 'handle_set_state': failed to auto-attach: -2");
  d.endOfStartup();
  assert.deepEqual([...d.runKinds].sort(), ['attach', 'tracefs']);
  assert.equal(diags.length, 1);
  assert.match(diags[0]!, /tracefs/);
});

test('diagnoser: silenced kinds are not reported', () => {
  const diags: string[] = [];
  const d = new StderrDiagnoser('tcpconnlat', '6.18.0', { diagnostic: (m) => void diags.push(m), lostEvents: () => {} });
  d.silence('attach');
  d.beginRun();
  d.handle("libbpf: prog 'tcp_v4_connect': failed to auto-attach: -2");
  d.endOfStartup();
  assert.deepEqual(diags, []);
  assert.equal(d.runFirstLine.get('attach'), "libbpf: prog 'tcp_v4_connect': failed to auto-attach: -2");
});

// What the real /usr/sbin/tcpstates printed here when run as nobody (no capabilities).
const UNPRIVILEGED = [
  'libbpf: Failed to bump RLIMIT_MEMLOCK (err = -1), you might need to do it explicitly!',
  "libbpf: Error in bpf_object__probe_loading():Operation not permitted(1). Couldn't load trivial BPF program. Make sure your kernel supports BPF (CONFIG_BPF_SYSCALL=y) and/or that RLIMIT_MEMLOCK is set to big enough value.",
  "libbpf: failed to load object 'tcpstates_bpf'",
  "libbpf: failed to load BPF skeleton 'tcpstates_bpf': -1",
  'failed to load BPF object: -1',
];

test('diagnoser: an unprivileged start reports the missing capabilities, not its consequences', () => {
  for (const [release, wantMemlock] of [['6.18.0', false], ['5.10.0', true]] as const) {
    const diags: string[] = [];
    const d = new StderrDiagnoser('tcpstates', release, { diagnostic: (m) => void diags.push(m), lostEvents: () => {} });
    for (let run = 0; run < 5; run++) {
      d.beginRun();
      for (const line of UNPRIVILEGED) d.handle(line);
      d.endOfStartup();
      assert.equal(d.primaryCause()?.[0], 'permission');
    }
    assert.equal(diags.length, wantMemlock ? 2 : 1, diags.join(' | '));
    assert.match(diags[0]!, /not permitted to load BPF programs/);
    if (wantMemlock) assert.match(diags[1]!, /older than 5\.11.*CAP_SYS_RESOURCE/);
  }
});

test('diagnoser: a failure after the header is reported at once', () => {
  const diags: string[] = [];
  const d = new StderrDiagnoser('tcpstates', '6.18.0', { diagnostic: (m) => void diags.push(m), lostEvents: () => {} });
  d.beginRun();
  d.endOfStartup();
  d.handle("libbpf: failed to determine tracepoint 'sock/inet_sock_set_state' perf event ID: No such file or directory");
  assert.equal(diags.length, 1);
});

test('diagnoser: a load failure without a known cause is reported once, pointing at the doctor', () => {
  const diags: string[] = [];
  const d = new StderrDiagnoser('tcpstates', '6.18.0', { diagnostic: (m) => void diags.push(m), lostEvents: () => {} });
  for (let run = 0; run < 3; run++) {
    d.beginRun();
    d.handle("libbpf: failed to load object 'tcpstates_bpf'");
    d.endOfStartup();
  }
  assert.equal(diags.length, 1);
  assert.match(diags[0]!, /connlat doctor/);
});
