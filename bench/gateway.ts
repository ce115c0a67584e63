// npx node bench/gateway.ts: one gateway replica (our otelcol-connlat build, otel-config/gateway.yaml as shipped,
// Mimir and Loki pointed at a local OTLP/HTTP sink) under many simulated agents sending real OTLP/gRPC every 10 s.
//
// The requests are the agent's own: a real agent (src/cli.ts, replay source, OTLP export) sends one metrics and one
// logs request to a capturing receiver; its data points are then replicated into SERIES series per agent with the
// default metric attribute set filled in as Kubernetes enrichment fills it (server.address/port, process, and
// namespace/type/owner of both ends), and its log record into LOGS records per agent per 10 s. The gateway holds no
// per-series state (memory_limiter, resource, routing, otlp_http batching in its queue), so every agent sends the same bytes.
//
// The collector runs as the Deployment runs it: in a cgroup (v1 here) limited to 1 CPU and 512 MiB, GOMEMLIMIT=400MiB,
// GOMAXPROCS=1, so memory_limiter sees the container limit. What is reported per core is data points (and log
// records) per CPU-second of the collector process (/proc), with the receiver's accepted counters from its
// self-metrics; the load generator shares the machine's two cores, which is why CPU-seconds, not wall rates, count.
// Env: BENCH_AGENTS (steps, default 100,300,600,1000), BENCH_SERIES (default 300), BENCH_LOGS (default 20),
// BENCH_STEP_S (default 40), BENCH_OVERLAY (an extra --config merged over gateway.yaml), BENCH_MEMORY_MIB (the
// container memory limit, default 512 as deployed; GOMEMLIMIT is set to 80% of it, as the Deployment does).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { mkdirSync, rmdirSync } from 'node:fs';
import { findCollector, loopbackEnv, ManagedProcess, OTEL_CONFIG_DIR, REPO_ROOT, baseEnv, waitFor } from '../test/support/collector/collector.ts';
import { startOtlpReceiver } from '../test/support/otlp/receiver.ts';
import { procSample } from './kube-scale/procs.ts';

const AGENTS = (process.env.BENCH_AGENTS ?? '100,300,600,1000').split(',').map(Number);
const SERIES = Number(process.env.BENCH_SERIES ?? 300);
const LOGS = Number(process.env.BENCH_LOGS ?? 20);
const STEP_S = Number(process.env.BENCH_STEP_S ?? 40);
const INTERVAL_MS = 10_000;
const MEMORY_MIB = Number(process.env.BENCH_MEMORY_MIB ?? 512);
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

/** Counts of what the gateway's own receiver accepted and its exporters sent, from its self-metrics. */
async function selfCounters(url: string): Promise<{ points: number; logs: number; sentPoints: number; sentLogs: number; refused: number }> {
  const text = await (await fetch(url)).text();
  const sum = (name: string) => text.split('\n').filter((l) => l.startsWith(name)).reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  return {
    points: sum('otelcol_receiver_accepted_metric_points'),
    logs: sum('otelcol_receiver_accepted_log_records'),
    sentPoints: sum('otelcol_exporter_sent_metric_points'),
    sentLogs: sum('otelcol_exporter_sent_log_records'),
    refused: sum('otelcol_receiver_refused_metric_points') + sum('otelcol_receiver_refused_log_records'),
  };
}

const CGROUP = `connlat-gateway-bench-${process.pid}`;
const CGROUP_DIRS = [`/sys/fs/cgroup/memory/${CGROUP}`, `/sys/fs/cgroup/cpu/${CGROUP}`];

/** The collector in its own cgroup (the Deployment's limits: 1 CPU, 512 MiB), joined by a shell that then execs it. */
async function startLimitedCollector(binary: string, extra: Record<string, string>) {
  const [mem, cpu] = CGROUP_DIRS as [string, string];
  for (const d of CGROUP_DIRS) mkdirSync(d, { recursive: true });
  writeFileSync(join(mem, 'memory.limit_in_bytes'), String(MEMORY_MIB << 20));
  writeFileSync(join(cpu, 'cpu.cfs_period_us'), '100000');
  writeFileSync(join(cpu, 'cpu.cfs_quota_us'), '100000');
  const { grpc, health, selfMetrics, http: _http, ...ports } = await loopbackEnv();
  const env = baseEnv({ ...ports, ...extra, GOMAXPROCS: '1', GOMEMLIMIT: `${Math.round(MEMORY_MIB * 0.78)}MiB` });
  const configs = [join(OTEL_CONFIG_DIR, 'gateway.yaml'), ...(process.env.BENCH_OVERLAY ? [process.env.BENCH_OVERLAY] : [])].map((c) => `--config=${c}`);
  const proc = new ManagedProcess('otelcol-connlat', '/bin/sh', ['-c', `echo $$ > ${mem}/cgroup.procs && echo $$ > ${cpu}/cgroup.procs && exec "$0" "$@"`, binary, ...configs], { env });
  await waitFor('the collector health_check', async () => {
    if (!proc.running) throw new Error(`collector exited early:\n${proc.tail()}`);
    const res = await fetch(`http://${health}/`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
    return res?.status === 200 ? true : undefined;
  }, 30_000);
  return { process: proc, grpc, selfMetricsUrl: `http://${selfMetrics}/metrics`, stop: async () => {
    await proc.stop('SIGTERM', 15_000);
    for (const d of CGROUP_DIRS) rmdirSync(d);
  } };
}

async function main(): Promise<void> {
  const found = await findCollector();
  if (found.path === undefined) throw new Error(`bench/gateway.ts: ${found.skip}`);
  const dir = mkdtempSync(join(tmpdir(), 'connlat-gateway-bench-'));
  const { metrics: mTemplate, logs: lTemplate } = await captureAgentRequests(dir);
  const metricsBytes = agentMetrics(mTemplate);
  const logsBytes = agentLogs(lTemplate);
  const decoded = METRICS.Export!.requestDeserialize(metricsBytes) as any;
  const pointsPerRequest = decoded.resourceMetrics[0].scopeMetrics.reduce((s: number, sm: any) => s + sm.metrics.reduce((t: number, m: any) => t + (m.histogram ?? m.sum ?? m.gauge)?.dataPoints.length, 0), 0);
  log(`one agent per 10 s: ${pointsPerRequest} data points (${metricsBytes.length} B), ${LOGS} log records (${logsBytes.length} B)`);

  // The backends: one OTLP/HTTP sink standing in for Mimir and Loki (an empty protobuf answer is a full success).
  let sinkBytes = 0;
  const sink = createServer((req, res) => {
    req.on('data', (c: Buffer) => (sinkBytes += c.length));
    req.on('end', () => res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const sinkUrl = `http://127.0.0.1:${(sink.address() as { port: number }).port}/otlp`;
  const collector = await startLimitedCollector(found.path, { CONNLAT_MIMIR_OTLP_ENDPOINT: sinkUrl, CONNLAT_LOKI_OTLP_ENDPOINT: sinkUrl, CONNLAT_TEMPO_OTLP_GRPC_ENDPOINT: '127.0.0.1:9', CONNLAT_GATEWAY_LOG_LEVEL: 'warn', CONNLAT_GATEWAY_STORAGE_DIR: join(dir, 'queue') });
  const pid = collector.process.child.pid;
  const results: unknown[] = [];
  const clients: grpc.Client[] = [];
  const timers: NodeJS.Timeout[] = [];
  let errors = 0;
  try {
    const raw = (b: Buffer) => b;
    const send = (c: grpc.Client, path: string, body: Buffer) =>
      c.makeUnaryRequest(path, raw, raw, body, (err) => (err ? errors++ : undefined));
    for (const agents of AGENTS) {
      // Each simulated agent: its own channel, a metrics and a logs export every 10 s, phases spread over the interval.
      while (clients.length < agents) {
        const c = new grpc.Client(collector.grpc, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
        clients.push(c);
        const first = Math.random() * INTERVAL_MS;
        timers.push(setTimeout(() => {
          const tick = () => (send(c, '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export', metricsBytes), send(c, '/opentelemetry.proto.collector.logs.v1.LogsService/Export', logsBytes));
          tick();
          timers.push(setInterval(tick, INTERVAL_MS));
        }, first));
      }
      await sleep(INTERVAL_MS + 2000); // every agent has sent at least once
      const c0 = await selfCounters(collector.selfMetricsUrl).catch(() => undefined);
      if (c0 === undefined) {
        results.push({ agents, died: collector.process.tail(5) });
        log(`gateway died at ${agents} agents: ${collector.process.tail(5)}`);
        break;
      }
      const p0 = procSample(pid);
      const t0 = performance.now();
      await sleep(STEP_S * 1000);
      const s = (performance.now() - t0) / 1000;
      const c1 = await selfCounters(collector.selfMetricsUrl).catch(() => undefined);
      if (c1 === undefined) {
        results.push({ agents, died: collector.process.tail(5) });
        log(`gateway died at ${agents} agents: ${collector.process.tail(5)}`);
        break;
      }
      const p1 = procSample(pid);
      const cpu = p1.cpuS - p0.cpuS;
      const step = {
        agents, pointsPerS: (c1.points - c0.points) / s, logsPerS: (c1.logs - c0.logs) / s, sentPointsPerS: (c1.sentPoints - c0.sentPoints) / s,
        refused: c1.refused - c0.refused, grpcErrors: errors, cpuPerS: cpu / s, rssMiB: p1.rssMiB, load: loadavg()[0],
      };
      results.push(step);
      log(JSON.stringify(step));
    }
  } finally {
    for (const t of timers) clearTimeout(t);
    for (const c of clients) c.close();
    await collector.stop();
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify({ memoryMiB: MEMORY_MIB, series: SERIES, logsPer10s: LOGS, pointsPerRequest, metricsBytes: metricsBytes.length, logsBytes: logsBytes.length, sinkBytes, steps: results })}\n`);
}

await main();
