// A real, throwaway Kubernetes control plane for tests: etcd + kube-apiserver (built from upstream by
// scripts/build-kube.sh) on free 127.0.0.1 ports, with fresh certificates and service-account keys in
// a temp folder. No kube-controller-manager, scheduler or kubelet: objects are stored, validated,
// admitted, authorized and watched for real, but nothing reconciles them.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { kubeBinaries, kubeSkipReason, type KubeBinaries } from './binaries.ts';
import { makePki } from './certs.ts';
import {
  createObjects,
  kubeCall,
  kubeRequest,
  makeKubeConfig,
  requestServiceAccountToken,
  serverSideApply,
  serviceAccountSubject,
  subjectAccessReview,
  type AccessDecision,
  type AccessQuery,
  type ApplyOptions,
  type CreateOptions,
  type KubeRequestOptions,
  type KubeResponse,
  type Manifest,
  type Subject,
} from './client.ts';
import { freePort } from '../net.ts';

export { kubeSkipReason, kubeBinaries, type KubeBinaries } from './binaries.ts';
export * from './client.ts';

export interface KubeHarnessOptions {
  /**
   * Admission plugins to turn off. Default ["ServiceAccount"]: with no kube-controller-manager nobody
   * creates a namespace's "default" ServiceAccount, and that plugin rejects every pod without one.
   */
  disableAdmissionPlugins?: string[];
  /** Extra kube-apiserver flags, e.g. ["--feature-gates=..."]. */
  apiserverArgs?: string[];
  /** Extra etcd flags, e.g. ["--quota-backend-bytes=8589934592"] for a store larger than etcd's 2 GiB default. */
  etcdArgs?: string[];
  /** How long start() may take, up to /readyz ok. Default 90 s (typically 5-9 s on a loaded 2-core VM). */
  startTimeoutMs?: number;
}

const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const live = new Set<KubeHarness>();

const spawnErrors = new WeakMap<ChildProcess, Error>();

/** Spawns with stdout+stderr to `logFile`; setpriv's parent-death signal kills it even if node is SIGKILLed. */
function spawnLogged(binary: string, args: string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    const [command, argv] = existsSync('/usr/bin/setpriv')
      ? ['/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', binary, ...args]]
      : [binary, args];
    const child = spawn(command, argv, { stdio: ['ignore', fd, fd] });
    child.once('error', (error) => spawnErrors.set(child, error)); // e.g. EACCES; never an unhandled 'error'
    return child;
  } finally {
    closeSync(fd);
  }
}

function logTail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function stopProcess(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

// Last-resort cleanup when a test file ends without calling stop() (a crash, an uncaught error, Ctrl-C).
function cleanupSync(): void {
  for (const harness of live) harness.killSync();
}
process.on('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, function onSignal() {
    cleanupSync();
    process.off(signal, onSignal);
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  });
}

export class KubeHarness {
  /** Temp folder holding certs, kubeconfig, etcd data and the two logs; removed by stop(). */
  readonly dir: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** Admin kubeconfig file (user in group system:masters), data inlined. */
  readonly kubeconfigPath: string;
  /** The same admin identity as a client-node KubeConfig. */
  readonly kubeConfig: KubeConfig;
  readonly binaries: KubeBinaries;
  /** Wall time from start() to /readyz = ok, in milliseconds. */
  readonly startupMs: number;
  readonly caPem: string;
  private readonly processes: ChildProcess[];
  /** how kube-apiserver was started, for restartApiserver() */
  private readonly apiserverCommand: { binary: string; args: string[]; log: string };
  private stopped = false;

  private constructor(init: {
    dir: string;
    server: string;
    kubeconfigPath: string;
    kubeConfig: KubeConfig;
    binaries: KubeBinaries;
    startupMs: number;
    caPem: string;
    processes: ChildProcess[];
    apiserverCommand: { binary: string; args: string[]; log: string };
  }) {
    this.dir = init.dir;
    this.server = init.server;
    this.kubeconfigPath = init.kubeconfigPath;
    this.kubeConfig = init.kubeConfig;
    this.binaries = init.binaries;
    this.startupMs = init.startupMs;
    this.caPem = init.caPem;
    this.processes = init.processes;
    this.apiserverCommand = init.apiserverCommand;
  }

  /** Starts etcd and kube-apiserver and resolves once /readyz is ok. Throws (with log tails) if they fail. */
  static async start(options: KubeHarnessOptions = {}): Promise<KubeHarness> {
    const skip = kubeSkipReason();
    if (skip !== undefined) throw new Error(skip);
    const started = performance.now();
    const binaries = kubeBinaries();
    // A free port can be taken by another process between probing and binding: try again with new ones.
    for (let attempt = 1; ; attempt++) {
      const dir = await mkdtemp(join(tmpdir(), 'connlat-kube-'));
      const processes: ChildProcess[] = [];
      try {
        return await KubeHarness.boot(binaries, { dir, processes }, options, started);
      } catch (error) {
        await Promise.all(processes.map((p) => stopProcess(p, 2000)));
        await rm(dir, { recursive: true, force: true });
        if (attempt >= 3 || !/address already in use/.test(String(error))) throw error;
      }
    }
  }

  private static async boot(
    binaries: KubeBinaries,
    { dir, processes }: { dir: string; processes: ChildProcess[] },
    options: KubeHarnessOptions,
    started: number,
  ): Promise<KubeHarness> {
    const deadline = started + (options.startTimeoutMs ?? 90_000);
    const [etcdPort, etcdPeerPort, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcdLog = join(dir, 'etcd.log');
    const apiLog = join(dir, 'kube-apiserver.log');

    const etcd = spawnLogged(binaries.etcd, [
      '--name=connlat-test',
      `--data-dir=${join(dir, 'etcd-data')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=connlat-test=${peerUrl}`,
      '--unsafe-no-fsync', // a throwaway store: durability is not under test, latency is saved
      '--log-level=warn',
      ...(options.etcdArgs ?? []),
    ], etcdLog);
    processes.push(etcd);
    const pki = await makePki(dir); // while etcd starts

    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      `--api-audiences=${SERVICE_ACCOUNT_ISSUER}`,
      '--authorization-mode=Node,RBAC',
      '--anonymous-auth=false',
      '--service-cluster-ip-range=10.96.0.0/16',
      // The "kubernetes" Endpoints may not hold a loopback address: without this the reconciler logs errors.
      '--endpoint-reconciler-type=none',
      '--allow-privileged=true',
      `--disable-admission-plugins=${(options.disableAdmissionPlugins ?? ['ServiceAccount']).join(',')}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      '--v=1',
      ...(options.apiserverArgs ?? []),
    ];
    const apiserver = spawnLogged(binaries.kubeApiserver, apiserverArgs, apiLog);
    processes.push(apiserver);

    const caPem = await readFile(pki.caCert, 'utf8');
    const server = `https://127.0.0.1:${apiPort}`;
    const adminUser = {
      name: 'connlat-test-admin',
      certData: Buffer.from(await readFile(pki.adminCert)).toString('base64'),
      keyData: Buffer.from(await readFile(pki.adminKey)).toString('base64'),
    };
    const kubeConfig = makeKubeConfig(server, caPem, adminUser);
    const kubeconfigPath = join(dir, 'admin.kubeconfig');
    await writeFile(kubeconfigPath, kubeConfig.exportConfig(), { mode: 0o600 });

    const died = (child: ChildProcess, name: string, log: string): string | undefined => {
      const spawnError = spawnErrors.get(child);
      if (spawnError !== undefined) return `${name} could not be started: ${spawnError.message}`;
      return child.exitCode !== null || child.signalCode !== null
        ? `${name} exited (${child.exitCode ?? child.signalCode}) during startup; last log lines:\n${logTail(log)}`
        : undefined;
    };
    let last = '';
    for (;;) {
      const failure = died(etcd, 'etcd', etcdLog) ?? died(apiserver, 'kube-apiserver', apiLog);
      if (failure !== undefined) throw new Error(failure);
      try {
        const ready = await kubeRequest(kubeConfig, 'GET', '/readyz');
        if (ready.status === 200) break;
        last = `/readyz HTTP ${ready.status}: ${ready.text.slice(0, 300)}`;
      } catch (error) {
        last = String(error);
      }
      if (performance.now() > deadline) {
        throw new Error(`kube-apiserver not ready after ${options.startTimeoutMs ?? 90_000} ms (${last}); log:\n${logTail(apiLog)}`);
      }
      await sleep(100);
    }
    const harness = new KubeHarness({
      dir, server, kubeconfigPath, kubeConfig, binaries, caPem, processes,
      apiserverCommand: { binary: binaries.kubeApiserver, args: apiserverArgs, log: apiLog },
      startupMs: Math.round(performance.now() - started),
    });
    live.add(harness);
    return harness;
  }

  /** Raw request as the admin (or as `kubeConfig`); see kubeRequest. Never throws on HTTP errors. */
  async request(method: string, path: string, opts: KubeRequestOptions & { kubeConfig?: KubeConfig } = {}): Promise<KubeResponse> {
    return await kubeRequest(opts.kubeConfig ?? this.kubeConfig, method, path, opts);
  }

  /** Like request(), but returns the parsed 2xx body and throws KubeApiError (server's message) otherwise. */
  async call<T = unknown>(method: string, path: string, opts: KubeRequestOptions & { kubeConfig?: KubeConfig } = {}): Promise<T> {
    return await kubeCall<T>(opts.kubeConfig ?? this.kubeConfig, method, path, opts);
  }

  /** Server-side apply of a YAML/JSON manifest or objects, as the admin unless `kubeConfig` is given. */
  async apply(
    manifest: Manifest,
    opts: ApplyOptions & { kubeConfig?: KubeConfig } = {},
  ): Promise<KubernetesObject[]> {
    return await serverSideApply(opts.kubeConfig ?? this.kubeConfig, manifest, opts);
  }

  /** Plain create (POST), as the admin unless `kubeConfig` is given; fails if the object exists. */
  async create(
    manifest: Manifest,
    opts: CreateOptions & { kubeConfig?: KubeConfig } = {},
  ): Promise<KubernetesObject[]> {
    return await createObjects(opts.kubeConfig ?? this.kubeConfig, manifest, opts);
  }

  /** Creates (applies) a namespace; returns its name. */
  async createNamespace(name: string): Promise<string> {
    await this.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    return name;
  }

  /**
   * A KubeConfig that authenticates as the ServiceAccount with a real bound token minted through the
   * TokenRequest API (the ServiceAccount must exist). The token authenticator, not a header, decides who it is.
   */
  async serviceAccountKubeConfig(namespace: string, name: string, expirationSeconds = 3600): Promise<KubeConfig> {
    const token = await requestServiceAccountToken(this.kubeConfig, namespace, name, expirationSeconds);
    return makeKubeConfig(this.server, this.caPem, { name: `sa-${namespace}-${name}`, token });
  }

  /** The admin identity impersonating `user` (Impersonate-User header). A "system:serviceaccount:ns:name"
   *  user gets that ServiceAccount's groups from the server. */
  impersonatingKubeConfig(user: string): KubeConfig {
    const admin = this.kubeConfig.getCurrentUser();
    if (admin === null) throw new Error('harness KubeConfig has no user');
    return makeKubeConfig(this.server, this.caPem, { ...admin, name: `as-${user}`, impersonateUser: user });
  }

  /** SubjectAccessReview by the admin for `subject` (use serviceAccountSubject(ns, name) for a ServiceAccount). */
  async subjectAccessReview(subject: Subject, query: AccessQuery): Promise<AccessDecision> {
    return await subjectAccessReview(this.kubeConfig, subject, query);
  }

  /** SubjectAccessReview for a ServiceAccount. */
  async serviceAccountCan(namespace: string, name: string, query: AccessQuery): Promise<AccessDecision> {
    return await this.subjectAccessReview(serviceAccountSubject(namespace, name), query);
  }

  /** Process ids of etcd and kube-apiserver (setpriv execs them, so these are the servers), for CPU and memory. */
  pids(): { etcd: number | undefined; apiserver: number | undefined } {
    return { etcd: this.processes[0]?.pid, apiserver: this.processes[1]?.pid };
  }

  /**
   * Kills kube-apiserver (SIGKILL: a crash, no graceful end of its watches) and starts it again on the same port and
   * etcd; resolves once /readyz is ok. Its watch caches start empty at etcd's current revision, so a client resuming
   * a watch from an older resourceVersion is answered 410 Gone and must relist (bench/kube-scale.ts forces one so).
   */
  async restartApiserver(timeoutMs = 90_000): Promise<void> {
    const old = this.processes[1]!;
    const exited = new Promise<void>((resolveExit) => (old.exitCode !== null || old.signalCode !== null ? resolveExit() : old.once('exit', () => resolveExit())));
    old.kill('SIGKILL');
    await exited;
    const { binary, args, log } = this.apiserverCommand;
    const next = spawnLogged(binary, args, log);
    this.processes[1] = next;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (next.exitCode !== null || next.signalCode !== null) throw new Error(`kube-apiserver exited (${next.exitCode ?? next.signalCode}) on restart:\n${logTail(log)}`);
      try {
        if ((await kubeRequest(this.kubeConfig, 'GET', '/readyz')).status === 200) return;
      } catch {}
      if (performance.now() > deadline) throw new Error(`kube-apiserver not ready ${timeoutMs} ms after a restart:\n${logTail(log)}`);
      await sleep(100);
    }
  }

  /** The tail of a component's log, for assertion messages. */
  logTail(component: 'etcd' | 'kube-apiserver', lines = 40): string {
    return logTail(join(this.dir, `${component}.log`), lines);
  }

  /** Stops kube-apiserver then etcd (SIGTERM, SIGKILL after 10 s) and removes the temp folder. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const child of [...this.processes].reverse()) await stopProcess(child, 10_000);
    live.delete(this);
    if (process.env.CONNLAT_KUBE_KEEP !== '1') await rm(this.dir, { recursive: true, force: true });
  }

  /** Synchronous kill + removal, for process exit handlers. */
  killSync(): void {
    for (const child of this.processes) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts a harness. Prefer startKubeHarnessFor(t) in tests: it skips when unbuilt and stops on t.after. */
export async function startKubeHarness(options?: KubeHarnessOptions): Promise<KubeHarness> {
  return await KubeHarness.start(options);
}

interface TestContextLike {
  skip(message?: string): void;
  after(fn: () => unknown): void;
}

/**
 * For a node:test test or suite context: if the binaries are not built, calls t.skip(reason + build
 * command) and returns undefined (the caller must return); otherwise starts a harness that t.after stops.
 */
export async function startKubeHarnessFor(t: TestContextLike, options?: KubeHarnessOptions): Promise<KubeHarness | undefined> {
  const skip = kubeSkipReason();
  if (skip !== undefined) {
    t.skip(skip);
    return undefined;
  }
  const harness = await KubeHarness.start(options);
  t.after(() => harness.stop());
  return harness;
}
