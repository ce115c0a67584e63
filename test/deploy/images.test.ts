// The agent image (bpf-tools/Dockerfile.agent) and the Debian tools image (bpf-tools/Dockerfile.debian) as
// scripts/build-images.sh really built them with podman, run with podman: `connlat doctor`, a replay of a recording
// with exact counts, and the agent live under the DaemonSet's own security settings (read from the manifest).
// The gateway and workload images: images-gateway.test.ts; the source build of the tools: images-source.test.ts.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { connectTimes, freePort } from '../support/net.ts';
import { bpfSeccompProfile, builtImages, existingPaths, imageConfig, loadImage, podman, REPO_ROOT, spawnPodman } from './support/podman.ts';

const fixture = join(REPO_ROOT, 'test/fixtures/recordings/tcpconnlat-blog.txt');
const images = await builtImages();

interface OtlpLine {
  resourceMetrics?: Array<{ scopeMetrics: Array<{ metrics: Array<{ name: string; histogram?: { dataPoints: Array<{ count: string }> } }> }> }>;
}

/** Sum of the last exported count of the tcp.connect.duration histogram (cumulative temporality). */
function lastConnectCount(jsonl: string): number {
  let last = 0;
  for (const line of jsonl.split('\n').filter((l) => l.trim() !== '')) {
    const parsed = JSON.parse(line) as OtlpLine;
    for (const rm of parsed.resourceMetrics ?? []) {
      for (const sm of rm.scopeMetrics) {
        for (const m of sm.metrics) {
          if (m.name === 'tcp.connect.duration' && m.histogram) last = m.histogram.dataPoints.reduce((n, p) => n + Number(p.count), 0);
        }
      }
    }
  }
  return last;
}

interface AgentDaemonSet {
  spec: {
    template: {
      spec: {
        hostNetwork?: boolean;
        hostPID?: boolean;
        securityContext: { seccompProfile?: { type: string } };
        containers: Array<{
          args: string[];
          securityContext: { privileged?: boolean; capabilities: { add: string[]; drop: string[] }; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; runAsUser?: number };
          volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
        }>;
        volumes: Array<{ name: string; hostPath?: { path: string }; emptyDir?: { medium?: string } }>;
      };
    };
  };
}

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
};

/**
 * `podman run` options for the DaemonSet's agent container, read from the manifest: capabilities, uid, read-only
 * root, no_new_privs, host mounts, memory emptyDirs as tmpfs, and its seccomp setting. RuntimeDefault means the
 * runtime's profile: containerd's allows bpf()/perf_event_open() with CAP_BPF/CAP_PERFMON, podman's does not, so
 * it is given as podman's profile plus exactly that (bpfSeccompProfile). hostNetwork is not followed: the container
 * shares the host's network so the test reaches its health port (the tracepoint sees every namespace either way).
 */
async function daemonSetRunOptions(ds: AgentDaemonSet, seccompDir: string): Promise<string[]> {
  const pod = ds.spec.template.spec;
  const container = pod.containers[0]!;
  const sc = container.securityContext;
  const opts = ['--network=host', `--user=${sc.runAsUser ?? 0}`, '--cap-drop=all', `--cap-add=${sc.capabilities.add.join(',')}`];
  if (sc.privileged) opts.push('--privileged');
  if (sc.readOnlyRootFilesystem) opts.push('--read-only', '--read-only-tmpfs=false');
  if (sc.allowPrivilegeEscalation === false) opts.push('--security-opt=no-new-privileges');
  if (pod.hostPID) opts.push('--pid=host');
  const seccomp = pod.securityContext.seccompProfile?.type ?? 'RuntimeDefault';
  if (seccomp === 'Unconfined') opts.push('--security-opt=seccomp=unconfined');
  else if (seccomp === 'RuntimeDefault') opts.push(`--security-opt=seccomp=${await bpfSeccompProfile(seccompDir)}`);
  else throw new Error(`seccompProfile ${seccomp}: not translated to podman by this test`);
  for (const m of container.volumeMounts) {
    const volume = pod.volumes.find((v) => v.name === m.name)!;
    if (volume.hostPath) opts.push(`--volume=${volume.hostPath.path}:${m.mountPath}${m.readOnly ? ':ro' : ''}`);
    else if (volume.emptyDir) opts.push(`--tmpfs=${m.mountPath}`);
  }
  return opts;
}

test('agent image (bpf-tools/Dockerfile.agent, built by podman): doctor, replay, and live under the DaemonSet settings', { timeout: 10 * 60_000 }, async (t) => {
  const archives = images.archives;
  if (!archives) return t.skip(images.skip);
  const { ref, id } = await loadImage(archives.agent);
  assert.equal(ref, 'ghcr.io/connlat/connlat-agent:0.1.0', 'the archive names the image the DaemonSet runs');
  const ds = parseYaml(await readFile(join(REPO_ROOT, 'deploy/kustomize/base/agent-daemonset.yaml'), 'utf8')) as AgentDaemonSet;
  const container = ds.spec.template.spec.containers[0]!;
  assert.equal((container as unknown as { image: string }).image, ref);

  const config = await imageConfig(id);
  assert.deepEqual(config.Entrypoint, ['node', '--no-maglev', 'dist/cli.js']);
  assert.deepEqual(config.Cmd, ['run']);
  assert.equal(config.WorkingDir, '/app');
  const present = ['/usr/sbin/connlat-probe', '/usr/sbin/tcpconnlat', '/usr/sbin/tcpstates', '/usr/bin/stdbuf', '/usr/local/bin/node', '/app/dist/cli.js', '/app/node_modules/zod'];
  // Only the compiled agent and its runtime dependencies: no sources, no compiler, no dev dependencies, and nothing of
  // the build machine's TLS trust that build-images.sh lends the RUN steps.
  const absent = ['/app/src', '/app/node_modules/typescript', '/app/node_modules/fast-check', '/app/tsconfig.json', '/usr/bin/gcc', '/usr/local/etc/npmrc', '/usr/local/etc/build-ca.crt'];
  assert.deepEqual(await existingPaths(id, [...present, ...absent]), present);

  await t.test('connlat doctor', async () => {
    const doctor = await podman(['run', '--rm', '--network=host', id, 'doctor']);
    t.diagnostic(doctor.stdout.trim());
    assert.equal(doctor.code, 0, doctor.stderr);
    assert.match(doctor.stdout, /ok\s+stdbuf\s+\/usr\/bin\/stdbuf/);
    assert.match(doctor.stdout, /ok\s+tcpconnlat\s+found at \/usr\/sbin\/tcpconnlat/);
    assert.match(doctor.stdout, /ok\s+connlat-probe\s+found at \/usr\/sbin\/connlat-probe/);
    assert.match(doctor.stdout, /ok\s+tcpstates\s+found at \/usr\/sbin\/tcpstates/);
  });

  const shared = await mkdtemp(join(tmpdir(), 'connlat-image-io-'));
  t.after(() => rm(shared, { recursive: true, force: true }));
  await cp(fixture, join(shared, 'tcpconnlat.txt'));

  await t.test('replay of a recorded tcpconnlat run to OTLP/JSON, exact counts', async () => {
    const replay = ['--source', 'file:/io/tcpconnlat.txt', '--export', 'otlp-json:/io/replay.jsonl', '--view', 'off', '--health-addr', 'off', '--kubernetes', 'off'];
    const result = await podman(['run', '--rm', '--network=none', `--volume=${shared}:/io`, id, ...replay]);
    assert.equal(result.code, 0, result.stderr);
    const events = (await readFile(fixture, 'utf8')).trim().split('\n').length - 1; // minus the header
    assert.equal(lastConnectCount(await readFile(join(shared, 'replay.jsonl'), 'utf8')), events);
  });

  await t.test("live, as the DaemonSet runs it: only its capabilities, read-only root and host mounts, no_new_privs", async (tt) => {
    if (!existsSync('/sys/kernel/tracing/events/sock/inet_sock_set_state')) return tt.skip('tracefs is not mounted at /sys/kernel/tracing');
    if (!existsSync('/sys/kernel/btf/vmlinux')) return tt.skip('no kernel BTF');
    assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
    const run = [...(await daemonSetRunOptions(ds, shared)), `--volume=${shared}:/io`];

    const doctor = await podman(['run', '--rm', ...run, id, 'doctor']);
    tt.diagnostic(doctor.stdout.trim());
    assert.match(doctor.stdout, /capabilities\s+CapEff 000000c000000000: CAP_BPF, CAP_PERFMON\b/);
    assert.match(doctor.stdout, /ok\s+tcpstates attach \(tracepoint\)\s+attached/);
    // the image's own tool, with the DaemonSet's capabilities only: what --source=auto runs there
    assert.match(doctor.stdout, /ok\s+connlat-probe attach \(tracepoints\)\s+attached/);
    assert.match(doctor.stdout, /ok\s+auto source\s+would use connlat-probe/);

    const server = createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    tt.after(() => server.close());
    const port = (server.address() as AddressInfo).port;
    const healthPort = await freePort();
    // The DaemonSet's own args, with the source pinned to tcpstates (tcpconnlat cannot attach on this kernel), the
    // OTLP exporter swapped for a file and the health endpoint on loopback.
    const args = container.args
      .filter((a) => !/^--(source|export|health-addr)=/.test(a))
      .concat(['--source=tcpstates', '--export=otlp-json:/io/live.jsonl', '--export-interval-ms=500', '--kubernetes=off', `--health-addr=127.0.0.1:${healthPort}`]);
    assert.ok(args.includes('--host-proc=/host/proc'));
    const name = `connlat-image-test-${process.pid}`;
    const agent = spawnPodman(['run', '--rm', `--name=${name}`, '--stop-signal=SIGINT', ...run, id, ...args]);
    let stderr = '';
    agent.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => agent.on('close', r));
    try {
      await waitFor('/readyz', async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).ok, 30_000);
      const connects = 5;
      await connectTimes(port, connects);
      await waitFor(`${connects} connects exported`, async () => lastConnectCount(await readFile(join(shared, 'live.jsonl'), 'utf8')) >= connects, 20_000);
    } finally {
      await podman(['stop', '--time=15', name]);
      const code = await exited;
      tt.diagnostic(`agent exit ${code}; stderr tail: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    }
  });
});

test('tools image (bpf-tools/Dockerfile.debian, built by podman): Debian libbpf-tools 0.26.0 runs its entrypoint', { timeout: 5 * 60_000 }, async (t) => {
  const archives = images.archives;
  if (!archives) return t.skip(images.skip);
  const { ref, id } = await loadImage(archives['tools-debian']);
  assert.equal(ref, 'localhost/connlat/libbpf-tools:0.26.0-debian');
  const config = await imageConfig(id);
  assert.deepEqual(config.Entrypoint, ['stdbuf', '-oL', '/usr/sbin/tcpconnlat']);
  const version = await podman(['run', '--rm', '--network=none', '--entrypoint=dpkg-query', id, '-W', '-f', '${Version}', 'libbpf-tools']);
  assert.equal(version.stdout, '0.26.0+ds-1');
  const help = await podman(['run', '--rm', '--network=none', id, '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout + help.stderr, /Trace TCP connects and show connection latency/);
});
