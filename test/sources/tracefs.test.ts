import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { access } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { findTracefsMount } from '../../src/sources/tracefs.ts';
import { findExecutable } from '../../src/sources/tool.ts';

const table: [string, string, string | undefined][] = [
  ['mounted at /sys/kernel/tracing', '42 23 0:13 / /sys/kernel/tracing rw,relatime - tracefs nodev rw', '/sys/kernel/tracing'],
  [
    'automounted under debugfs',
    '30 25 0:7 / /sys/kernel/debug rw,nosuid - debugfs debugfs rw\n45 30 0:13 / /sys/kernel/debug/tracing rw,relatime - tracefs tracefs rw',
    '/sys/kernel/debug/tracing',
  ],
  ['optional fields before the separator', '42 23 0:13 / /sys/kernel/tracing rw,relatime shared:12 master:3 - tracefs nodev rw', '/sys/kernel/tracing'],
  ['tracefs somewhere libbpf does not look', '42 23 0:13 / /mnt/trace rw - tracefs nodev rw', undefined],
  ['only debugfs, no tracefs', '30 25 0:7 / /sys/kernel/debug rw - debugfs debugfs rw', undefined],
  ['another fs at the path', '42 23 0:13 / /sys/kernel/tracing rw - tmpfs tmpfs rw', undefined],
  ['empty', '', undefined],
];
for (const [name, mountinfo, want] of table) {
  test(`findTracefsMount: ${name}`, () => assert.equal(findTracefsMount(mountinfo), want));
}

/** Runs tracefs-child.ts in a private mount namespace with tracefs unmounted; undefined with a reason if it cannot. */
async function inNamespaceWithoutTracefs(mode: string): Promise<{ skip: string } | { out: Record<string, unknown> }> {
  if (process.getuid?.() !== 0) return { skip: 'needs root for a private mount namespace' };
  if (!(await findExecutable('unshare'))) return { skip: 'unshare (util-linux) not installed' };
  const child = fileURLToPath(new URL('./tracefs-child.ts', import.meta.url));
  const script =
    'while umount /sys/kernel/tracing 2>/dev/null; do :; done; umount /sys/kernel/debug/tracing 2>/dev/null; exec "$0" "$@"';
  const r = await execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, process.execPath, child, mode], {
    reject: false,
    timeout: 30_000,
  });
  if (r.exitCode !== 0) return { skip: `cannot run in a private mount namespace: ${String(r.stderr).split('\n')[0]}` };
  return { out: JSON.parse(String(r.stdout)) as Record<string, unknown> };
}

test('ensureTracefs mounts tracefs when it is missing (private mount namespace, root)', async (t) => {
  const r = await inNamespaceWithoutTracefs('ensure');
  if ('skip' in r) return t.skip(r.skip);
  const out = r.out as { before: unknown; first: { ok: boolean; mountedNow: boolean; message: string }; second: { mountedNow: boolean }; after: unknown };
  assert.equal(out.before, null, 'tracefs was unmounted in the namespace');
  assert.deepEqual([out.first.ok, out.first.mountedNow], [true, true]);
  assert.match(out.first.message, /mounted it at \/sys\/kernel\/tracing/);
  assert.equal(out.second.mountedNow, false, 'the second call finds it mounted');
  assert.equal(out.after, '/sys/kernel/tracing');
});

test('real tcpstates without tracefs: the source mounts it and the tool attaches on restart', async (t) => {
  if (!(await access('/usr/sbin/tcpstates').then(() => true, () => false))) return t.skip('/usr/sbin/tcpstates not installed');
  const r = await inNamespaceWithoutTracefs('tcpstates');
  if ('skip' in r) return t.skip(r.skip);
  const out = r.out as { before: unknown; ready: boolean; diagnostics: string[]; restarts: string[]; after: unknown };
  assert.equal(out.before, null);
  if (!out.ready && out.diagnostics.some((d) => /not permitted|BTF/.test(d))) return t.skip(`BPF cannot run here: ${out.diagnostics.join(' | ')}`);
  assert.deepEqual(out.diagnostics, ['tcpstates: tracefs was not mounted; mounted it at /sys/kernel/tracing']);
  assert.equal(out.restarts.length, 1);
  assert.match(out.restarts[0]!, /tcpstates exited with code 1 \(libbpf: failed to determine tracepoint 'sock\/inet_sock_set_state'/);
  assert.equal(out.ready, true);
  assert.equal(out.after, '/sys/kernel/tracing');
});
