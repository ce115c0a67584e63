// scripts/start.sh under a service manager: SIGTERM to the script's PID (what systemd sends) must stop the agent and
// free its health port. It once ended in `exec npx connlat`, whose npm wrapper exited on SIGTERM and left the agent
// running as an orphan that still held the port.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/net.ts';

const START = fileURLToPath(new URL('../../scripts/start.sh', import.meta.url));
// a tool that runs until SIGINT, as the real one does (a stdin source would end when the script's pipes close)
const FAKE_TCPSTATES = fileURLToPath(new URL('../fixtures/fake-tools/tcpstates-ok.sh', import.meta.url));

/** PIDs whose command line contains marker (the agent, wherever it was re-parented). */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'latin1').includes(marker)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

const canBind = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });

test('SIGTERM to scripts/start.sh stops the agent and frees its health port', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-start-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'start-sh-marker.jsonl');
  const port = await freePort();
  const script = spawn(START, ['--source', 'tcpstates', '--tcpstates-path', FAKE_TCPSTATES, '--export', `otlp-json:${out}`, '--health-addr', `127.0.0.1:${port}`, '--view', 'off', '--kubernetes', 'off'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  script.stderr!.on('data', (d) => (stderr += d));
  t.after(() => {
    for (const pid of processesWith(out)) process.kill(pid, 'SIGKILL');
  });
  const deadline = Date.now() + 60_000;
  while (!(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false))) {
    assert.ok(script.exitCode === null, `start.sh exited (${script.exitCode}) before the agent listened: ${stderr}`);
    assert.ok(Date.now() < deadline, `the agent did not listen on ${port} within 60 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(processesWith(out).length >= 1, 'the agent runs');
  const exited = new Promise((r) => script.once('exit', r));
  script.kill('SIGTERM');
  await exited;
  const gone = Date.now() + 15_000;
  while (processesWith(out).length > 0 && Date.now() < gone) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(processesWith(out), [], `no agent left running after start.sh exited: ${stderr}`);
  assert.equal(await canBind(port), true, `port ${port} is free`);
  assert.match(stderr, /SIGTERM: stopping/);
});
