// The bundled dist/ (scripts/bundle.ts, what `npm run build` and the agent image make), run from a directory with
// no node_modules in reach, so that anything the bundle failed to include, or included twice, shows: --version, and
// a replay with a YAML config file (a lazily loaded dependency) exported over OTLP gRPC to a receiver (the lazily
// loaded gRPC exporters of all three signals; a second grpc-js copy once failed every export here with "Channel
// credentials must be a ChannelCredentials object").
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { lastMetric, logRecords, spansOf } from '../telemetry/helpers.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'connlat-bundle-'));
const cli = join(dir, 'dist', 'cli.js');

function run(args: string[], input = ''): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cli, ...args], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
    child.stdin!.end(input);
  });
}

before(() => {
  const r = spawnSync(process.execPath, [join(REPO, 'scripts', 'bundle.ts'), '--outdir', join(dir, 'dist')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  copyFileSync(join(REPO, 'package.json'), join(dir, 'package.json')); // cli.js reads the version from ../package.json
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('the bundle: an entry file, chunks split at the dynamic imports, nothing else needed beside it', async () => {
  assert.deepEqual(readdirSync(dir).sort(), ['dist', 'package.json']);
  const chunks = readdirSync(join(dir, 'dist', 'chunks')).filter((f) => f.endsWith('.js'));
  for (const lazy of ['config', 'agent', 'doctor', 'kube-access', 'kube-enricher', 'table']) {
    assert.ok(chunks.some((f) => f.startsWith(`${lazy}-`)), `a chunk of its own for ${lazy}.ts: ${chunks.join(' ')}`);
  }
  const version = await run(['--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^connlat \d+\.\d+\.\d+\n$/);
});

test('a replay with a YAML config, over OTLP gRPC: metrics, slow-connection logs and their spans arrive', async () => {
  const receiver = await startOtlpReceiver();
  try {
    const config = join(dir, 'connlat.yaml');
    writeFileSync(config, `# a YAML file (not JSON): loads the YAML parser\nslowMs: 50\nhealthAddr: "off"\n`);
    const header = 'PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)';
    const line = (pid: number, lat: string) => `${String(pid).padEnd(6)} ${'curl'.padEnd(12)} ${'4'.padEnd(2)} ${'10.0.0.1'.padEnd(16)} ${'10.0.0.2'.padEnd(16)} ${'443'.padEnd(5)} ${lat}`;
    const input = [header, ...Array.from({ length: 30 }, (_, i) => line(1000 + i, i % 3 === 0 ? `${150 + i}.25` : '1.25'))].join('\n') + '\n';
    const r = await run(['--config', config, '--source', '-', '--export', 'otlp', '--otlp-endpoint', receiver.endpoint, '--kubernetes', 'off'], input);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /slow threshold 50 ms/, 'the YAML file was read');
    const points = lastMetric(receiver.metrics, 'tcp.connect.duration')?.histogram.dataPoints ?? [];
    assert.equal(points.reduce((n: number, p: { count: string }) => n + Number(p.count), 0), 30);
    const spans = spansOf(receiver.traces);
    assert.equal(spans.length, 10);
    const hex = (v: unknown) => Buffer.from(v as Uint8Array).toString('hex');
    assert.deepEqual(logRecords(receiver.logs).map((l) => hex(l.spanId)), spans.map((s) => hex(s.spanId)));
  } finally {
    await receiver.close();
  }
});
