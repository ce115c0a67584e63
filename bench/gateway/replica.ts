// One gateway replica as deploy/kustomize/base/gateway-deployment.yaml runs it, for bench/gateway.ts: its container's
// CPU and memory limits as a cgroup (v1 on this machine), its GOMEMLIMIT, GOMAXPROCS=1 (what Go 1.26 derives from a
// 1-CPU limit), its queue directory (the emptyDir) in a folder the caller owns, and what to read about it while it runs.
import { mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { baseEnv, loopbackEnv, ManagedProcess, OTEL_CONFIG_DIR, REPO_ROOT, waitFor } from '../../test/support/collector/collector.ts';

const DEPLOYMENT_FILE = join(REPO_ROOT, 'deploy/kustomize/base/gateway-deployment.yaml');
const MIB = 1 << 20;

export interface ShippedLimits {
  cpuCores: number;
  memoryMiB: number;
  goMemLimitMiB: number;
  queueVolumeMiB: number;
}

/** Kubernetes quantities as they appear in the manifest: "1", "500m", "512Mi", "1Gi" (and Go's "400MiB"). */
function quantity(text: string, unit: 'cores' | 'MiB'): number {
  const m = /^(\d+(?:\.\d+)?)(m|Mi|MiB|Gi|GiB)?$/.exec(String(text));
  if (!m) throw new Error(`${DEPLOYMENT_FILE}: cannot read the quantity ${JSON.stringify(text)}`);
  const n = Number(m[1]);
  if (unit === 'cores') return m[2] === 'm' ? n / 1000 : n;
  return m[2]?.startsWith('Gi') ? n * 1024 : n;
}

/** The gateway container's limits, GOMEMLIMIT and queue volume size, read from the shipped Deployment. */
export function shippedLimits(): ShippedLimits {
  for (const doc of parseAllDocuments(readFileSync(DEPLOYMENT_FILE, 'utf8'))) {
    const o = doc.toJS() as any;
    if (o?.kind !== 'Deployment' || o.metadata?.name !== 'connlat-gateway') continue;
    const spec = o.spec.template.spec;
    const c = spec.containers[0];
    const goMemLimit = c.env.find((e: any) => e.name === 'GOMEMLIMIT')?.value;
    const queue = spec.volumes.find((v: any) => v.name === 'queue')?.emptyDir?.sizeLimit;
    if (!goMemLimit || !queue) throw new Error(`${DEPLOYMENT_FILE}: no GOMEMLIMIT env or queue emptyDir in the gateway Deployment`);
    return {
      cpuCores: quantity(c.resources.limits.cpu, 'cores'),
      memoryMiB: quantity(c.resources.limits.memory, 'MiB'),
      goMemLimitMiB: quantity(goMemLimit, 'MiB'),
      queueVolumeMiB: quantity(queue, 'MiB'),
    };
  }
  throw new Error(`${DEPLOYMENT_FILE}: no Deployment connlat-gateway`);
}

/** What the kernel says about the replica at one moment: its process, its cgroup, its queue directory. */
export interface ReplicaSample {
  cpuS: number;
  rssMiB: number;
  rssAnonMiB: number;
  rssFileMiB: number;
  /** bytes this process caused to be written to storage (/proc/<pid>/io write_bytes) */
  writeBytes: number;
  cgroupMiB: number;
  cgroupPeakMiB: number;
  cgroupAnonMiB: number;
  cgroupCacheMiB: number;
  failcnt: number;
  throttledS: number;
  /** time its threads waited on a run queue for a CPU (schedstat of every thread): a shared machine's share */
  runQueueWaitS: number;
  /** the queue files' sizes, and the blocks they take on disk */
  queueFilesMiB: number;
  queueDiskMiB: number;
}

const num = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? 0);

export interface Replica {
  pid: number;
  grpc: string;
  selfMetricsUrl: string;
  limits: ShippedLimits;
  running(): boolean;
  tail(lines: number): string;
  sample(): ReplicaSample;
  /** forgets the cgroup's peak, so the next sample's peak is this step's */
  resetPeak(): void;
  stop(): Promise<void>;
}

/**
 * Starts the collector (gateway.yaml, or `base`, plus `overlays`) in a new cgroup with the Deployment's limits, memory overridden
 * by `memoryMiB` (GOMEMLIMIT scaled with it), its queues in `queueDir`, its cgroup weighing `cpuShares` against the
 * machine's other tasks (more than the kernel's 1024 keeps a busy shared machine from starving it below its limit, as
 * a node with room would not); resolves once health_check answers.
 */
export async function startReplica(binary: string, opts: { name: string; memoryMiB?: number; cpuShares?: number; queueDir: string; base?: string; overlays: string[]; env: Record<string, string> }): Promise<Replica> {
  const shipped = shippedLimits();
  const memoryMiB = opts.memoryMiB ?? shipped.memoryMiB;
  // The Deployment's GOMEMLIMIT is a fixed share of its memory limit (400 of 512 MiB); keep that share.
  const limits = { ...shipped, memoryMiB, goMemLimitMiB: Math.round((shipped.goMemLimitMiB * memoryMiB) / shipped.memoryMiB) };
  const mem = `/sys/fs/cgroup/memory/${opts.name}`;
  const cpu = `/sys/fs/cgroup/cpu/${opts.name}`;
  for (const d of [mem, cpu]) mkdirSync(d, { recursive: true });
  writeFileSync(join(mem, 'memory.limit_in_bytes'), String(memoryMiB * MIB));
  writeFileSync(join(cpu, 'cpu.cfs_period_us'), '100000');
  writeFileSync(join(cpu, 'cpu.cfs_quota_us'), String(Math.round(limits.cpuCores * 100000)));
  writeFileSync(join(cpu, 'cpu.shares'), String(opts.cpuShares ?? 1024));
  const { grpc, health, selfMetrics, http: _http, ...ports } = await loopbackEnv();
  const env = baseEnv({ ...ports, ...opts.env, CONNLAT_GATEWAY_STORAGE_DIR: opts.queueDir, GOMAXPROCS: String(Math.max(1, Math.floor(limits.cpuCores))), GOMEMLIMIT: `${limits.goMemLimitMiB}MiB` });
  const configs = [opts.base ?? join(OTEL_CONFIG_DIR, 'gateway.yaml'), ...opts.overlays].map((c) => `--config=${c}`);
  // A shell joins the cgroups and then execs the collector, so the collector's first allocation is already limited.
  const proc = new ManagedProcess('otelcol-connlat', '/bin/sh', ['-c', `echo $$ > ${mem}/cgroup.procs && echo $$ > ${cpu}/cgroup.procs && exec "$0" "$@"`, binary, ...configs], { env });
  const removeCgroups = () => { for (const d of [mem, cpu]) try { rmdirSync(d); } catch { /* still has a task: left for the kernel */ } };
  try {
    await waitFor('the collector health_check', async () => {
      if (!proc.running) throw new Error(`collector exited early:\n${proc.tail()}`);
      const res = await fetch(`http://${health}/`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    }, 30_000);
  } catch (err) {
    await proc.stop('SIGTERM', 15_000);
    removeCgroups();
    throw err;
  }
  const pid = proc.child.pid!;
  const read = (file: string) => { try { return readFileSync(file, 'utf8'); } catch { return ''; } };
  return {
    pid, grpc, limits,
    selfMetricsUrl: `http://${selfMetrics}/metrics`,
    running: () => proc.running,
    tail: (lines) => proc.tail(lines),
    sample: () => {
      const stat = read(`/proc/${pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const status = read(`/proc/${pid}/status`);
      const memStat = read(join(mem, 'memory.stat'));
      let files = 0, blocks = 0;
      for (const f of safeList(opts.queueDir)) {
        const s = statSync(join(opts.queueDir, f), { throwIfNoEntry: false });
        if (s?.isFile()) { files += s.size; blocks += s.blocks * 512; }
      }
      return {
        cpuS: (Number(fields[11]) + Number(fields[12])) / 100, // utime + stime in USER_HZ
        rssMiB: num(status, /VmRSS:\s+(\d+)/) / 1024,
        rssAnonMiB: num(status, /RssAnon:\s+(\d+)/) / 1024,
        rssFileMiB: num(status, /RssFile:\s+(\d+)/) / 1024,
        writeBytes: num(read(`/proc/${pid}/io`), /^write_bytes: (\d+)/m),
        cgroupMiB: Number(read(join(mem, 'memory.usage_in_bytes'))) / MIB,
        cgroupPeakMiB: Number(read(join(mem, 'memory.max_usage_in_bytes'))) / MIB,
        cgroupAnonMiB: num(memStat, /^total_rss (\d+)/m) / MIB,
        cgroupCacheMiB: num(memStat, /^total_cache (\d+)/m) / MIB,
        failcnt: Number(read(join(mem, 'memory.failcnt'))),
        throttledS: num(read(join(cpu, 'cpu.stat')), /^throttled_time (\d+)/m) / 1e9,
        runQueueWaitS: safeList(`/proc/${pid}/task`).reduce((w, t) => w + Number(read(`/proc/${pid}/task/${t}/schedstat`).split(' ')[1] ?? 0), 0) / 1e9,
        queueFilesMiB: files / MIB,
        queueDiskMiB: blocks / MIB,
      };
    },
    resetPeak: () => writeFileSync(join(mem, 'memory.max_usage_in_bytes'), '0'),
    stop: async () => {
      await proc.stop('SIGTERM', 15_000);
      removeCgroups();
    },
  };
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The gateway's own counters (service.telemetry, level normal), summed over exporters and receivers. */
export interface SelfCounters {
  points: number;
  logs: number;
  sentPoints: number;
  sentLogs: number;
  receiverRefused: number;
  enqueueFailed: number;
  sendFailed: number;
  /** bytes in the backend exporters' queues now (sizer: bytes) */
  queuedBytes: number;
}

export async function selfCounters(url: string): Promise<SelfCounters> {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text();
  const sum = (...names: string[]) => text.split('\n').filter((l) => names.some((n) => l.startsWith(`${n}{`) || l.startsWith(`${n} `)))
    .reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return {
    points: sum('otelcol_receiver_accepted_metric_points_total', 'otelcol_receiver_accepted_metric_points'),
    logs: sum('otelcol_receiver_accepted_log_records_total', 'otelcol_receiver_accepted_log_records'),
    sentPoints: sum('otelcol_exporter_sent_metric_points_total', 'otelcol_exporter_sent_metric_points'),
    sentLogs: sum('otelcol_exporter_sent_log_records_total', 'otelcol_exporter_sent_log_records'),
    receiverRefused: sum('otelcol_receiver_refused_metric_points_total', 'otelcol_receiver_refused_log_records_total', 'otelcol_receiver_refused_metric_points', 'otelcol_receiver_refused_log_records'),
    enqueueFailed: sum('otelcol_exporter_enqueue_failed_metric_points_total', 'otelcol_exporter_enqueue_failed_log_records_total', 'otelcol_exporter_enqueue_failed_metric_points', 'otelcol_exporter_enqueue_failed_log_records'),
    sendFailed: sum('otelcol_exporter_send_failed_metric_points_total', 'otelcol_exporter_send_failed_log_records_total', 'otelcol_exporter_send_failed_metric_points', 'otelcol_exporter_send_failed_log_records'),
    queuedBytes: sum('otelcol_exporter_queue_size'),
  };
}
