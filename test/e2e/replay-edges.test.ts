// The edges of a run through the real CLI: signals (early, SIGHUP, Ctrl-C on a pipeline), a line cut by a signal,
// the health port taken, data that could not be delivered, and what the run says it dropped (issue 11).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EXIT } from '../../src/exit-status.ts';
import { CONNLAT_BIN, readOtlpJson, runAgent } from '../support/agent.ts';
import { freePort } from '../support/net.ts';
import { lastMetric, logRecords } from '../telemetry/helpers.ts';

const FAKE_TOOLS = fileURLToPath(new URL('../fixtures/fake-tools/', import.meta.url));
const HEADER = 'PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)';
/** tcpconnlat's printf: "%-6d %-12.12s %-2d %-16s %-16s %-5d %.2f" */
const line = (pid: number, lat = '1.25') =>
  `${String(pid).padEnd(6)} ${'curl'.padEnd(12)} ${'4'.padEnd(2)} ${'10.0.0.1'.padEnd(16)} ${'10.0.0.2'.padEnd(16)} ${'443'.padEnd(5)} ${lat}`;

function histogramCount(metrics: any[]): number {
  const m = lastMetric(metrics, 'tcp.connect.duration');
  return (m?.histogram?.dataPoints ?? []).reduce((a: number, dp: any) => a + Number(dp.count), 0);
}

function counterTotal(metrics: any[], name: string): number {
  const m = lastMetric(metrics, name);
  return (m?.sum?.dataPoints ?? []).reduce((a: number, dp: any) => a + Number(dp.asInt ?? dp.asDouble), 0);
}

interface Spawned {
  child: ChildProcess;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnAgent(args: string[], stdin: 'pipe' | 'ignore' = 'pipe', env: NodeJS.ProcessEnv = {}): Spawned {
  const child = spawn(process.execPath, [CONNLAT_BIN, ...args], { stdio: [stdin, 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (err += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return { child, stderr: () => err, exit };
}

async function until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!ok()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const tmp = () => mkdtempSync(join(tmpdir(), 'connlat-edges-'));

/** The signals whose handlers the process has installed (SigCgt in /proc/PID/status). */
function caughtSignals(pid: number): Set<number> {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return new Set();
  }
  const mask = BigInt(`0x${/^SigCgt:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`);
  return new Set(Array.from({ length: 64 }, (_, i) => i + 1).filter((n) => (mask >> BigInt(n - 1)) & 1n));
}

test('a signal right after spawn: the handlers exist before the agent loads; it drains stdin to EOF and exits 0', async (t) => {
  const numbers = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const out = join(tmp(), 'out.jsonl');
    const a = spawnAgent(['--source', '-', '--export', `otlp-json:${out}`, '--health-addr', 'off']);
    a.child.stdin!.end([HEADER, ...Array.from({ length: 100 }, (_, i) => line(i + 1))].join('\n') + '\n');
    const spawnedAt = Date.now();
    // the first moment the process could act on it: as soon as its handlers for all three stop signals exist
    await until('stop-signal handlers', () => Object.values(numbers).every((n) => caughtSignals(a.child.pid!).has(n)), 10_000);
    const handlersAfterMs = Date.now() - spawnedAt;
    assert.doesNotMatch(a.stderr(), /reading stdin/, 'the handlers exist before the agent has started');
    a.child.kill(signal);
    const { code, signal: killedBy } = await a.exit;
    assert.equal(killedBy, null, `${signal} right after spawn killed the agent: ${a.stderr()}`);
    assert.equal(code, 0, a.stderr());
    assert.equal(histogramCount(readOtlpJson(out).metrics), 100, `${signal}: every line read from stdin counted`);
    assert.match(a.stderr(), new RegExp(`${signal}( \\(terminal hang-up\\))?: stopping`));
    t.diagnostic(`${signal}: handlers installed ${handlersAfterMs} ms after spawn`);
  }
});

test('SIGTERM during a stdin replay: lines read count, the partial line at the cut is neither data nor rejected', async () => {
  const out = join(tmp(), 'out.jsonl');
  const a = spawnAgent(['--source', '-', '--export', `otlp-json:${out}`, '--health-addr', 'off', '--shutdown-timeout-ms', '2000']);
  // stdin stays open: the replay can only end by the signal, after the drain bound; the last line is cut in LAT(ms)
  a.child.stdin!.write([HEADER, line(1), line(2), line(3)].join('\n') + '\n' + line(4).slice(0, -3));
  await until('the agent reading stdin', () => /reading stdin/.test(a.stderr()));
  a.child.kill('SIGTERM');
  const { code } = await a.exit;
  assert.equal(code, 0, a.stderr());
  const { metrics } = readOtlpJson(out);
  assert.equal(histogramCount(metrics), 3);
  assert.equal(counterTotal(metrics, 'connlat.lines.rejected'), 0, 'the cut line is not a rejection either');
  assert.match(a.stderr(), /3 connect events, 0 rejected/);
});

test('tool | connlat --source -: Ctrl-C reaches both, and the lines the tool prints after it are not lost', async () => {
  for (let round = 0; round < 3; round++) {
    const dir = tmp();
    const out = join(dir, 'out.jsonl');
    const errFile = join(dir, 'stderr.txt');
    const status = join(dir, 'status');
    // bash as the process group leader, like a terminal's foreground job; `trap :` keeps bash itself alive to report
    // connlat's exit status (a trapped signal is reset to its default in the pipeline's processes)
    const script = `trap : INT; '${join(FAKE_TOOLS, 'tcpconnlat-late-lines.sh')}' 20 5 | '${process.execPath}' '${CONNLAT_BIN}' ` +
      `--source - --export otlp-json:${out} --health-addr off 2>${errFile}; echo "\${PIPESTATUS[1]}" > ${status}`;
    const shell = spawn('bash', ['-c', script], { detached: true, stdio: 'ignore' });
    const shellExit = new Promise((r) => shell.once('exit', r));
    const stderr = () => (existsSync(errFile) ? readFileSync(errFile, 'utf8') : '');
    await until('connlat reading stdin', () => /reading stdin/.test(stderr()));
    process.kill(-shell.pid!, 'SIGINT');
    await shellExit;
    assert.equal(readFileSync(status, 'utf8').trim(), String(EXIT.ok.code), stderr());
    assert.equal(histogramCount(readOtlpJson(out).metrics), 25, `round ${round}: the 5 lines printed after Ctrl-C count: ${stderr()}`);
  }
});

test('the health port taken: a replay still runs; a live agent fails before it creates any output file', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as { port: number }).port;
  try {
    const dir = tmp();
    const out = join(dir, 'replay.jsonl');
    const run = await runAgent(['--source', '-', '--export', `otlp-json:${out}`, '--health-addr', `127.0.0.1:${port}`],
      { input: [HEADER, line(1), line(2)].join('\n') + '\n' });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(histogramCount(readOtlpJson(out).metrics), 2);
    assert.match(run.stderr, /health endpoints off: cannot listen on --health-addr 127\.0\.0\.1:\d+: .*EADDRINUSE/);

    const liveOut = join(dir, 'live.jsonl');
    const live = await runAgent(['--source', 'tcpstates', '--tcpstates-path', join(FAKE_TOOLS, 'tcpstates-ok.sh'),
      '--export', `otlp-json:${liveOut}`, '--health-addr', `127.0.0.1:${port}`, '--kubernetes', 'off']);
    assert.equal(live.code, EXIT.failure.code, live.stderr);
    assert.match(live.stderr, /cannot listen on --health-addr 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    assert.equal(existsSync(liveOut), false, 'no output file before the run could start');
  } finally {
    blocker.close();
  }
});

test('a replay whose export could not be delivered exits with the documented status and says what was lost', async () => {
  const port = await freePort(); // nothing listens there
  const input = [HEADER, ...Array.from({ length: 50 }, (_, i) => line(i + 1, '150.00'))].join('\n') + '\n';
  const run = await runAgent(['--source', '-', '--export', 'otlp', '--otlp-endpoint', `http://127.0.0.1:${port}`,
    '--health-addr', 'off', '--shutdown-timeout-ms', '1500', '--export-retry-max-ms', '200'], { input });
  assert.equal(run.code, EXIT.undelivered.code, run.stderr);
  const summary = run.stderr.split('\n').filter((l) => /ERROR +not delivered: /.test(l));
  assert.equal(summary.length, 1, run.stderr);
  assert.match(summary[0]!, /metrics: the last export .*; 50 slow-connection log records/);
});

test('ENOSPC on the OTLP/JSON file: exit status says so, and every line of the file is whole JSON', { skip: process.getuid?.() !== 0 ? 'needs root to mount a small tmpfs' : false }, async (t) => {
  const dir = tmp();
  const mnt = join(dir, 'small');
  spawnSync('mkdir', ['-p', mnt]);
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=48k', 'tmpfs', mnt], { encoding: 'utf8' });
  if (mount.status !== 0) return t.skip(`cannot mount tmpfs: ${mount.stderr.trim()}`);
  try {
    const out = join(mnt, 'out.jsonl');
    // many distinct slow connects: log requests large enough to fill 48 KiB many times over
    const input = [HEADER, ...Array.from({ length: 3000 }, (_, i) => line(1000 + i, `${100 + (i % 900)}.25`))].join('\n') + '\n';
    const run = await runAgent(['--source', '-', '--export', `otlp-json:${out}`, '--health-addr', 'off', '--slow-log-burst', '5000'], { input });
    assert.equal(run.code, EXIT.undelivered.code, run.stderr);
    assert.match(run.stderr, /ERROR +not delivered: .*slow-connection log records \(export_failed: \d+ \[ENOSPC/);
    const text = readFileSync(out, 'utf8');
    assert.ok(text === '' || text.endsWith('\n'), 'no partial line at the end');
    for (const l of text.split('\n').filter(Boolean)) JSON.parse(l);
  } finally {
    spawnSync('umount', [mnt]);
  }
});

test('rate-limited slow logs in a replay: the end of the run says how many and why', async () => {
  const out = join(tmp(), 'out.jsonl');
  const input = [HEADER, ...Array.from({ length: 1000 }, (_, i) => line(i + 1, '250.00'))].join('\n') + '\n';
  const run = await runAgent(['--source', '-', '--export', `otlp-json:${out}`, '--health-addr', 'off', '--slow-log-rate', '0', '--slow-log-burst', '10'], { input });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(logRecords(readOtlpJson(out).logs).length, 10);
  assert.match(run.stderr, /990 slow-connection log records dropped by the rate limit \(--slow-log-rate 0\/s, --slow-log-burst 10\)/);
});

test('a live tool whose output is in no known format is not Ready', async () => {
  for (const known of [false, true]) {
    const port = await freePort();
    const a = spawnAgent(['--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKE_TOOLS, 'tcpconnlat-unknown-format.sh'),
      '--export', `otlp-json:${join(tmp(), 'out.jsonl')}`, '--health-addr', `127.0.0.1:${port}`, '--kubernetes', 'off', '--view', 'off'],
    'ignore', { FAKE_FORMAT: known ? 'known' : 'unknown' });
    try {
      await until('the agent reading the tool', () => /reading tcpconnlat/.test(a.stderr()));
      await new Promise((r) => setTimeout(r, 1500)); // past the 1 s a run must stay up after its first line
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      const body = await res.text();
      if (known) assert.equal(res.status, 200, body);
      else {
        assert.equal(res.status, 503, body);
        assert.match(body, /tcpconnlat \(.*\) prints no known format/);
      }
    } finally {
      a.child.kill('SIGTERM');
      await a.exit;
    }
  }
});
