// bpf-tools/Dockerfile.source replayed in a debootstrapped bookworm root (see images.test.ts): tcpconnlat and
// tcpstates compiled from the pinned bcc v0.26.0 source (the Go module proxy's zip of the tag, SHA-256 checked)
// against Debian's libbpf and bpftool, then copied into the runtime stage. The source-built tcpstates then runs for
// real inside that root, and what it prints must decode into the connects the test made.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LineDecoder } from '../../src/parse/decoder.ts';
import { waitFor } from '../sources/helpers.ts';
import { connectTimes } from '../support/net.ts';
import { buildDockerfile, ensureBaseTarball, missingPrerequisite, runIn, spawnIn } from './support/chroot-image.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

test('bpf-tools/Dockerfile.source: tcpconnlat and tcpstates built from the pinned bcc source; tcpstates runs', { timeout: 30 * 60_000 }, async (t) => {
  const missing = await missingPrerequisite();
  if (missing) return t.skip(missing);
  await ensureBaseTarball((s) => t.diagnostic(s));
  const started = Date.now();
  const build = await buildDockerfile({
    dockerfile: join(repoRoot, 'bpf-tools/Dockerfile.source'),
    context: join(repoRoot, 'bpf-tools'),
    repoRoot,
    log: (s) => t.diagnostic(s),
  });
  t.after(() => build.cleanup());
  for (const { stage, seconds } of build.timings) t.diagnostic(`stage ${stage}: ${seconds.toFixed(0)} s`);
  t.diagnostic(`built in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const image = build.final;
  assert.deepEqual(image.entrypoint, ['stdbuf', '-oL', '/usr/sbin/tcpconnlat']);
  // Only what the build stage compiled: no Debian package, no compiler in the runtime image.
  for (const tool of ['tcpconnlat', 'tcpstates']) assert.ok(existsSync(join(image.root, 'usr/sbin', tool)), tool);
  assert.ok(!existsSync(join(image.root, 'usr/bin/clang')), 'the runtime stage has no compiler');
  assert.equal((await runIn(image, ['dpkg-query', '-W', 'libbpf-tools'])).code, 1, 'libbpf-tools is not a Debian package here');
  const version = await runIn(image, [...image.entrypoint!, '--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), 'tcpconnlat 0.1');
  const help = await runIn(image, [...image.entrypoint!, '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /Trace TCP connects and show connection latency/);

  await t.test('the source-built tcpstates attaches and its output decodes into the connects made', async (tt) => {
    if (!existsSync('/sys/kernel/tracing/events/sock/inet_sock_set_state')) return tt.skip('tracefs is not mounted at /sys/kernel/tracing');
    if (!existsSync('/sys/kernel/btf/vmlinux')) return tt.skip('no kernel BTF');
    if (process.getuid?.() !== 0) return tt.skip('loading BPF programs needs root');
    const server = createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    tt.after(() => server.close());
    const port = (server.address() as AddressInfo).port;

    const tool = spawnIn(image, ['stdbuf', '-oL', '/usr/sbin/tcpstates']);
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
        assert.equal(e.pid, process.pid);
        assert.ok(Number.isFinite(e.latencyMs) && e.latencyMs >= 0);
      }
    } finally {
      tool.kill('SIGINT');
      tt.diagnostic(`tcpstates exit ${await exited}; ${stdout.split('\n').length} lines; stderr: ${stderr.trim().slice(-500)}`);
    }
  });

  await t.test('the source-built tcpconnlat loads its BPF programs; on this kernel it fails only at the kprobe attach', async (tt) => {
    if (process.getuid?.() !== 0) return tt.skip('loading BPF programs needs root');
    // libbpf loads (verifies) every program before it attaches any, so an attach error means the object loaded.
    const run = await runIn(image, ['/usr/sbin/tcpconnlat'], { timeoutMs: 30_000 });
    tt.diagnostic(`exit ${run.code}: ${run.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    if (run.code === null || run.code === 0) return tt.skip('tcpconnlat attached here (a kernel with kprobes); nothing to compare');
    assert.equal(run.code, 1);
    assert.match(run.stderr, /failed to (auto-)?attach|kprobe/i);
    assert.doesNotMatch(run.stderr, /failed to load BPF|verifier|invalid/i);
  });
});
