// The live terminal table: with --view auto on a real pseudo-terminal (util-linux `script` allocates one) the agent
// redraws a table of destinations and recent slow connects every second.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CONNLAT_BIN } from '../support/agent.ts';

const FAKE = fileURLToPath(new URL('../fixtures/fake-tools/tcpconnlat-crashloop.sh', import.meta.url));

test('live table on a TTY', { timeout: 60_000 }, async (t) => {
  if (spawnSync('script', ['--version']).status !== 0) return t.skip('needs util-linux script(1) to allocate a pseudo-terminal');
  const dir = mkdtempSync(join(tmpdir(), 'connlat-view-'));
  const cmd = [process.execPath, CONNLAT_BIN, '--source', 'tcpconnlat', '--tcpconnlat-path', FAKE, '--export', `otlp-json:${join(dir, 'o.jsonl')}`, '--health-addr', 'off', '--slow-ms', '10']
    .map((a) => `'${a}'`)
    .join(' ');
  // `exec`: script(1) runs this with $SHELL, or /bin/sh when unset (as in CI). dash does not exec the last command
  // of a list, so without it a shell waits in the terminal's foreground group, dies of the Ctrl-C (130) and hides
  // the agent's own exit code.
  const child = spawn('script', ['-qfec', `stty cols 140 rows 40; exec ${cmd}`, '/dev/null'], {
    env: { ...process.env, SHELL: '/bin/sh', FAKE_STATE: join(dir, 'runs'), FAKE_CRASHES: '0', TERM: 'xterm' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  t.after(() => child.kill('SIGKILL'));
  let screen = '';
  child.stdout!.on('data', (d) => (screen += d.toString()));
  const start = Date.now();
  // redrawn every second; readiness needs the tool to stay up 1 s, so wait for a ready frame
  const readyFrames = () => screen.split('\x1b[H\x1b[2J').filter((f) => f.includes('[ready]')).length;
  while (readyFrames() < 1 && Date.now() - start < 30_000) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 200)); // the frame is written whole, but may arrive in pieces
  const frames = screen.split('\x1b[H\x1b[2J');
  const last = frames.at(-1)!;
  assert.ok(frames.length >= 3, `redrawn at least twice: ${JSON.stringify(screen.slice(0, 500))}`);
  assert.match(last, /connlat {2}source: tcpconnlat .*\[ready\]/);
  assert.match(last, /DESTINATION +COUNT +FAIL +REASON +RETX +p50 ms +p90 ms +p99 ms/);
  assert.match(last, /76\.76\.21\.21:443 +1 +0 +- +0 +47\.8 +47\.8 +47\.8 +curl/);
  assert.match(last, /127\.0\.0\.1:8080 +1 +0/);
  assert.match(last, /curl\[21168\] 10\.0\.2\.15 -> 76\.76\.21\.21:443 took 47\.80 ms/);
  child.stdin!.write('\x03'); // Ctrl-C on the terminal: SIGINT to the agent (and, without care, the tool)
  const code = await new Promise((r) => child.once('exit', r));
  assert.equal(code, 0);
});
