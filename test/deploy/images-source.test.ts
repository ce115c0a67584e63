// The tools image built from source (bpf-tools/Dockerfile.source), as scripts/build-images.sh built it with podman:
// tcpconnlat and tcpstates compiled from the pinned bcc v0.26.0 source (the Go module proxy's zip of the tag, SHA-256
// checked) against Debian's libbpf and bpftool, then copied into the runtime stage. Its tcpstates then runs in a
// container with only CAP_BPF+CAP_PERFMON, and what it prints must decode into the connects the test made; which
// seccomp profile lets it load is measured too (podman's default refuses, see deploy/README.md).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LineDecoder } from '../../src/parse/decoder.ts';
import { waitFor } from '../sources/helpers.ts';
import { connectTimes } from '../support/net.ts';
import { bpfSeccompProfile, builtImages, existingPaths, imageConfig, loadImage, podman, spawnPodman } from './support/podman.ts';

const images = await builtImages();

test('bpf-tools/Dockerfile.source (built by podman): tcpconnlat and tcpstates from the pinned bcc source; tcpstates runs', { timeout: 10 * 60_000 }, async (t) => {
  const archives = images.archives;
  if (!archives) return t.skip(images.skip);
  const { ref, id } = await loadImage(archives['tools-source']);
  assert.equal(ref, 'localhost/connlat/libbpf-tools:0.26.0-source');
  const config = await imageConfig(id);
  assert.deepEqual(config.Entrypoint, ['stdbuf', '-oL', '/usr/sbin/tcpconnlat']);
  // Only what the build stage compiled: no Debian package, no compiler in the runtime image.
  assert.deepEqual(await existingPaths(id, ['/usr/sbin/tcpconnlat', '/usr/sbin/tcpstates', '/usr/bin/clang', '/usr/bin/gcc']), ['/usr/sbin/tcpconnlat', '/usr/sbin/tcpstates']);
  const dpkg = await podman(['run', '--rm', '--network=none', '--entrypoint=dpkg-query', id, '-W', 'libbpf-tools']);
  assert.equal(dpkg.code, 1, 'libbpf-tools is not a Debian package here');
  const version = await podman(['run', '--rm', '--network=none', id, '--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), 'tcpconnlat 0.1');
  const help = await podman(['run', '--rm', '--network=none', id, '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /Trace TCP connects and show connection latency/);

  const bpfReady = (): string | undefined =>
    !existsSync('/sys/kernel/tracing/events/sock/inet_sock_set_state') ? 'tracefs is not mounted at /sys/kernel/tracing' : !existsSync('/sys/kernel/btf/vmlinux') ? 'no kernel BTF' : undefined;
  const dir = await mkdtemp(join(tmpdir(), 'connlat-source-image-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // The agent's privileges: no capability but BPF and PERFMON, tracefs read-only from the host, no_new_privs.
  const confined = ['--network=host', '--cap-drop=all', '--cap-add=BPF,PERFMON', '--security-opt=no-new-privileges', '--read-only', '--volume=/sys/kernel/tracing:/sys/kernel/tracing:ro'];

  await t.test('seccomp, measured: podman\'s default profile refuses bpf() without CAP_SYS_ADMIN; with bpf()/perf_event_open() allowed for CAP_BPF/CAP_PERFMON it loads', async (tt) => {
    const why = bpfReady();
    if (why) return tt.skip(why);
    const tcpstates = ['--entrypoint=/usr/sbin/tcpstates', id];
    // tcpstates prints its header once attached; `timeout` stops it (exit 124) after that.
    const withProfile = async (profile: string[]) => podman(['run', '--rm', ...confined, ...profile, '--entrypoint=timeout', id, '-s', 'INT', '3', '/usr/sbin/tcpstates']);
    const byDefault = await podman(['run', '--rm', ...confined, ...tcpstates]);
    assert.equal(byDefault.code, 1);
    assert.match(byDefault.stderr, /Couldn't load trivial BPF program/);
    const tight = await withProfile([`--security-opt=seccomp=${await bpfSeccompProfile(dir)}`]);
    assert.match(tight.stdout, /^SKADDR\s/m, `with the bpf profile: ${tight.stderr}`);
    const unconfined = await withProfile(['--security-opt=seccomp=unconfined']);
    assert.match(unconfined.stdout, /^SKADDR\s/m, `unconfined: ${unconfined.stderr}`);
  });

  await t.test('the source-built tcpstates attaches and its output decodes into the connects made', async (tt) => {
    const why = bpfReady();
    if (why) return tt.skip(why);
    const server = createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    tt.after(() => server.close());
    const port = (server.address() as AddressInfo).port;

    const name = `connlat-tcpstates-test-${process.pid}`;
    const profile = `--security-opt=seccomp=${await bpfSeccompProfile(dir)}`;
    const tool = spawnPodman(['run', '--rm', `--name=${name}`, '--stop-signal=SIGINT', ...confined, profile, '--entrypoint=stdbuf', id, '-oL', '/usr/sbin/tcpstates']);
    let stdout = '';
    let stderr = '';
    tool.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    tool.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => tool.on('close', r));
    // A fresh decoder per look: it is stateful (header, sockets seen in SYN_SENT) and reads the whole output again.
    const connectsTo = () => {
      const decoder = new LineDecoder('tcpstates');
      return stdout.split('\n').flatMap((l) => {
        const r = decoder.decode(l, Date.now());
        return r.kind === 'event' && r.event.dport === port && !r.event.failed ? [r.event] : [];
      });
    };
    try {
      // The header is printed once the BPF program is attached.
      await waitFor(() => /^SKADDR\s/m.test(stdout), 30_000, 'the tcpstates header');
      const connects = 5;
      await connectTimes(port, connects);
      await waitFor(() => connectsTo().length >= connects, 20_000, `${connects} connects to port ${port}`);
      const events = connectsTo();
      assert.equal(events.length, connects);
      for (const e of events) {
        assert.equal(e.daddr, '127.0.0.1');
        assert.equal(e.pid, process.pid, 'host PIDs, though the tool runs in its own PID namespace');
        assert.ok(Number.isFinite(e.latencyMs) && e.latencyMs >= 0);
      }
    } finally {
      await podman(['stop', '--time=10', name]);
      tt.diagnostic(`tcpstates exit ${await exited}; ${stdout.split('\n').length} lines; stderr: ${stderr.trim().slice(-500)}`);
    }
  });

  await t.test('the source-built tcpconnlat loads its BPF programs; on this kernel it fails only at the kprobe attach', async (tt) => {
    const why = bpfReady();
    if (why) return tt.skip(why);
    // libbpf loads (verifies) every program before it attaches any, so an attach error means the object loaded.
    const run = await podman(['run', '--rm', ...confined, `--security-opt=seccomp=${await bpfSeccompProfile(dir)}`, '--entrypoint=timeout', id, '-s', 'INT', '30', '/usr/sbin/tcpconnlat']);
    tt.diagnostic(`exit ${run.code}: ${run.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    if (run.code === 124) return tt.skip('tcpconnlat attached here (a kernel with kprobes); nothing to compare');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /failed to (auto-)?attach|kprobe/i);
    assert.doesNotMatch(run.stderr, /failed to load BPF|verifier|invalid/i);
  });
});
