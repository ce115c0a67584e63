// node --expose-gc --max-semi-space-size=2 bench/relist-heap.ts: where a relist's heap goes, in process. A loopback
// HTTP server (a child process: its page strings must not sit in the measured heap) plays the API server for the cluster-wide pod watch (pods shaped as bench/kube-scale/cluster.ts makes
// them, with the metadata a real server adds), answering every watch with a 410 Gone: the Reflector lists (sync),
// then relists. Read around the relist: the live heap before (full GC), the heap used and committed at their highest
// while it runs (sampled every 5 ms), old space used at its end before any full GC (what the relist promoted), and
// the live heap after. BENCH_SRC=<dir with src/> measures another tree (e.g. `git archive main src`), BENCH_PODS
// (default 20000); BENCH_GONE (default 1%) of the pods are missing from the relist, and as many new ones are in it.
import { spawn } from 'node:child_process';
import { createServer, get as httpGet } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import * as c from './kube-scale/cluster.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('relist-heap: run node with --expose-gc');
const src = resolve(process.env.BENCH_SRC ?? join(import.meta.dirname, '..'), 'src/enrich');
const { ClusterIndex } = (await import(join(src, 'cluster-index.ts'))) as typeof import('../src/enrich/cluster-index.ts');
const { Reflector } = (await import(join(src, 'reflector.ts'))) as typeof import('../src/enrich/reflector.ts');
const { compactPod } = (await import(join(src, 'compact.ts'))) as typeof import('../src/enrich/compact.ts');

const PODS = Number(process.env.BENCH_PODS ?? 20_000);
const GONE = Math.round(PODS * Number(process.env.BENCH_GONE ?? 0.01));
const mib = (b: number) => +(b / 1024 / 1024).toFixed(2);

/** Pod i as a list item: the loader's object plus what the API server adds (uid, times, managedFields). */
function item(i: number): object {
  const p = c.pod(i) as { metadata: Record<string, unknown> };
  return {
    ...p,
    metadata: {
      ...p.metadata, uid: `0f1e2d3c-4b5a-4697-8877-${i.toString(16).padStart(12, '0')}`, resourceVersion: String(1000 + i),
      creationTimestamp: '2026-12-02T04:00:00Z',
      managedFields: [{ manager: 'kube-scale', operation: 'Update', apiVersion: 'v1', time: '2026-12-02T04:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': {} }, 'f:spec': { 'f:containers': {} } } }],
    },
    ...c.podStatus(i),
  };
}

if (process.argv.includes('--serve')) {
let round = 0; // 0: the sync lists pods [0, PODS); 1: the relist lists [GONE, PODS + GONE)
const server = createServer((req, res) => {
  const url = new URL(req.url!, 'http://x');
  if (url.pathname === '/relist') return void ((round = 1), res.end());
  if (url.searchParams.get('watch') === 'true') {
    res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, message: 'too old resource version' } })}\n`);
    return;
  }
  const from = Number(url.searchParams.get('continue') ?? (round === 0 ? 0 : GONE));
  const end = round === 0 ? PODS : PODS + GONE;
  const to = Math.min(end, from + Number(url.searchParams.get('limit')));
  res.setHeader('content-type', 'application/json');
  res.write(`{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"${5000 + round}"${to < end ? `,"continue":"${to}"` : ''}},"items":[`);
  for (let i = from; i < to; i++) res.write((i > from ? ',' : '') + JSON.stringify(item(i)));
  res.end(']}');
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
} else {
const child = spawn(process.execPath, [...process.execArgv.filter((f) => !f.startsWith('--max')), import.meta.filename, '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise<number>((r) => child.stdout.once('data', (d: Buffer) => r(Number(d.toString().trim()))));
const server = `http://127.0.0.1:${port}`;
const access = { getCurrentCluster: () => ({ server }), applyToHTTPSOptions: async () => {} };

const index = new ClusterIndex('node-0');
const spec = {
  path: '/api/v1/pods', compact: (o: unknown) => compactPod(o, false), upsert: (r: ReturnType<typeof compactPod>) => index.upsertPod(r), remove: (r: { metadata: { namespace: string | undefined; name: string } }) => index.deletePod(r),
  // both interfaces: the one with beginList/endList (this branch), current() (main before it)
  beginList: () => (index as unknown as { beginList?: (k: string) => void }).beginList?.('pods'),
  endList: () => (index as unknown as { endList?: (k: string) => void }).endList?.('pods'),
  current: () => (index as unknown as { storedPods: () => Iterable<unknown> }).storedPods?.(),
};
const reflector = new Reflector(access, spec as never);

const oldSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;
function live(): { heapMiB: number; oldMiB: number; largeObjectsMiB: number; committedMiB: number } {
  gc!();
  const h = getHeapStatistics();
  const los = getHeapSpaceStatistics().find((sp) => sp.space_name === 'large_object_space')!.space_used_size;
  return { heapMiB: mib(h.used_heap_size), oldMiB: mib(oldSpace()), largeObjectsMiB: mib(los), committedMiB: mib(h.total_heap_size) };
}

await reflector.run(() => {});
const synced = index.sizes().pods;
await new Promise((r) => httpGet(`${server}/relist`, (res) => res.resume().on('end', r)));
const before = live();
let peakUsed = 0;
let peakCommitted = 0;
const spacePeak: Record<string, number> = {};
const sampler = setInterval(() => {
  for (const sp of getHeapSpaceStatistics()) spacePeak[sp.space_name] = Math.max(spacePeak[sp.space_name] ?? 0, mib(sp.space_used_size));
  const h = getHeapStatistics();
  peakUsed = Math.max(peakUsed, h.used_heap_size);
  peakCommitted = Math.max(peakCommitted, h.total_heap_size);
}, 5);
const t0 = performance.now();
await reflector.run(() => {});
const relistMs = performance.now() - t0;
clearInterval(sampler);
const oldAtEnd = mib(oldSpace());
const after = live();
child.kill();
const out = {
  src, pods: PODS, gone: GONE, synced, afterRelist: index.sizes().pods, relistMs: Math.round(relistMs),
  before, during: { peakUsedMiB: mib(peakUsed), peakCommittedMiB: mib(peakCommitted), oldSpaceAtEndMiB: oldAtEnd, spacePeakMiB: spacePeak },
  after, promotedMiB: +(oldAtEnd - before.oldMiB).toFixed(2), peakOverLiveMiB: +(mib(peakUsed) - before.heapMiB).toFixed(2),
};
process.stdout.write(`${JSON.stringify(out)}\n`);
}
