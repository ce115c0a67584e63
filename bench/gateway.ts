// npx node bench/gateway.ts: one gateway replica (our otelcol-connlat build, otel-config/gateway.yaml as shipped,
// Mimir and Loki pointed at a local OTLP/HTTP sink) under many simulated agents sending real OTLP/gRPC every 10 s.
//
// The requests are the agent's own: a real agent (src/cli.ts, replay source, OTLP export) sends one metrics and one
// logs request to a capturing receiver; its data points are then replicated into SERIES series per agent with the
// default metric attribute set filled in as Kubernetes enrichment fills it (server.address/port, process, and
// namespace/type/owner of both ends), and its log record into LOGS records per agent per 10 s. The gateway holds no
// per-series state (memory_limiter, resource, routing, then each exporter's persistent queue, which batches), so
// every agent sends the same bytes.
//
// The collector runs as deploy/kustomize/base/gateway-deployment.yaml runs it (bench/gateway/replica.ts reads its
// limits from there): in a cgroup (v1 here) with the container's CPU and memory limits, its GOMEMLIMIT, GOMAXPROCS=1,
// and its file_storage queues in a folder this bench makes and removes (the Pod's emptyDir: on disk, not tmpfs).
// What is reported per core is data points (and log records) per CPU-second of the collector process (/proc), with
// the receiver's accepted counters from its self-metrics; the load generator shares the machine's two cores, which is
// why CPU-seconds, not wall rates, count. Memory: RSS (anonymous and file-mapped: bbolt maps its files) and the
// cgroup's peak, which also holds the queue files' page cache. Disk: the queue files, the bytes queued, and what the
// process wrote to storage.
// Env: BENCH_AGENTS (steps, default 100,300,600,1000), BENCH_SERIES (default 300), BENCH_LOGS (default 20),
// BENCH_STEP_S (default 40), BENCH_CONFIG (another base config in place of gateway.yaml, e.g. an earlier revision
// for a baseline in the same session), BENCH_OVERLAY (an extra --config merged over gateway.yaml), BENCH_MEMORY_MIB (the
// container memory limit, default the Deployment's; GOMEMLIMIT keeps the Deployment's share of it), BENCH_CPU_SHARES (the
// collector cgroup's cpu.shares, default the kernel's 1024; e.g. 10240 on a busy shared machine, so that it gets up to
// its 1-CPU limit as on a node with room: runQueueWaitPerS says how long its threads waited for a CPU).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { findCollector, REPO_ROOT } from '../test/support/collector/collector.ts';
import { startOtlpReceiver } from '../test/support/otlp/receiver.ts';
import { type ReplicaSample, type SelfCounters, selfCounters, startReplica } from './gateway/replica.ts';
import { startSink } from './gateway/sink.ts';

/** A positive whole number from the environment; anything else ends the bench (status 2) naming the variable. */
function envCount(name: string, fallback: string, text = process.env[name] ?? fallback): number {
  const n = Number(text);
  if (Number.isInteger(n) && n > 0) return n;
  process.stderr.write(`bench/gateway.ts: ${name}=${JSON.stringify(text)}: expected a positive whole number\n`);
  process.exit(2);
}
const AGENTS = (process.env.BENCH_AGENTS ?? '100,300,600,1000').split(',').map((a) => envCount('BENCH_AGENTS', '', a));
const SERIES = envCount('BENCH_SERIES', '300');
const LOGS = envCount('BENCH_LOGS', '20');
const STEP_S = envCount('BENCH_STEP_S', '40');
const MEMORY_MIB = process.env.BENCH_MEMORY_MIB === undefined ? undefined : envCount('BENCH_MEMORY_MIB', '');
const CPU_SHARES = envCount('BENCH_CPU_SHARES', '1024');
const INTERVAL_MS = 10_000;
const log = (m: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)} load ${loadavg()[0]!.toFixed(1)}] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const PROTO_ROOT = join(REPO_ROOT, 'test/fixtures/proto/');
const defs = protoLoader.loadSync(
  ['opentelemetry/proto/collector/metrics/v1/metrics_service.proto', 'opentelemetry/proto/collector/logs/v1/logs_service.proto'],
  { keepCase: false, longs: String, enums: Number, defaults: false, oneofs: false, includeDirs: [PROTO_ROOT] },
);
const METRICS = defs['opentelemetry.proto.collector.metrics.v1.MetricsService'] as grpc.ServiceDefinition;
const LOGS_SVC = defs['opentelemetry.proto.collector.logs.v1.LogsService'] as grpc.ServiceDefinition;

/** One metrics and one logs request from a real agent. */
async function captureAgentRequests(dir: string): Promise<{ metrics: any; logs: any }> {
  const receiver = await startOtlpReceiver();
  const lines = ['PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)'];
  // tcpconnlat's own column widths (as bench/run.ts renders them); all slow, so each is also a log record
  for (let i = 0; i < 50; i++) lines.push(`${String(1000 + i).padEnd(6)} ${'curl'.padEnd(12)} 4  ${'10.244.0.5'.padEnd(16)} ${`10.96.0.${(i % 5) + 10}`.padEnd(16)} ${'80'.padEnd(5)} ${(150 + i).toFixed(2)}`);
  const file = join(dir, 'replay.txt');
  writeFileSync(file, `${lines.join('\n')}\n`);
  // Not spawnSync: the receiver answers from this process's event loop.
  const agent = spawn(process.execPath, [join(REPO_ROOT, 'bin/connlat.js'), '--source', `file:${file}`, '--export', 'otlp', '--otlp-endpoint', receiver.endpoint,
    '--kubernetes', 'off', '--health-addr', 'off', '--view', 'off', '--slow-ms', '100', '--cluster-name', 'bench'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  agent.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const status = await new Promise<number | null>((resolve) => agent.on('exit', resolve));
  await receiver.close();
  if (receiver.metrics.length === 0 || receiver.logs.length === 0) throw new Error(`agent sent no OTLP (exit ${status}): ${stderr.slice(-500)}`);
  return { metrics: receiver.metrics.at(-1), logs: receiver.logs[0] };
}

const str = (key: string, value: string) => ({ key, value: { stringValue: value } });
const int = (key: string, value: number) => ({ key, value: { intValue: String(value) } });

/** SERIES histogram points (and a failure counter for one in ten) with the default attribute set, enriched. */
function agentMetrics(template: any): Buffer {
  const req = structuredClone(template);
  for (const sm of req.resourceMetrics[0].scopeMetrics) {
    for (const m of sm.metrics) {
      const data = m.histogram ?? m.sum;
      if (!data || !['tcp.connect.duration', 'tcp.connect.failures'].includes(m.name)) continue;
      const proto = data.dataPoints[0];
      const n = m.name === 'tcp.connect.duration' ? SERIES : Math.ceil(SERIES / 10);
      data.dataPoints = Array.from({ length: n }, (_, i) => ({
        ...proto,
        attributes: [
          str('network.type', 'ipv4'), str('network.transport', 'tcp'), str('server.address', `10.${64 + (i >> 8)}.${i & 255}.${(i * 7) & 255}`), int('server.port', 8080),
          str('process.executable.name', `app-${i % 7}`),
          str('k8s.src.namespace', `team-${i % 13}`), str('k8s.src.type', 'Pod'), str('k8s.src.owner.name', `frontend-${i % 13}`), str('k8s.src.owner.type', 'Deployment'),
          str('k8s.dst.namespace', `team-${i % 29}`), str('k8s.dst.type', 'Pod'), str('k8s.dst.owner.name', `backend-${i % 29}`), str('k8s.dst.owner.type', 'Deployment'),
        ],
      }));
    }
  }
  return METRICS.Export!.requestSerialize(req);
}

function agentLogs(template: any): Buffer {
  const req = structuredClone(template);
  const sl = req.resourceLogs[0].scopeLogs[0];
  sl.logRecords = Array.from({ length: LOGS }, (_, i) => sl.logRecords[i % sl.logRecords.length]);
  return LOGS_SVC.Export!.requestSerialize(req);
}


const pointsIn = (req: any): number => (req.resourceMetrics ?? []).reduce((s: number, rm: any) => s + (rm.scopeMetrics ?? []).reduce((t: number, sm: any) =>
  t + (sm.metrics ?? []).reduce((u: number, m: any) => u + ((m.histogram ?? m.sum ?? m.gauge)?.dataPoints?.length ?? 0), 0), 0), 0);
const recordsIn = (req: any): number => (req.resourceLogs ?? []).reduce((s: number, rl: any) => s + (rl.scopeLogs ?? []).reduce((t: number, sl: any) => t + (sl.logRecords?.length ?? 0), 0), 0);
const mib = (n: number) => Math.round(n * 10) / 10;

/** One step's figures from the samples at its start and end, the samples between, and the counters. */
function stepFigures(agents: number, s: number, loadgen: { cpuCores: number; loopDelayP99Ms: number }, c0: SelfCounters, c1: SelfCounters, p0: ReplicaSample, p1: ReplicaSample, during: ReplicaSample[], queuedMax: number, errors: number, sends: number) {
  const cpu = p1.cpuS - p0.cpuS;
  const points = c1.points - c0.points;
  const logs = c1.logs - c0.logs;
  const max = (f: (x: ReplicaSample) => number) => mib(Math.max(...during.map(f)));
  return {
    agents, load: loadavg()[0], sendsPerS: Math.round(sends / s), loadgen,
    pointsPerS: Math.round(points / s), logsPerS: Math.round(logs / s),
    sentPointsPerS: Math.round((c1.sentPoints - c0.sentPoints) / s), sentLogsPerS: Math.round((c1.sentLogs - c0.sentLogs) / s),
    cpuCores: Math.round((cpu / s) * 1000) / 1000, throttledS: Math.round((p1.throttledS - p0.throttledS) * 10) / 10,
    runQueueWaitPerS: Math.round(((p1.runQueueWaitS - p0.runQueueWaitS) / s) * 100) / 100,
    pointsPerCpuS: cpu > 0 ? Math.round(points / cpu) : null, logsPerCpuS: cpu > 0 ? Math.round(logs / cpu) : null,
    rssMiB: mib(p1.rssMiB), rssPeakMiB: max((x) => x.rssMiB), rssAnonMiB: mib(p1.rssAnonMiB), rssFileMiB: mib(p1.rssFileMiB),
    cgroupPeakMiB: mib(p1.cgroupPeakMiB), cgroupCacheMiB: mib(p1.cgroupCacheMiB), cgroupAnonMiB: mib(p1.cgroupAnonMiB), failcnt: p1.failcnt - p0.failcnt,
    receiverRefused: c1.receiverRefused - c0.receiverRefused, enqueueFailed: c1.enqueueFailed - c0.enqueueFailed, sendFailed: c1.sendFailed - c0.sendFailed, grpcErrors: errors,
    queuedBytesMax: queuedMax, queuedBytesEnd: c1.queuedBytes,
    queueFilesMiB: [mib(p0.queueFilesMiB), mib(p1.queueFilesMiB)], queueFilesMaxMiB: max((x) => x.queueFilesMiB), queueDiskMiB: mib(p1.queueDiskMiB),
    writtenMiBPerS: mib((p1.writeBytes - p0.writeBytes) / s / (1 << 20)), writtenBytesPerPoint: points > 0 ? Math.round((p1.writeBytes - p0.writeBytes) / points) : null,
  };
}

async function main(): Promise<void> {
  const found = await findCollector();
  if (found.path === undefined) throw new Error(found.skip);
  // The agent's replay file and the gateway's queues; removed however the bench ends.
  const dir = mkdtempSync(join(tmpdir(), 'connlat-gateway-bench-'));
  try {
    await measure(found.path, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(binary: string, dir: string): Promise<void> {
  const { metrics: mTemplate, logs: lTemplate } = await captureAgentRequests(dir);
  const metricsBytes = agentMetrics(mTemplate);
  const logsBytes = agentLogs(lTemplate);
  const pointsPerRequest = pointsIn(METRICS.Export!.requestDeserialize(metricsBytes));
  log(`one agent per 10 s: ${pointsPerRequest} data points (${metricsBytes.length} B), ${LOGS} log records (${logsBytes.length} B)`);

  const sink = await startSink((b) => pointsIn(METRICS.Export!.requestDeserialize(b)), (b) => recordsIn(LOGS_SVC.Export!.requestDeserialize(b)));
  const replica = await startReplica(binary, {
    name: `connlat-gateway-bench-${process.pid}`, memoryMiB: MEMORY_MIB, cpuShares: CPU_SHARES, queueDir: join(dir, 'queue'), base: process.env.BENCH_CONFIG,
    overlays: process.env.BENCH_OVERLAY ? [process.env.BENCH_OVERLAY] : [],
    env: { CONNLAT_MIMIR_OTLP_ENDPOINT: sink.url, CONNLAT_LOKI_OTLP_ENDPOINT: sink.url, CONNLAT_TEMPO_OTLP_GRPC_ENDPOINT: '127.0.0.1:9', CONNLAT_GATEWAY_LOG_LEVEL: 'warn' },
  }).catch((err: unknown) => {
    sink.close();
    throw err;
  });
  log(`replica: ${JSON.stringify(replica.limits)}`);
  const results: Record<string, unknown>[] = [];
  const clients: grpc.Client[] = [];
  const timers: NodeJS.Timeout[] = [];
  let errors = 0;
  let sends = 0;
  const errorKinds = new Map<string, number>();
  try {
    const raw = (b: Buffer) => b;
    const send = (c: grpc.Client, path: string, body: Buffer) => {
      sends++;
      c.makeUnaryRequest(path, raw, raw, body, (err) => {
        if (!err) return;
        errors++;
        const kind = `${err.code} ${err.details.slice(0, 60)}`;
        errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
      });
    };
    for (const agents of AGENTS) {
      replica.resetPeak();
      // Each simulated agent: its own channel, a metrics and a logs export every 10 s, phases spread over the interval.
      while (clients.length < agents) {
        const c = new grpc.Client(replica.grpc, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
        clients.push(c);
        timers.push(setTimeout(() => {
          const tick = () => (send(c, '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export', metricsBytes), send(c, '/opentelemetry.proto.collector.logs.v1.LogsService/Export', logsBytes));
          tick();
          timers.push(setInterval(tick, INTERVAL_MS));
        }, Math.random() * INTERVAL_MS));
      }
      await sleep(INTERVAL_MS + 2000); // every agent has sent at least once
      const c0 = await selfCounters(replica.selfMetricsUrl).catch(() => undefined);
      if (c0 === undefined) {
        results.push({ agents, died: replica.tail(5) });
        log(`gateway unresponsive at ${agents} agents: ${replica.tail(5)}`);
        break;
      }
      const p0 = replica.sample();
      const [e0, s0] = [errors, sends];
      const t0 = performance.now();
      const u0 = process.cpuUsage();
      const loop = monitorEventLoopDelay({ resolution: 20 });
      loop.enable();
      const during: ReplicaSample[] = [p0];
      let queuedMax = c0.queuedBytes;
      for (let i = 1; i <= STEP_S; i++) {
        await sleep(1000);
        during.push(replica.sample());
        if (i % 5 === 0) queuedMax = Math.max(queuedMax, (await selfCounters(replica.selfMetricsUrl).catch(() => undefined))?.queuedBytes ?? 0);
      }
      const s = (performance.now() - t0) / 1000;
      loop.disable();
      const u1 = process.cpuUsage(u0);
      const loadgen = { cpuCores: Math.round(((u1.user + u1.system) / 1e6 / s) * 100) / 100, loopDelayP99Ms: Math.round(loop.percentile(99) / 1e6) };
      const c1 = await selfCounters(replica.selfMetricsUrl).catch(() => undefined);
      if (c1 === undefined) {
        results.push({ agents, died: replica.tail(5) });
        log(`gateway unresponsive at ${agents} agents: ${replica.tail(5)}`);
        break;
      }
      const p1 = replica.sample();
      const step = stepFigures(agents, s, loadgen, c0, c1, p0, p1, [...during, p1], Math.max(queuedMax, c1.queuedBytes), errors - e0, sends - s0);
      results.push(step);
      log(JSON.stringify(step));
    }
  } finally {
    for (const t of timers) clearTimeout(t);
    for (const c of clients) c.close();
    await replica.stop();
    sink.close();
  }
  const summary = {
    limits: replica.limits, cpuShares: CPU_SHARES, series: SERIES, logsPer10s: LOGS, pointsPerRequest, metricsBytes: metricsBytes.length, logsBytes: logsBytes.length,
    sink: { metrics: sink.metrics, logs: sink.logs }, grpcErrorKinds: Object.fromEntries(errorKinds), steps: results,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  // The bench checks itself: at its lowest load the gateway must take everything and deliver it.
  const first = results[0];
  const problem = first === undefined || 'died' in first ? 'the gateway did not survive the first step'
    : (first.receiverRefused as number) + (first.enqueueFailed as number) + (first.grpcErrors as number) > 0 ? `the gateway refused data at ${first.agents} agents`
    : sink.metrics.decodedItems === 0 || sink.logs.decodedItems === 0 ? 'no data points or log records reached the sink' : undefined;
  if (problem) {
    process.stderr.write(`bench/gateway.ts: ${problem}\n`);
    process.exitCode = 1;
  }
}

await main().catch((err: unknown) => {
  process.stderr.write(`bench/gateway.ts: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
