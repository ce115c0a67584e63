// The gateway image (bpf-tools/Dockerfile.gateway: our ocb-built Collector), as scripts/build-images.sh built it, run
// with podman: the Deployment's own config files (the ConfigMap's copies), user and read-only root; it routes a real
// OTLP log record.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { E2E_OVERLAY, loopbackEnv, waitFor } from '../support/collector/collector.ts';
import { builtImages, imageConfig, loadImage, podman, REPO_ROOT, spawnPodman } from './support/podman.ts';

const images = await builtImages();

interface GatewayDeployment {
  spec: {
    template: {
      spec: {
        securityContext: { runAsUser: number; runAsGroup: number; runAsNonRoot: boolean };
        containers: Array<{
          image: string;
          args: string[];
          securityContext: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities: { drop: string[] } };
          volumeMounts: Array<{ name: string; mountPath: string }>;
        }>;
      };
    };
  };
}

test('gateway image (bpf-tools/Dockerfile.gateway, built by podman): our Collector, non-root, runs the Deployment config', { timeout: 5 * 60_000 }, async (t) => {
  const archives = images.archives;
  if (!archives) return t.skip(images.skip);
  const { ref, id } = await loadImage(archives.gateway);
  const docs = parseYaml(await readFile(join(REPO_ROOT, 'deploy/kustomize/base/gateway-deployment.yaml'), 'utf8').then((s) => s.split(/^---$/m)[0]!)) as GatewayDeployment;
  const pod = docs.spec.template.spec;
  const container = pod.containers[0]!;
  assert.equal(ref, container.image, 'the archive names the image the Deployment runs');

  const config = await imageConfig(id);
  assert.equal(config.User, `${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`, 'non-root, the uid the Deployment runs as');
  assert.deepEqual(config.Entrypoint, ['/otelcol-connlat']);
  const confDir = container.volumeMounts.find((m) => m.name === 'config')!.mountPath;
  assert.deepEqual(config.Cmd, [`--config=${confDir}/gateway.yaml`], 'the default config is where the Deployment mounts it');

  const builder = parseYaml(await readFile(join(REPO_ROOT, 'otel-config/builder-config.yaml'), 'utf8')) as { dist: { name: string; version: string } };
  const version = await podman(['run', '--rm', '--network=none', id, '--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), `${builder.dist.name} version ${builder.dist.version}`);

  // The ConfigMap's files (kustomize configMapGenerator copies), mounted where the Deployment mounts them.
  const configMap = join(REPO_ROOT, 'deploy/kustomize/base/otel-config');
  const validate = await podman(['run', '--rm', '--network=none', `--volume=${configMap}:${confDir}:ro`, id, 'validate', ...container.args]);
  assert.equal(validate.code, 0, `validate ${container.args.join(' ')}:\n${validate.stdout}${validate.stderr}`);

  await t.test('started as the Deployment runs it (uid 10001, read-only root, no capabilities): an OTLP log record reaches its exporter', async () => {
    const sc = container.securityContext;
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    const out = await mkdtemp(join(tmpdir(), 'connlat-gateway-image-'));
    t.after(() => rm(out, { recursive: true, force: true }));
    await chmod(out, 0o777); // written by uid 10001
    // The persistent queues' volume (an emptyDir in the Deployment), where the Deployment mounts it: with a read-only
    // root file_storage cannot create its directory and the gateway does not start without it.
    const queueMount = container.volumeMounts.find((m) => m.name === 'queue')!.mountPath;
    const queue = await mkdtemp(join(tmpdir(), 'connlat-gateway-image-queue-'));
    t.after(() => rm(queue, { recursive: true, force: true }));
    await chmod(queue, 0o777);
    // gateway.yaml + the test overlay (backends swapped for file exporters into /out). k8s-attributes.yaml is left
    // out: it needs the in-cluster API. Every listener on a free loopback port; nothing is sent off this machine.
    const { grpc: _g, http, health, selfMetrics: _s, ...ports } = await loopbackEnv();
    const env = { ...ports, CONNLAT_TEST_OUT_DIR: '/out', CONNLAT_TEST_REMOTE_WRITE_URL: 'http://127.0.0.1:9/api/v1/write' };
    const name = `connlat-gateway-test-${process.pid}`;
    const run = [
      'run', '--rm', `--name=${name}`, '--network=host', '--cap-drop=all',
      ...(sc.readOnlyRootFilesystem ? ['--read-only', '--read-only-tmpfs=false'] : []),
      ...(sc.allowPrivilegeEscalation === false ? ['--security-opt=no-new-privileges'] : []),
      `--volume=${join(REPO_ROOT, 'otel-config/gateway.yaml')}:${confDir}/gateway.yaml:ro`,
      `--volume=${E2E_OVERLAY}:${confDir}/e2e-overlay.yaml:ro`,
      `--volume=${out}:/out`,
      `--volume=${queue}:${queueMount}`,
      ...Object.entries(env).map(([k, v]) => `--env=${k}=${v}`),
      id, `--config=${confDir}/gateway.yaml`, `--config=${confDir}/e2e-overlay.yaml`,
    ];
    const gateway = spawnPodman(run);
    let output = '';
    gateway.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    gateway.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => gateway.on('close', r));
    try {
      await waitFor('the gateway health_check', async () => ((await fetch(`http://${health}/`)).status === 200 ? true : undefined), 30_000);
      const body = {
        resourceLogs: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'connlat-image-test' } }] }, scopeLogs: [{ logRecords: [{ body: { stringValue: 'slow connect from the image test' } }] }] }],
      };
      const res = await fetch(`http://${http}/v1/logs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(res.status, 200);
      const written = await waitFor('the log record in logs-default.jsonl', async () => {
        const text = await readFile(join(out, 'logs-default.jsonl'), 'utf8');
        return text.includes('slow connect from the image test') ? text : undefined;
      }, 20_000);
      assert.match(written, /"connlat-image-test"/);
    } finally {
      await podman(['stop', '--time=15', name]);
      const code = await exited;
      assert.equal(code, 0, `the gateway exits 0 on SIGTERM:\n${output.slice(-2000)}`);
    }
  });
});
