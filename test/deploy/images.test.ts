// The image recipes in bpf-tools/, proven without a container engine: every RUN/COPY step of each Dockerfile is
// replayed (parsed from the Dockerfile itself, see support/dockerfile.ts) in a debootstrapped Debian bookworm root
// with chroot, then the agent image runs `connlat doctor`, a replay, and the real tcpstates source inside that root.
// The source build of the tools (Dockerfile.source) is images-source.test.ts.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { connectTimes } from '../support/net.ts';
import { buildDockerfile, ensureBaseTarball, missingPrerequisite, runIn, spawnIn, type Bind, type BuildResult } from './support/chroot-image.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const fixture = join(repoRoot, 'test/fixtures/recordings/tcpconnlat-blog.txt');

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
        containers: Array<{
          args: string[];
          securityContext: { capabilities: { add: string[]; drop: string[] }; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
          volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
        }>;
        volumes: Array<{ name: string; hostPath?: { path: string } }>;
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

test('bpf-tools/Dockerfile.agent: builds in a bookworm root; doctor, replay and live tcpstates run inside it', { timeout: 30 * 60_000 }, async (t) => {
  const missing = await missingPrerequisite();
  if (missing) return t.skip(missing);
  const log = (s: string) => t.diagnostic(s);
  const started = Date.now();
  await ensureBaseTarball(log);
  // The npm cache is shared with the build steps, as a BuildKit cache mount would be: npm ci still resolves and
  // verifies every package of package-lock.json, it just does not download them again.
  const npmCache = join(homedir(), '.npm');
  await mkdir(npmCache, { recursive: true });
  const build: BuildResult = await buildDockerfile({
      dockerfile: join(repoRoot, 'bpf-tools/Dockerfile.agent'),
      context: repoRoot,
      repoRoot,
      binds: [{ host: npmCache, inside: '/root/.npm' }],
      log,
    });
  t.after(() => build.cleanup());
  for (const { stage, seconds } of build.timings) log(`stage ${stage}: ${seconds.toFixed(1)} s`);
  log(`image built in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const image = build.final;
  const root = image.root;
  assert.deepEqual(image.entrypoint, ['node', 'dist/cli.js']);
  assert.deepEqual(image.cmd, ['run']);
  assert.equal(image.workdir, '/app');
  for (const path of ['usr/sbin/tcpconnlat', 'usr/sbin/tcpstates', 'usr/bin/stdbuf', 'usr/local/bin/node', 'app/dist/cli.js', 'app/node_modules/zod']) {
    assert.ok(existsSync(join(root, path)), `${path} in the image`);
  }
  // Only the compiled agent and its runtime dependencies: no sources, no compiler, no dev dependencies.
  for (const path of ['app/src', 'app/node_modules/typescript', 'app/node_modules/fast-check', 'app/tsconfig.json']) {
    assert.ok(!existsSync(join(root, path)), `${path} must not be in the image`);
  }
  const entry = [...image.entrypoint!];

  await t.test('connlat doctor', async () => {
    const doctor = await runIn(image, [...entry, 'doctor'], { timeoutMs: 60_000 });
    t.diagnostic(doctor.stdout.trim());
    assert.equal(doctor.code, 0, doctor.stderr);
    assert.match(doctor.stdout, /ok\s+stdbuf\s+\/usr\/bin\/stdbuf/);
    assert.match(doctor.stdout, /ok\s+tcpconnlat\s+found at \/usr\/sbin\/tcpconnlat/);
    assert.match(doctor.stdout, /ok\s+tcpstates\s+found at \/usr\/sbin\/tcpstates/);
  });

  const shared = await mkdtemp(join(tmpdir(), 'connlat-image-io-'));
  t.after(() => rm(shared, { recursive: true, force: true }));
  await cp(fixture, join(shared, 'tcpconnlat.txt'));

  await t.test('replay of a recorded tcpconnlat run to OTLP/JSON', async () => {
    const result = await runIn(
      image,
      [...entry, '--source', 'file:/io/tcpconnlat.txt', '--export', 'otlp-json:/io/replay.jsonl', '--view', 'off', '--health-addr', 'off', '--kubernetes', 'off'],
      { binds: [{ host: shared, inside: '/io' }], timeoutMs: 60_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    const events = (await readFile(fixture, 'utf8')).trim().split('\n').length - 1; // minus the header
    assert.equal(lastConnectCount(await readFile(join(shared, 'replay.jsonl'), 'utf8')), events);
  });

  await t.test("live, as the DaemonSet runs it: only its capabilities, read-only root and host mounts, no_new_privs", async (tt) => {
    if (!existsSync('/sys/kernel/tracing/events/sock/inet_sock_set_state')) return tt.skip('tracefs is not mounted at /sys/kernel/tracing');
    if (!existsSync('/sys/kernel/btf/vmlinux')) return tt.skip('no kernel BTF');
    // The container's security settings, read from the manifest: capability set as the bounding set (what the
    // runtime gives a uid-0 process: effective = permitted = bounding = the added capabilities), hostPath mounts.
    const ds = parseYaml(await readFile(join(repoRoot, 'deploy/kustomize/base/agent-daemonset.yaml'), 'utf8')) as AgentDaemonSet;
    const pod = ds.spec.template.spec;
    const container = pod.containers[0]!;
    const sc = container.securityContext;
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    const caps = sc.capabilities.add.map((c) => `+${c.toLowerCase()}`).join(',');
    const hostPaths = Object.fromEntries(pod.volumes.filter((v) => v.hostPath).map((v) => [v.name, v.hostPath!.path]));
    const binds: Bind[] = [{ host: shared, inside: '/io' }];
    for (const m of container.volumeMounts) {
      if (hostPaths[m.name]) binds.push({ host: hostPaths[m.name]!, inside: m.mountPath, readOnly: m.readOnly === true });
    }
    const confine = ['setpriv', `--bounding-set=-all,${caps}`, '--inh-caps=-all', ...(sc.allowPrivilegeEscalation === false ? ['--no-new-privs'] : []), '--'];
    const runOpts = { binds, readOnlyRoot: sc.readOnlyRootFilesystem === true };

    const doctor = await runIn(image, [...confine, ...entry, 'doctor'], { ...runOpts, timeoutMs: 60_000 });
    tt.diagnostic(doctor.stdout.trim());
    assert.match(doctor.stdout, /capabilities\s+CapEff 000000c000000000: CAP_BPF, CAP_PERFMON\b/);
    assert.match(doctor.stdout, /ok\s+tcpstates attach \(tracepoint\)\s+attached/);

    const server = createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    tt.after(() => server.close());
    const port = (server.address() as AddressInfo).port;
    const healthPort = port + 1 < 65535 ? port + 1 : port - 1;
    // The DaemonSet's own args, with the source pinned to tcpstates (tcpconnlat cannot attach on this kernel), the
    // OTLP exporter swapped for a file and the health endpoint on loopback.
    const args = container.args
      .filter((a) => !/^--(source|export|health-addr)=/.test(a))
      .concat(['--source=tcpstates', '--export=otlp-json:/io/live.jsonl', '--export-interval-ms=500', '--kubernetes=off', `--health-addr=127.0.0.1:${healthPort}`]);
    assert.ok(args.includes('--host-proc=/host/proc'));
    const agent = spawnIn(image, [...confine, ...entry, ...args], runOpts);
    let stderr = '';
    agent.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => agent.on('close', r));
    try {
      await waitFor('/readyz', async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).ok, 30_000);
      const connects = 5;
      await connectTimes(port, connects);
      await waitFor(`${connects} connects exported`, async () => lastConnectCount(await readFile(join(shared, 'live.jsonl'), 'utf8')) >= connects, 20_000);
    } finally {
      agent.kill('SIGINT');
      const code = await exited;
      tt.diagnostic(`agent exit ${code}; stderr tail: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    }
  });
});

test('bpf-tools/Dockerfile.debian: Debian libbpf-tools image runs its entrypoint', { timeout: 10 * 60_000 }, async (t) => {
  const missing = await missingPrerequisite();
  if (missing) return t.skip(missing);
  await ensureBaseTarball((s) => t.diagnostic(s));
  const started = Date.now();
  const build = await buildDockerfile({
    dockerfile: join(repoRoot, 'bpf-tools/Dockerfile.debian'),
    context: join(repoRoot, 'bpf-tools'),
    repoRoot,
    log: (s) => t.diagnostic(s),
  });
  t.after(() => build.cleanup());
  t.diagnostic(`image built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const image = build.final;
  assert.deepEqual(image.entrypoint, ['stdbuf', '-oL', '/usr/sbin/tcpconnlat']);
  const { stdout } = await runIn(image, ['dpkg-query', '-W', '-f', '${Version}', 'libbpf-tools']);
  assert.equal(stdout, '0.26.0+ds-1');
  const help = await runIn(image, [...image.entrypoint!, '--help'], { timeoutMs: 30_000 });
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout + help.stderr, /Trace TCP connects and show connection latency/);
});
