// npx node bench/kube-scale.ts: the agent at Kubernetes' scale limits, against a real kube-apiserver + etcd
// (test/support/kube). Loads a synthetic cluster (bench/kube-scale/cluster.ts) in stages, and at each stage:
//   - starts each agent build (as `npm run build` builds it for the image) under the DaemonSet's heap cap, with the
//     kubeconfig and --node-name node-0, and records sync time, live heap after GC, RSS and peak RSS, and the API server's CPU
//     spent serving that one agent's lists;
// then at the last stage replaces 1% of the pods per minute (delete + create + status + EndpointSlice) and, for each
// agent build in turn, starts it under that churn, then forces a relist: the API server is killed and restarted
// (harness.restartApiserver), its watch caches start over at etcd's current revision, and the agent's watches resuming
// from older resourceVersions get 410 Gone. The relist's peak RSS is read apart from the sync's (VmHWM reset through
// /proc/<pid>/clear_refs before the restart). Then it adds N watchers with the agent's exact watches (in-process
// Reflectors, each with its own node-scoped pod watch, started from the current resourceVersion) in steps, measuring API server CPU and RSS and
// the watch events it sends (apiserver_watch_events_total). Results: JSON on stdout's last line and a table.
//
// Env: BENCH_STAGES (pods, default 10000,50000,150000); BENCH_AGENTS (name=ref[+node flag...], ref a git commit or
// "worktree", e.g. before=2abaf00,after=worktree,after-semi2=worktree+--max-semi-space-size=2; default
// after=worktree); BENCH_CHURN_S (default 180); BENCH_CHURN_PCT (pods replaced per minute, % of the cluster, default
// 1); BENCH_FANOUT (watcher counts, default 0,10,25,50); BENCH_STEP_S (seconds per fan-out step, default 60);
// BENCH_HEAP_MB (default 160, the DaemonSet's --max-old-space-size); BENCH_RELIST (default 1; 0: no forced relist).
// Builds are made when first measured, after the cluster is loaded (a worktree's code as it is then).
// The etcd store is raised to 8 GiB (--quota-backend-bytes): etcd's 2 GiB default is near at 150k pods with history.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLUSTER_POD_SELECTOR } from '../src/enrich/kube-enricher.ts';
import type { Keyed } from '../src/enrich/compact.ts';
import { Reflector, type ReflectorSpec } from '../src/enrich/reflector.ts';
import { startKubeHarness, type KubeHarness } from '../test/support/kube/harness.ts';
import * as c from './kube-scale/cluster.ts';
import { fitLine, probeLines, procSample, watchCounters } from './kube-scale/procs.ts';

const env = process.env;
const STAGES = (env.BENCH_STAGES ?? '10000,50000,150000').split(',').map(Number);
const AGENTS = (env.BENCH_AGENTS ?? 'after=worktree').split(',').map((s) => {
  const at = s.indexOf('=');
  const [name, spec] = [s.slice(0, at), s.slice(at + 1)];
  const [ref, ...flags] = spec.split('+');
  return { name, ref: ref!, flags };
});
const CHURN_S = Number(env.BENCH_CHURN_S ?? 180);
const CHURN_PCT = Number(env.BENCH_CHURN_PCT ?? 1);
const FANOUT = (env.BENCH_FANOUT ?? '0,10,25,50').split(',').map(Number);
const STEP_S = Number(env.BENCH_STEP_S ?? 60);
const HEAP_MB = Number(env.BENCH_HEAP_MB ?? 160);
const RELIST = env.BENCH_RELIST !== '0';
const repo = fileURLToPath(new URL('..', import.meta.url));
const log = (msg: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)} load ${loadavg()[0]!.toFixed(1)}] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => b / 1024 / 1024;

/**
 * Builds the worktree or a commit (git archive) as its `npm run build` does: the esbuild bundle (scripts/bundle.ts,
 * what the image runs since issue 15) when the tree has one, else tsc with tsconfig.build.json; returns dist/cli.js.
 */
function build(dir: string, ref: string): string {
  const root = join(dir, ref.replace(/\W/g, '_'));
  const files = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json'];
  spawnSync('mkdir', ['-p', root]);
  if (ref === 'worktree') {
    if (existsSync(join(repo, 'scripts/bundle.ts'))) files.push('scripts');
    spawnSync('cp', ['-r', ...files.map((f) => join(repo, f)), root]);
  } else {
    if (spawnSync('git', ['-C', repo, 'cat-file', '-e', `${ref}:scripts/bundle.ts`]).status === 0) files.push('scripts/bundle.ts');
    const r = spawnSync('bash', ['-c', `git -C ${repo} archive ${ref} ${files.join(' ')} | tar -x -C ${root}`]);
    if (r.status !== 0) throw new Error(`git archive ${ref}: ${r.stderr}`);
  }
  symlinkSync(join(repo, 'node_modules'), join(root, 'node_modules'));
  const bundler = join(root, 'scripts/bundle.ts');
  const r = existsSync(bundler)
    ? spawnSync(process.execPath, [bundler, '--outdir', join(root, 'dist')], { encoding: 'utf8' })
    : spawnSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build of ${ref} failed: ${r.stdout}${r.stderr}`);
  return join(root, 'dist/cli.js');
}

interface Build {
  name: string;
  /** compiled on first use (after the cluster is loaded) */
  cli: () => string;
  /** extra node flags, as NODE_OPTIONS in the DaemonSet would give them */
  flags: string[];
}

interface AgentRun {
  agent: string;
  pods: number;
  synced: boolean;
  exited: string | undefined;
  syncS: number;
  liveHeapMiB: number;
  rssMiB: number;
  peakRssMiB: number;
  apiserverCpuS: number;
}

/** Starts an agent; resolves once every watch has listed (or it died, or 300 s passed). */
async function startAgent({ cli: compiled, flags }: Build, kube: KubeHarness, probeFile: string): Promise<{ child: ChildProcess; synced: Promise<string | undefined>; exit: Promise<string>; relists: () => string[] }> {
  const cli = compiled();
  const args = [`--max-old-space-size=${HEAP_MB}`, ...flags, '--expose-gc', '--import', join(repo, 'bench/kube-scale/memory-probe.ts'), cli,
    '--source', '-', '--export', 'otlp-json:/dev/null', '--kubeconfig', kube.kubeconfigPath, '--node-name', c.nodeName(0),
    '--health-addr', 'off', '--view', 'off', '--log-level', 'debug'];
  const child = spawn(process.execPath, args, { env: { ...env, BENCH_PROBE_FILE: probeFile, BENCH_PROBE_MS: '2000' }, stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  const relists: string[] = []; // "pods: relisted 150000" (after a 410 Gone): a second full list, and its memory
  const exit = new Promise<string>((resolve) => child.on('exit', (code, sig) => resolve(`exit ${code ?? sig}: ${stderr.split('\n').filter((l) => /heap|error|Error/.test(l)).slice(-2).join(' | ').slice(0, 300)}`)));
  const synced = new Promise<string | undefined>((resolve) => {
    const timer = setTimeout(() => resolve('not synced after 300 s'), 300_000);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      stderr = (stderr + d).slice(-20_000);
      for (const m of d.matchAll(/Kubernetes ([^:\n]+): relisted (\d+)/g)) relists.push(`${m[1]}: ${m[2]}`);
      if ((stderr.match(/: listed \d+/g) ?? []).length >= 7) clearTimeout(timer), resolve(undefined);
    });
    void exit.then((why) => (clearTimeout(timer), resolve(why)));
  });
  return { child, synced, exit, relists: () => relists };
}

/** Live heap: a full GC in the agent (the probe's SIGUSR2 handler), then its line. */
async function liveHeap(child: ChildProcess, probe: string): Promise<number> {
  child.kill('SIGUSR2');
  await sleep(3000); // a full GC of ~100 MiB on a loaded machine
  return probeLines(probe).filter((l) => l.gc).at(-1)?.heapUsed ?? 0;
}

async function measureAgent(build: Build, kube: KubeHarness, pods: number, dir: string): Promise<AgentRun> {
  const name = build.name;
  const probe = join(dir, `probe-${name}-${pods}.jsonl`);
  const api0 = procSample(kube.pids().apiserver);
  const t0 = performance.now();
  const a = await startAgent(build, kube, probe);
  const failed = await a.synced;
  const syncS = (performance.now() - t0) / 1000;
  const api1 = procSample(kube.pids().apiserver);
  let live = 0;
  if (failed === undefined) {
    await sleep(12_000); // a few probe lines after the sync
    live = await liveHeap(a.child, probe);
  }
  a.child.kill('SIGTERM');
  const exited = failed ?? undefined;
  await Promise.race([a.exit, sleep(15_000)]);
  a.child.kill('SIGKILL');
  const lines = probeLines(probe).filter((l) => !l.gc);
  return {
    agent: name, pods, synced: failed === undefined, exited, syncS,
    liveHeapMiB: mib(live), rssMiB: mib(lines.at(-1)?.rss ?? 0), peakRssMiB: mib(Math.max(0, ...lines.map((l) => l.peakRss))),
    apiserverCpuS: api1.cpuS - api0.cpuS,
  };
}

/** N watchers with the agent's exact watches (node-scoped pod watch for nodes 1..N), counting events, not storing. */
function startWatchers(kube: KubeHarness, from: number, n: number, rv: string, counter: { events: number }): Reflector<Keyed>[] {
  const out: Reflector<Keyed>[] = [];
  for (let i = from; i < from + n; i++) {
    const specs: Array<Pick<ReflectorSpec<Keyed>, 'path' | 'fieldSelector' | 'metadataOnly'>> = [
      { path: '/api/v1/pods', fieldSelector: CLUSTER_POD_SELECTOR },
      { path: '/api/v1/pods', fieldSelector: `spec.nodeName=${c.nodeName(i + 1)}` },
      { path: '/api/v1/services' },
      { path: '/api/v1/nodes' },
      { path: '/apis/discovery.k8s.io/v1/endpointslices' },
      { path: '/apis/apps/v1/replicasets', metadataOnly: true },
      { path: '/apis/batch/v1/jobs', metadataOnly: true },
    ];
    for (const s of specs) {
      const r = new Reflector<Keyed>(kube.kubeConfig, { ...s, compact: (o) => o as Keyed, upsert: () => counter.events++, remove: () => counter.events++, beginList: () => {}, endList: () => {} });
      r.resourceVersion = rv;
      // Runs until stopWatchers clears the resourceVersion (or a 410 does: a watcher never relists).
      const loop = async () => {
        while (r.resourceVersion !== '') await r.run(() => {}).catch((e: unknown) => (r.resourceVersion !== '' ? log(`watcher: ${String(e)}`) : undefined));
      };
      void loop();
      out.push(r);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-kube-scale-'));
  const results: Record<string, unknown> = { stages: [] as unknown[], machine: '2 vCPU shared with other engineers\' builds', load: [] as number[] };
  const built = new Map<string, string>();
  const builds: Build[] = AGENTS.map(({ name, ref, flags }) => ({
    name, flags,
    cli: () => {
      if (!built.has(ref)) {
        built.set(ref, build(dir, ref));
        log(`built ${ref} (${name}: ${[...flags, `--max-old-space-size=${HEAP_MB}`].join(' ')})`);
      }
      return built.get(ref)!;
    },
  }));
  const kube = await startKubeHarness({ etcdArgs: ['--quota-backend-bytes=8589934592'] });
  const loader = await c.Loader.create(kube.kubeConfig, 48);
  const state = new c.ClusterState(loader);
  try {
    for (const pods of STAGES) {
      const t0 = performance.now();
      const r0 = loader.requests;
      const api0 = procSample(kube.pids().apiserver);
      const etcd0 = procSample(kube.pids().etcd);
      await state.grow(pods);
      const loadS = (performance.now() - t0) / 1000;
      const api = procSample(kube.pids().apiserver);
      const etcd = procSample(kube.pids().etcd);
      const stage = { pods, nodes: state.nodes, workloads: state.workloads, loadS, requests: loader.requests - r0, apiserverCpuS: api.cpuS - api0.cpuS, etcdCpuS: etcd.cpuS - etcd0.cpuS, apiserverRssMiB: api.rssMiB, etcdRssMiB: etcd.rssMiB, agents: [] as AgentRun[] };
      log(`stage ${pods} pods loaded in ${loadS.toFixed(0)} s (${((loader.requests - r0) / loadS).toFixed(0)} req/s); apiserver RSS ${api.rssMiB.toFixed(0)} MiB, etcd RSS ${etcd.rssMiB.toFixed(0)} MiB`);
      await sleep(5000);
      for (const b of builds) {
        const run = await measureAgent(b, kube, pods, dir);
        stage.agents.push(run);
        log(`  ${b.name}: ${run.synced ? `synced in ${run.syncS.toFixed(1)} s` : `FAILED (${run.exited})`}; live heap ${run.liveHeapMiB.toFixed(1)} MiB, RSS ${run.rssMiB.toFixed(0)} MiB, peak RSS ${run.peakRssMiB.toFixed(0)} MiB; apiserver CPU for its lists ${run.apiserverCpuS.toFixed(1)} s`);
      }
      (results.stages as unknown[]).push(stage);
    }
    results.churn = await churnAndFanout(kube, loader, state, builds, dir);
  } finally {
    loader.close();
    await kube.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

/** 1% of the pods per minute replaced, in one-second batches; pause() waits for the batch in flight. */
function startChurn(state: c.ClusterState): { perSecond: number; replaced: () => number; pause: () => Promise<void>; resume: () => void; stop: () => Promise<void> } {
  const perSecond = (state.pods * CHURN_PCT) / 100 / 60;
  let stopped = false;
  let paused = false;
  let replaced = 0;
  let failed = 0;
  let batch: Promise<unknown> = Promise.resolve();
  const loop = (async () => {
    let owed = 0;
    let next = 0;
    while (!stopped) {
      const tick = performance.now();
      if (!paused) {
        owed += perSecond;
        const pods: number[] = [];
        for (; owed >= 1; owed--) pods.push((next = (next + 7919) % state.pods));
        // A request cut by the API server's restart fails that replacement only (the pod comes round again later).
        await (batch = Promise.all(pods.map((p) => state.replace(p).then(() => replaced++, (e: unknown) => (failed++ < 3 ? log(`churn: ${String(e).slice(0, 200)}`) : undefined)))));
      }
      await sleep(Math.max(0, 1000 - (performance.now() - tick)));
    }
  })();
  return {
    perSecond, replaced: () => replaced,
    pause: async () => void ((paused = true), await batch),
    resume: () => void (paused = false),
    stop: async () => void ((stopped = true), await loop),
  };
}

/** One build under churn: its sync and steady state, then a forced relist (API server restarted) measured apart. */
async function agentUnderChurn(kube: KubeHarness, loader: c.Loader, churn: ReturnType<typeof startChurn>, b: Build, dir: string): Promise<{ result: Record<string, unknown>; stop: () => Promise<void> }> {
  const probe = join(dir, `probe-churn-${b.name}.jsonl`);
  const agent = await startAgent(b, kube, probe);
  const syncFail = await agent.synced;
  log(`churn ${b.name}: ${churn.perSecond.toFixed(1)} pods/s replaced; agent ${syncFail ?? 'synced'}`);
  const churnStart = Date.now();
  const replaced0 = churn.replaced();
  // A live-heap reading every 30 s through the churn: its slope says whether replaced pods leave anything behind.
  const live: Array<[number, number]> = [];
  for (let s = 0; s < CHURN_S; s += 30) {
    await sleep(Math.min(30, CHURN_S - s) * 1000);
    live.push([(Date.now() - churnStart) / 60_000, mib(await liveHeap(agent.child, probe))]);
  }
  const lines = probeLines(probe).filter((l) => l.t >= churnStart && !l.gc);
  const heapFit = fitLine(live);
  const result: Record<string, unknown> = {
    agent: b.name, synced: syncFail ?? 'synced', podsPerMinute: churn.perSecond * 60, seconds: CHURN_S, replaced: churn.replaced() - replaced0,
    liveHeapMiB: { first: live[0]?.[1], last: live.at(-1)?.[1], slopePerMin: heapFit.slope },
    rssMiB: { max: Math.max(...lines.map((l) => mib(l.rss))) }, peakRssMiB: Math.max(...lines.map((l) => mib(l.peakRss))),
    relistsBefore: [...agent.relists()],
    agentCpuPerMin: lines.length > 1 ? ((lines.at(-1)!.cpuMs - lines[0]!.cpuMs) / 1000) / ((lines.at(-1)!.t - lines[0]!.t) / 60_000) : 0,
  };
  log(`churn ${b.name}: ${JSON.stringify(result)}`);
  if (RELIST && syncFail === undefined) result.relist = await forceRelist(kube, loader, churn, agent, probe);
  const stop = async () => {
    agent.child.kill('SIGTERM');
    await Promise.race([agent.exit, sleep(10_000)]);
    agent.child.kill('SIGKILL');
  };
  return { result, stop };
}

/**
 * Restarts the API server under churn until the agent relists its cluster-wide pods (at most 3 tries). Before the
 * kill: churn paused, one write that is not a pod (so the pods watch's resourceVersion is older than etcd's revision,
 * which the restarted server's cache starts at), and the agent's VmHWM reset, so the peak read after is the relist's.
 */
async function forceRelist(kube: KubeHarness, loader: c.Loader, churn: ReturnType<typeof startChurn>, agent: Awaited<ReturnType<typeof startAgent>>, probe: string): Promise<Record<string, unknown>> {
  const before = agent.relists().length;
  const podsRelisted = () => agent.relists().slice(before).some((r) => r.startsWith('pods:'));
  let restarts = 0;
  const t0 = Date.now();
  writeFileSync(`/proc/${agent.child.pid}/clear_refs`, '5'); // resets VmHWM (peak RSS) to the current RSS
  let restartedAt = 0;
  let relistedAt = 0;
  while (!podsRelisted() && restarts < 3) {
    await churn.pause();
    await loader.must('PATCH', '/api/v1/namespaces/team-0', { metadata: { annotations: { 'bench/restart': String(Date.now()) } } }, 'application/merge-patch+json');
    restartedAt = Date.now(); // the kill: the agent may relist before /readyz answers the bench
    await kube.restartApiserver();
    restarts++;
    log(`relist: API server restarted in ${((Date.now() - restartedAt) / 1000).toFixed(1)} s`);
    churn.resume();
    for (let s = 0; s < 480 && !podsRelisted(); s++) await sleep(250);
    relistedAt = Date.now();
  }
  const relistS = (relistedAt - restartedAt) / 1000;
  await sleep(20_000); // the relist's garbage collected, a few probe lines after
  const live = mib(await liveHeap(agent.child, probe));
  const lines = probeLines(probe).filter((l) => l.t >= t0 && !l.gc);
  const out = {
    restarts, relisted: agent.relists().slice(before), podsRelistedS: podsRelisted() ? relistS : undefined,
    rssMaxMiB: Math.max(...lines.map((l) => mib(l.rss))), peakRssMiB: Math.max(...lines.map((l) => mib(l.peakRss))),
    rssAfterMiB: mib(lines.at(-1)?.rss ?? 0), liveHeapAfterMiB: live,
  };
  log(`relist: ${JSON.stringify(out)}`);
  return out;
}

async function churnAndFanout(kube: KubeHarness, loader: c.Loader, state: c.ClusterState, builds: Build[], dir: string): Promise<unknown> {
  const churn = startChurn(state);
  const agents: Array<Record<string, unknown>> = [];
  let stopLast = async () => {};
  for (const b of builds) {
    await stopLast();
    const run = await agentUnderChurn(kube, loader, churn, b, dir);
    agents.push(run.result);
    stopLast = run.stop;
  }

  // Fan-out: N watchers on top of the churning cluster and the one agent.
  const steps: unknown[] = [];
  const counter = { events: 0 };
  const watchers: Reflector<Keyed>[] = [];
  let running = 0;
  for (const n of FANOUT) {
    const ns = await loader.send('GET', '/api/v1/namespaces?limit=1');
    const rv = (JSON.parse(ns.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    watchers.push(...startWatchers(kube, running, n - running, rv, counter));
    running = n;
    await sleep(5000);
    const m0 = await watchCounters(loader);
    const a0 = procSample(kube.pids().apiserver);
    const e0 = counter.events;
    const r0 = churn.replaced();
    const t0 = performance.now();
    await sleep(STEP_S * 1000);
    const s = (performance.now() - t0) / 1000;
    const m1 = await watchCounters(loader);
    const a1 = procSample(kube.pids().apiserver);
    const step = {
      watchers: n, watches: m1.watches, podsReplacedPerS: (churn.replaced() - r0) / s,
      apiserverCpuPerS: (a1.cpuS - a0.cpuS) / s, apiserverRssMiB: a1.rssMiB,
      serverEventsPerS: (m1.events - m0.events) / s, serverMiBPerS: mib(m1.bytes - m0.bytes) / s,
      receivedEventsPerS: (counter.events - e0) / s, load: loadavg()[0],
    };
    steps.push(step);
    log(`fan-out: ${JSON.stringify(step)}`);
  }
  for (const w of watchers) {
    w.resourceVersion = '';
    w.stop();
  }
  await churn.stop();
  await stopLast();
  return { agents, fanout: steps };
}

await main();
