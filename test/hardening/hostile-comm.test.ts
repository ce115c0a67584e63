// Hostile process names through the real eBPF tool: processes rename themselves (prctl PR_SET_NAME) to text with
// spaces, to digits and addresses that look like tcpstates fields, and to a name with a newline, then connect to this
// test's loopback listener while the agent runs the real /usr/sbin/tcpstates and exports OTLP gRPC to the real
// receiver. Every connect is attributed to the real PID and addresses; no data point or log record carries a forged
// address, port or PID. A newline splits the tool's line in two: both halves are rejected and counted, never read as
// an event (the connect is lost, not forged).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { probeTool } from '../../src/sources/doctor.ts';
import { ensureTracefs } from '../../src/sources/tracefs.ts';
import { startAgent } from '../support/agent.ts';
import { startOtlpReceiver } from '../support/otlp/receiver.ts';
import { attrs } from '../telemetry/helpers.ts';
import { counterBy, freePort, histogramPoints, sleep, waitUntil } from './helpers.ts';

const CONNECT_AS = fileURLToPath(new URL('../fixtures/hostile/connect-as.py', import.meta.url));
const TCPSTATES = '/usr/sbin/tcpstates';
const PER_NAME = 3;

async function bpfUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root for BPF (run the tests as root)';
  const tracefs = await ensureTracefs();
  if (!tracefs.ok) return `tracefs unavailable: ${tracefs.message}`;
  const probe = await probeTool('stdbuf', TCPSTATES, 5000);
  if (!probe.attached) return `tcpstates cannot run here: ${probe.detail}`;
  try {
    execFileSync('python3', ['-c', 'import ctypes']);
  } catch {
    return 'python3 (with ctypes) is needed to set a process name';
  }
  return undefined;
}

function logRecordsOf(requests: any[]): any[] {
  const out: any[] = [];
  for (const req of requests) for (const rl of req.resourceLogs ?? []) for (const sl of rl.scopeLogs ?? []) out.push(...(sl.logRecords ?? []));
  return out;
}

test('hostile COMM (spaces, field look-alikes, newline) with the real tcpstates: real PID and addresses, nothing forged', { timeout: 180_000 }, async (t) => {
  const why = await bpfUnavailable();
  if (why) return t.skip(why);
  const receiver = await startOtlpReceiver();
  const listener: Server = createServer((s) => s.destroy());
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
  const port = (listener.address() as { port: number }).port;
  const health = await freePort();
  const agent = startAgent([
    '--source', 'tcpstates', '--export', 'otlp', '--otlp-endpoint', receiver.endpoint, '--export-interval-ms', '1000',
    '--slow-ms', '0', '--health-addr', `127.0.0.1:${health}`, '--view', 'off', '--kubernetes', 'off',
  ]);
  t.after(async () => {
    await agent.stop('SIGTERM', 5000);
    await receiver.close();
    listener.close();
  });
  const start = Date.now();
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${health}/readyz`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() - start > 60_000) throw new Error(`agent not ready: ${agent.stderr()}`);
    await sleep(200);
  }
  const names = { spaces: 'a b c', fields: '4 1.2.3.4 99', short: '7 10.0 443', control: 'benign', newline: 'x\\ny' }; // '\n' escaped for argv
  // tcpstates prints COMM as %-10.10s: what the agent can know is the first 10 bytes, padding trimmed.
  const shown = (name: string) => name.slice(0, 10).trimEnd();
  const pids: Record<string, number> = {};
  for (const [key, name] of Object.entries(names)) {
    const [pid, commHex] = execFileSync(CONNECT_AS, [name, String(port), String(PER_NAME)], { encoding: 'utf8' }).trim().split(' ');
    pids[key] = Number(pid);
    const comm = Buffer.from(commHex!, 'hex').toString('latin1');
    assert.equal(comm, name.replace('\\n', '\n'), `the kernel reports the name we set for ${key}`);
  }
  const expected = 4 * PER_NAME; // spaces, fields, short, control; the newline connects are rejected
  const mine = () => histogramPoints(receiver.metrics).filter((dp) => Number(attrs(dp.attributes)['server.port']) === port);
  await waitUntil(`${expected} connects to port ${port} exported`, () => mine().reduce((a, dp) => a + Number(dp.count), 0) >= expected, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}; got ${JSON.stringify(mine().map((dp) => [attrs(dp.attributes), dp.count]))}\n${agent.stderr()}`);
  });
  await sleep(2500); // two more exports: nothing further may arrive
  const points: Array<Record<string, any>> = mine().map((dp) => ({ ...attrs(dp.attributes), count: Number(dp.count) }));
  const byName = Object.fromEntries(points.map((p) => [p['process.executable.name'], p]));
  assert.equal(points.reduce((a, p) => a + p.count, 0), expected, `exactly the connects made: ${JSON.stringify(points)}`);
  for (const key of ['spaces', 'fields', 'short', 'control'] as const) {
    const p = byName[shown(names[key])];
    assert.ok(p, `a series for ${JSON.stringify(names[key])}: ${JSON.stringify(points)}`);
    assert.equal(p['server.address'], '127.0.0.1');
    assert.equal(p.count, PER_NAME);
  }
  // Nothing anywhere (other processes connect on this machine too) carries the forged values.
  const all = histogramPoints(receiver.metrics).map((dp) => attrs(dp.attributes));
  assert.ok(!all.some((a) => ['1.2.3.4', '10.0'].includes(String(a['server.address'])) || Number(a['server.port']) === 99), `forged series: ${JSON.stringify(all)}`);
  assert.ok(!all.some((a) => String(a['process.executable.name']).startsWith('y')), 'no series named after the text behind the newline');

  const records = logRecordsOf(receiver.logs).map((r) => attrs(r.attributes)).filter((a) => Number(a['server.port']) === port);
  assert.equal(records.length, expected, 'one slow-connection record per connect (--slow-ms 0)');
  for (const key of ['spaces', 'fields', 'short', 'control'] as const) {
    const mineRecs = records.filter((a) => a['process.executable.name'] === shown(names[key]));
    assert.equal(mineRecs.length, PER_NAME, key);
    for (const a of mineRecs) {
      assert.equal(a['process.pid'], pids[key], `${key}: the real PID`);
      assert.equal(a['server.address'], '127.0.0.1');
      assert.equal(a['client.address'], '127.0.0.1');
    }
  }
  assert.ok(!records.some((a) => a['process.pid'] === pids.newline), 'the newline process is never attributed a connect');
  const rejected = counterBy(receiver.metrics, 'connlat.lines.rejected', 'reason');
  const totalRejected = Object.values(rejected).reduce((a, b) => a + b, 0);
  assert.ok(totalRejected >= 2 * PER_NAME, `each newline-split line is rejected and counted: ${JSON.stringify(rejected)}`);
  assert.match(agent.stderr(), /WARN  rejected a tcpstates \(\/usr\/sbin\/tcpstates\) line \(shape: not a tcpstates line\): "ffff[0-9a-f]+ \d+ +x"/);
  t.diagnostic(`series for port ${port}: ${JSON.stringify(points)}; rejected lines ${JSON.stringify(rejected)}`);
});
