// The contract between scripts/build-images.sh and a node: `ctr -n k8s.io images import <archive>` (what
// scripts/dev-cluster.sh does with every line the script prints) must give containerd the image under the exact ref
// the manifests name, since imagePullPolicy IfNotPresent never reaches a registry. A throwaway containerd (its own
// root, state and socket in a temp folder; no CRI plugin) imports the archives, then is stopped and removed.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { waitFor } from '../support/collector/collector.ts';
import { builtImages, REPO_ROOT } from './support/podman.ts';

const exec = promisify(execFile);
const images = await builtImages();

/** Every container image the kustomize base names (the Helm chart renders the same, see render.test.ts). */
async function manifestImages(): Promise<string[]> {
  const found = new Set<string>();
  for (const file of ['agent-daemonset.yaml', 'gateway-deployment.yaml']) {
    for (const doc of parseAllDocuments(await readFile(join(REPO_ROOT, 'deploy/kustomize/base', file), 'utf8'))) {
      const obj = doc.toJS() as { spec?: { template?: { spec?: { containers?: Array<{ image: string }> } } } } | null;
      for (const c of obj?.spec?.template?.spec?.containers ?? []) found.add(c.image);
    }
  }
  return [...found].sort();
}

test('ctr images import of the archives names each image as the manifests do', { timeout: 5 * 60_000 }, async (t) => {
  const archives = images.archives;
  if (!archives) return t.skip(images.skip);
  for (const tool of ['containerd', 'ctr']) {
    if (!(await exec('sh', ['-c', `command -v ${tool}`]).then(() => true, () => false))) return t.skip(`${tool} is not installed`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'connlat-containerd-'));
  const socket = join(dir, 'containerd.sock');
  await writeFile(
    join(dir, 'config.toml'),
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      `[grpc]\n  address = "${socket}"`,
      `[ttrpc]\n  address = "${socket}.ttrpc"`,
      '[debug]\n  address = ""',
      `[plugins."io.containerd.internal.v1.opt"]\n  path = "${dir}/opt"`,
    ].join('\n') + '\n',
  );
  const containerd = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  containerd.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const exited = new Promise<void>((r) => containerd.on('close', () => r()));
  t.after(async () => {
    containerd.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  });
  await waitFor('the containerd socket', async () => (existsSync(socket) ? true : undefined), 30_000);
  const ctr = (...args: string[]) => exec('ctr', ['--address', socket, '--namespace', 'k8s.io', ...args], { maxBuffer: 16 << 20 });

  for (const name of ['agent', 'gateway', 'workload'] as const) {
    const { stdout } = await ctr('images', 'import', archives[name]);
    t.diagnostic(stdout.trim());
  }
  const { stdout } = await ctr('images', 'ls', '--quiet');
  const refs = stdout.trim().split('\n');
  for (const image of await manifestImages()) assert.ok(refs.includes(image), `${image} imported (containerd has: ${refs.join(', ')}); log: ${log}`);
  assert.ok(refs.includes('localhost/connlat-test-workload:1'));
});
