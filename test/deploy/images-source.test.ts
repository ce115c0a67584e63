// bpf-tools/Dockerfile.source replayed in a debootstrapped bookworm root (see images.test.ts): libbpf-tools compiled
// from Debian's pinned bcc 0.26.0 source package with Debian's recipe, then installed in the runtime stage.
// Opt-in (CONNLAT_SOURCE_BUILD=1): it compiles the whole bpfcc source package (bcc, its LLVM bindings, then
// libbpf-tools), far longer than the rest of the suite. Needs a Debian mirror that serves source tarballs.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildDockerfile, ensureBaseTarball, missingPrerequisite, runIn } from './support/chroot-image.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

test('bpf-tools/Dockerfile.source: libbpf-tools built from the pinned bcc source, tcpconnlat runs', { timeout: 120 * 60_000 }, async (t) => {
  if (process.env.CONNLAT_SOURCE_BUILD !== '1') return t.skip('opt-in: CONNLAT_SOURCE_BUILD=1 (compiles bcc from source; long)');
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
  for (const tool of ['tcpconnlat', 'tcpstates']) assert.ok(existsSync(join(image.root, 'usr/sbin', tool)), tool);
  const { stdout } = await runIn(image, ['dpkg-query', '-W', '-f', '${Version}', 'libbpf-tools']);
  assert.equal(stdout, '0.26.0+ds-1');
  const help = await runIn(image, [...image.entrypoint!, '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /Trace TCP connects and show connection latency/);
});
