// deploy/: the agent DaemonSet's privileges are exactly the documented ones, its flags are ones connlat accepts, the
// embedded copies match their sources, and the Helm chart renders the same objects as the kustomize base.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { parseCommandLine } from '../../src/config.ts';
import { byKey, helmLint, kustomizeDir, parseObjects, renderHelm, renderKustomize, renderTools, repoRoot, type K8sObject } from './support/render.ts';

// A narrow view of the pod spec fields the checks read.
interface Container {
  name: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  ports?: Array<{ name: string; containerPort: number }>;
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown> & { capabilities?: { add?: string[]; drop?: string[] } };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
type Volume = { name: string; hostPath?: { path: string }; emptyDir?: { sizeLimit?: string }; configMap?: { name: string }; ephemeral?: unknown };
interface PodSpec {
  hostPID?: boolean;
  hostNetwork?: boolean;
  hostIPC?: boolean;
  priorityClassName?: string;
  tolerations?: Array<Record<string, string>>;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes: Volume[];
}
const podSpec = (o: K8sObject) => (o as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;

async function baseObjects(file: string): Promise<K8sObject[]> {
  return parseObjects(await readFile(join(kustomizeDir, file), 'utf8'));
}

function checkAgentPolicy(ds: K8sObject, expectCaps: string[]): void {
  const spec = podSpec(ds);
  assert.equal(spec.hostPID ?? false, false, 'no hostPID');
  assert.equal(spec.hostNetwork ?? false, false, 'no hostNetwork');
  assert.equal(spec.hostIPC ?? false, false, 'no hostIPC');
  assert.deepEqual(spec.tolerations, [{ operator: 'Exists' }], 'tolerates every taint');
  assert.ok(spec.priorityClassName, 'has a priority class');
  assert.equal(spec.containers.length, 1);
  const c = spec.containers[0]!;
  const sc = c.securityContext!;
  assert.equal(sc.privileged, false, 'not privileged');
  assert.equal(sc.allowPrivilegeEscalation, false);
  assert.equal(sc.readOnlyRootFilesystem, true);
  assert.deepEqual(sc.capabilities?.drop, ['ALL']);
  assert.deepEqual([...(sc.capabilities?.add ?? [])].sort(), [...expectCaps].sort());
  // Every hostPath is mounted read-only, and only /proc and tracefs come from the host.
  const hostVolumes = spec.volumes.filter((v) => v.hostPath).map((v) => v.name);
  assert.deepEqual(spec.volumes.filter((v) => v.hostPath).map((v) => v.hostPath!.path).sort(), ['/proc', '/sys/kernel/tracing']);
  for (const m of c.volumeMounts ?? []) if (hostVolumes.includes(m.name)) assert.equal(m.readOnly, true, `${m.mountPath} read-only`);
  // Probes on the agent's own health endpoints, on the port its --health-addr listens on.
  const healthPort = c.ports!.find((p) => p.name === 'health')!.containerPort;
  assert.deepEqual(c.livenessProbe?.httpGet, { path: '/healthz', port: 'health' });
  assert.deepEqual(c.readinessProbe?.httpGet, { path: '/readyz', port: 'health' });
  assert.ok(c.args?.includes(`--health-addr=0.0.0.0:${healthPort}`));
  for (const k of ['cpu', 'memory']) {
    assert.ok(c.resources?.requests?.[k], `requests.${k}`);
    assert.ok(c.resources?.limits?.[k], `limits.${k}`);
  }
  // A repeated env name silently overrides the first entry, and server-side apply refuses the object.
  const envNames = (c.env ?? []).map((e) => e.name);
  assert.deepEqual(envNames.filter((n, i) => envNames.indexOf(n) !== i), [], 'env names repeated');
  const nodeOptions = c.env!.find((e) => e.name === 'NODE_OPTIONS')!.value!;
  assert.equal(nodeOptions, '--max-old-space-size=160 --max-semi-space-size=2');
  // Node refuses some V8 flags in NODE_OPTIONS (e.g. --no-maglev) and exits before the agent runs: try them.
  const node = spawnSync(process.execPath, ['-e', '0'], { env: { ...process.env, NODE_OPTIONS: nodeOptions }, encoding: 'utf8' });
  assert.equal(node.status, 0, `node refuses the DaemonSet's NODE_OPTIONS: ${node.stderr.trim()}`);
  const downward = Object.fromEntries((c.env ?? []).filter((e) => e.valueFrom?.fieldRef).map((e) => [e.name, e.valueFrom!.fieldRef!.fieldPath]));
  assert.deepEqual(downward, { NODE_NAME: 'spec.nodeName', POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace', POD_UID: 'metadata.uid' });
  const strategy = (ds as unknown as { spec: { updateStrategy: { rollingUpdate: { maxSurge: unknown; maxUnavailable: unknown } } } }).spec.updateStrategy;
  assert.equal(strategy.rollingUpdate.maxSurge, 0, 'never two agents on a node');
  assert.ok(strategy.rollingUpdate.maxUnavailable, 'a rolling-update budget');
  // The runtime's default seccomp profile (measured enough on containerd: test/e2e/node-product.test.ts), and no
  // AppArmor profile by default (a kubelet on a node without AppArmor rejects the Pod).
  assert.deepEqual(spec.securityContext, { seccompProfile: { type: 'RuntimeDefault' } });
  assert.equal(sc.seccompProfile, undefined, 'seccomp is set once, at Pod level');
  assert.equal(sc.appArmorProfile, undefined, 'no AppArmor profile by default');
}

test('agent DaemonSet: not privileged; drop ALL + BPF, PERFMON; read-only host mounts; probes, Downward API, tolerations', async () => {
  const [ds] = await baseObjects('agent-daemonset.yaml');
  checkAgentPolicy(ds!, ['BPF', 'PERFMON']);
});

test("agent DaemonSet: its flags and env are settings connlat accepts, and point at the gateway Service", async () => {
  const [ds] = await baseObjects('agent-daemonset.yaml');
  const c = podSpec(ds!).containers[0]!;
  const env = Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  const { command, config } = parseCommandLine(c.args!, env);
  assert.equal(command, 'run');
  assert.equal(config.source, 'auto');
  assert.equal(config.hostProc, '/host/proc');
  assert.equal(config.healthAddr, '0.0.0.0:9300');
  assert.ok(c.volumeMounts!.some((m) => m.mountPath === config.hostProc));
  assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://connlat-gateway.connlat.svc:4317');
  const service = (await baseObjects('gateway-deployment.yaml')).find((o) => o.kind === 'Service')!;
  assert.equal(`http://${service.metadata.name}.${service.metadata.namespace}.svc:4317`, env.OTEL_EXPORTER_OTLP_ENDPOINT);
});

test('embedded copies (kustomize configMapGenerator files, Helm files/) equal their sources; else run deploy/sync-config.sh', async () => {
  const pairs: Array<[string, string]> = [
    ['otel-config/gateway.yaml', 'deploy/kustomize/base/otel-config/gateway.yaml'],
    ['otel-config/gateway.yaml', 'deploy/helm/connlat/files/gateway.yaml'],
    ['otel-config/k8s-attributes.yaml', 'deploy/kustomize/base/otel-config/k8s-attributes.yaml'],
    ['otel-config/k8s-attributes.yaml', 'deploy/helm/connlat/files/k8s-attributes.yaml'],
    ['deploy/kustomize/base/agent-rbac.yaml', 'deploy/helm/connlat/files/agent-rbac.yaml'],
    ...['mimir-remote-write', 'vendor-apm', 'debug'].map((o): [string, string] => [`otel-config/${o}.yaml`, `deploy/helm/connlat/files/${o}.yaml`]),
  ];
  for (const [source, copy] of pairs) {
    const [a, b] = await Promise.all([readFile(join(repoRoot, source), 'utf8'), readFile(join(repoRoot, copy), 'utf8')]);
    assert.ok(a === b, `${copy} differs from ${source}: run deploy/sync-config.sh`);
  }
});

test('kustomize and Helm (default values, namespace.create=true) render the same objects', async (t) => {
  const tools = await renderTools();
  if (typeof tools === 'string') return t.skip(tools);
  const [k, h, helmDefault] = await Promise.all([renderKustomize(tools), renderHelm(tools, ['--set', 'namespace.create=true']), renderHelm(tools)]);
  // `helm install --create-namespace` (the namespace must exist before Helm stores the release) renders all but it.
  assert.deepEqual(helmDefault, h.filter((o) => o.kind !== 'Namespace'));
  const kMap = byKey(k);
  const hMap = byKey(h);
  assert.deepEqual([...hMap.keys()].sort(), [...kMap.keys()].sort());
  for (const [key, obj] of kMap) assert.deepEqual(hMap.get(key), obj, key);
  t.diagnostic(`${kMap.size} objects: ${[...kMap.keys()].sort().join(', ')}`);
  // What the brief asks to exist, by kind.
  const kinds = new Set(k.map((o) => o.kind));
  for (const kind of ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'Deployment', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'ConfigMap', 'PriorityClass']) {
    assert.ok(kinds.has(kind), kind);
  }
  // The gateway mounts the generated (hash-suffixed) ConfigMap, whose data are the two source files.
  const cm = k.find((o) => o.kind === 'ConfigMap')!;
  assert.match(cm.metadata.name, /^connlat-gateway-config-[a-z0-9]{10}$/);
  const data = (cm as unknown as { data: Record<string, string> }).data;
  assert.equal(data['gateway.yaml'], await readFile(join(repoRoot, 'otel-config/gateway.yaml'), 'utf8'));
  assert.equal(data['k8s-attributes.yaml'], await readFile(join(repoRoot, 'otel-config/k8s-attributes.yaml'), 'utf8'));
  const gateway = k.find((o) => o.kind === 'Deployment')!;
  const volumes = (podSpec(gateway).volumes as Array<{ configMap?: { name: string } }>).filter((v) => v.configMap);
  assert.deepEqual(volumes.map((v) => v.configMap!.name), [cm.metadata.name]);
  checkAgentPolicy(k.find((o) => o.kind === 'DaemonSet')!, ['BPF', 'PERFMON']);
});

test('Helm values: kernel switches add SYS_RESOURCE / SYS_ADMIN; another namespace moves every namespaced object', async (t) => {
  const tools = await renderTools();
  if (typeof tools === 'string') return t.skip(tools);
  const old = await renderHelm(tools, ['--set', 'namespace.create=true', '--set', 'agent.kernel.before511=true', '--set', 'agent.kernel.before58=true', '--set', 'agent.clusterName=prod-eu'], 'observability');
  const ds = old.find((o) => o.kind === 'DaemonSet')!;
  checkAgentPolicy(ds, ['BPF', 'PERFMON', 'SYS_RESOURCE', 'SYS_ADMIN']);
  const env = podSpec(ds).containers[0]!.env!;
  assert.deepEqual(env.find((e) => e.name === 'CONNLAT_CLUSTER_NAME'), { name: 'CONNLAT_CLUSTER_NAME', value: 'prod-eu' });
  assert.equal(env.find((e) => e.name === 'OTEL_EXPORTER_OTLP_ENDPOINT')!.value, 'http://connlat-gateway.observability.svc:4317');
  const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PriorityClass']);
  for (const o of old) {
    if (o.kind === 'Namespace') assert.equal(o.metadata.name, 'observability');
    else if (clusterScoped.has(o.kind)) assert.equal(o.metadata.namespace, undefined, o.kind);
    else assert.equal(o.metadata.namespace, 'observability', `${o.kind}/${o.metadata.name}`);
    for (const s of (o as { subjects?: Array<{ namespace?: string }> }).subjects ?? []) assert.equal(s.namespace, 'observability');
  }
  // A Localhost seccomp profile instead of the runtime's default.
  const localhost = await renderHelm(tools, ['--set', 'agent.seccompProfile.type=Localhost', '--set', 'agent.seccompProfile.localhostProfile=profiles/connlat.json']);
  assert.deepEqual(podSpec(localhost.find((o) => o.kind === 'DaemonSet')!).securityContext, { seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/connlat.json' } });
});

test('Helm values: AppArmor where nodes have it; capabilities; OTLP endpoint; gateway overlays join the ConfigMap, its hash and the args', async (t) => {
  const tools = await renderTools();
  if (typeof tools === 'string') return t.skip(tools);
  const apparmor = await renderHelm(tools, ['--set', 'agent.appArmorProfile.type=RuntimeDefault']);
  const agent = podSpec(apparmor.find((o) => o.kind === 'DaemonSet')!).containers[0]!;
  assert.deepEqual(agent.securityContext!.appArmorProfile, { type: 'RuntimeDefault' });

  // The capability list and the agents' OTLP endpoint are values too (the node tests remove CAP_BPF with it).
  const noBpf = await renderHelm(tools, ['--set', 'agent.capabilities={PERFMON}', '--set', 'agent.otlpEndpoint=http://10.96.0.20:4317']);
  const noBpfAgent = podSpec(noBpf.find((o) => o.kind === 'DaemonSet')!).containers[0]!;
  assert.deepEqual(noBpfAgent.securityContext!.capabilities, { drop: ['ALL'], add: ['PERFMON'] });
  assert.equal(noBpfAgent.env!.find((e) => e.name === 'OTEL_EXPORTER_OTLP_ENDPOINT')!.value, 'http://10.96.0.20:4317');

  const plain = await renderHelm(tools);
  const withOverlays = await renderHelm(tools, ['--set', 'gateway.overlays={mimir-remote-write,debug}']);
  const cm = (objs: K8sObject[]) => objs.find((o) => o.kind === 'ConfigMap') as K8sObject & { data: Record<string, string> };
  assert.deepEqual(Object.keys(cm(withOverlays).data).sort(), ['debug.yaml', 'gateway.yaml', 'k8s-attributes.yaml', 'mimir-remote-write.yaml']);
  assert.equal(cm(withOverlays).data['mimir-remote-write.yaml'], await readFile(join(repoRoot, 'otel-config/mimir-remote-write.yaml'), 'utf8'));
  assert.notEqual(cm(withOverlays).metadata.name, cm(plain).metadata.name, 'a different config rolls the gateway');
  const gw = podSpec(withOverlays.find((o) => o.kind === 'Deployment')!);
  assert.deepEqual(gw.containers[0]!.args, ['--config=/conf/gateway.yaml', '--config=/conf/k8s-attributes.yaml', '--config=/conf/mimir-remote-write.yaml', '--config=/conf/debug.yaml']);
  assert.equal((gw.volumes as Array<{ configMap?: { name: string } }>).find((v) => v.configMap)!.configMap!.name, cm(withOverlays).metadata.name);

  await assert.rejects(renderHelm(tools, ['--set', 'gateway.overlays={agent-rbac}']), /gateway\.overlays: "agent-rbac" is not an overlay this chart ships \(mimir-remote-write, vendor-apm, debug\)/);
});

test('helm lint --strict', async (t) => {
  const tools = await renderTools();
  if (typeof tools === 'string') return t.skip(tools);
  const { code, output } = await helmLint(tools);
  assert.equal(code, 0, output);
});

/** The persistent-queue facts of otel-config/gateway.yaml: file_storage's default directory, the default queue size
 * (bytes) and the backend exporters that queue on it. */
async function gatewayQueue(): Promise<{ directory: string; queueBytes: number; exporters: string[] }> {
  type Exporter = { sending_queue?: { storage?: string; sizer?: string; queue_size?: string }; retry_on_failure?: { max_elapsed_time?: string } };
  const cfg = parseYaml(await readFile(join(repoRoot, 'otel-config/gateway.yaml'), 'utf8')) as {
    extensions: { file_storage: { directory: string; create_directory: boolean; compaction: { directory: string } } };
    exporters: Record<string, Exporter>;
    service: { extensions: string[] };
  };
  const envDefault = (v: string, name: string) => {
    const m = new RegExp(`^\\$\\{env:${name}:-([^}]+)\\}$`).exec(v);
    assert.ok(m, `${v} is \${env:${name}:-default}`);
    return m[1]!;
  };
  const fs = cfg.extensions.file_storage;
  assert.ok(cfg.service.extensions.includes('file_storage'), 'file_storage is enabled');
  assert.equal(fs.create_directory, true);
  assert.equal(fs.compaction.directory, fs.directory, 'compaction writes next to the queue (the root filesystem is read-only)');
  const exporters = Object.keys(cfg.exporters);
  let queueBytes = 0;
  for (const [name, e] of Object.entries(cfg.exporters)) {
    assert.equal(e.sending_queue?.storage, 'file_storage', `${name} queues on disk`);
    assert.equal(e.sending_queue?.sizer, 'bytes', `${name} queue measured in bytes`);
    assert.equal(e.retry_on_failure?.max_elapsed_time, '0s', `${name} retries until delivered`);
    queueBytes = Number(envDefault(e.sending_queue.queue_size!, 'CONNLAT_GATEWAY_QUEUE_BYTES'));
  }
  return { directory: envDefault(fs.directory, 'CONNLAT_GATEWAY_STORAGE_DIR'), queueBytes, exporters };
}

const BINARY_UNITS: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };
function quantityBytes(q: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)$/.exec(q);
  assert.ok(m, `quantity ${q}`);
  return Number(m[1]) * BINARY_UNITS[m[2]!]!;
}

/** The gateway Pod's queue volume and where its container mounts it. */
function queueVolume(objs: K8sObject[]): { volume: Volume; mountPath: string; env: Container['env']; fsGroup: unknown } {
  const spec = podSpec(objs.find((o) => o.kind === 'Deployment')!);
  const c = spec.containers[0]!;
  const mount = c.volumeMounts!.find((m) => m.name === 'queue');
  assert.ok(mount, 'the gateway mounts a volume named queue');
  assert.notEqual(mount.readOnly, true);
  return { volume: spec.volumes.find((v) => v.name === 'queue')!, mountPath: mount.mountPath, env: c.env, fsGroup: spec.securityContext?.fsGroup };
}

test('gateway queue: every backend exporter queues on file_storage; the volume sits at its directory and holds every full queue', async () => {
  const { directory, queueBytes, exporters } = await gatewayQueue();
  assert.equal(exporters.length, 6);
  const { volume, mountPath, fsGroup } = queueVolume(await baseObjects('gateway-deployment.yaml'));
  assert.equal(mountPath, directory, "mounted at file_storage's default directory");
  assert.equal(fsGroup, 10001, 'writable by the gateway user whatever the volume kind');
  // Every exporter full at once, plus one compaction copy (it compacts one file at a time), with bbolt's file at up
  // to 1.4x the queued bytes (RELIABILITY.md: measured 1.14x for a full 256 MiB queue, 1.38x at 50 MB).
  const needed = (exporters.length + 1) * queueBytes * 1.4;
  const limit = quantityBytes(volume.emptyDir!.sizeLimit!);
  assert.ok(limit >= needed, `emptyDir sizeLimit ${volume.emptyDir!.sizeLimit} < ${Math.ceil(needed / 2 ** 20)} Mi needed`);
});

test('Helm values: gateway.queue sets the queue size (env) and replaces the volume', async (t) => {
  const tools = await renderTools();
  if (typeof tools === 'string') return t.skip(tools);
  const { directory } = await gatewayQueue();
  const custom = await renderHelm(tools, [
    '--set', 'gateway.queue.bytesPerExporter=1073741824',
    '--set', 'gateway.queue.volume.emptyDir=null',
    '--set', 'gateway.queue.volume.ephemeral.volumeClaimTemplate.spec.accessModes={ReadWriteOnce}',
    '--set', 'gateway.queue.volume.ephemeral.volumeClaimTemplate.spec.resources.requests.storage=8Gi',
  ]);
  const { volume, mountPath, env } = queueVolume(custom);
  assert.equal(mountPath, directory);
  assert.deepEqual(volume, { name: 'queue', ephemeral: { volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } } } } } });
  assert.deepEqual(env!.find((e) => e.name === 'CONNLAT_GATEWAY_QUEUE_BYTES'), { name: 'CONNLAT_GATEWAY_QUEUE_BYTES', value: '1073741824' });
  const plain = queueVolume(await renderHelm(tools));
  assert.equal(plain.env!.find((e) => e.name === 'CONNLAT_GATEWAY_QUEUE_BYTES'), undefined, "default: gateway.yaml's own size");
});

test('every backend exporter in otel-config/ (gateway.yaml and each overlay) queues on file_storage and retries until delivered', async () => {
  // prometheusremotewrite has no sending_queue in v0.148.0 (RELIABILITY.md); debug is not a backend.
  const noQueue = /^(prometheusremotewrite|debug)(\/|$)/;
  const dir = join(repoRoot, 'otel-config');
  const checked: string[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.yaml') && f !== 'builder-config.yaml')) {
    const cfg = parseYaml(await readFile(join(dir, file), 'utf8')) as { exporters?: Record<string, { sending_queue?: Record<string, unknown>; retry_on_failure?: Record<string, unknown> } | null> };
    for (const [name, e] of Object.entries(cfg.exporters ?? {})) {
      if (noQueue.test(name)) continue;
      assert.deepEqual(
        { storage: e?.sending_queue?.storage, sizer: e?.sending_queue?.sizer, queue_size: e?.sending_queue?.queue_size, max_elapsed_time: e?.retry_on_failure?.max_elapsed_time },
        { storage: 'file_storage', sizer: 'bytes', queue_size: '${env:CONNLAT_GATEWAY_QUEUE_BYTES:-268435456}', max_elapsed_time: '0s' },
        `${file}: ${name}`,
      );
      checked.push(`${file}:${name}`);
    }
  }
  assert.ok(checked.length >= 6, checked.join(', '));
});
