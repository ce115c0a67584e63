// The delayed link is what the fidelity tests measure against, so it is tested on its own: a connect across it
// takes 2 x one-way delay (median within 10%), and close() leaves no namespace behind.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { test } from 'node:test';
import { delayedLinkUnavailable, startDelayedLink } from '../support/delay-line/index.ts';

test('a connect across the delayed link takes one round trip', async (t) => {
  const why = delayedLinkUnavailable();
  if (why) return t.skip(why);
  const link = await startDelayedLink({ oneWayMs: 20, subnet: 251 });
  t.after(() => link.close());
  const server = spawn('ip', ['netns', 'exec', link.serverNs, 'python3', '-c',
    `import socket,time\ns=socket.socket();s.bind(('${link.serverAddr}',8080));s.listen(128)\nwhile True: s.accept()[0].close()`], { stdio: 'ignore' });
  t.after(() => server.kill('SIGKILL'));
  await new Promise((r) => setTimeout(r, 500));
  const out = execFileSync('ip', ['netns', 'exec', link.clientNs, 'python3', '-c',
    `import socket,time\nfor i in range(15):\n  t=time.monotonic(); c=socket.create_connection(('${link.serverAddr}',8080)); print((time.monotonic()-t)*1000); c.close()`], { encoding: 'utf8' });
  const ms = out.trim().split('\n').map(Number).sort((a, b) => a - b);
  const median = ms[Math.floor(ms.length / 2)]!;
  assert.ok(median >= 40 && median <= 44, `median connect ${median.toFixed(2)} ms across a 2 x 20 ms link: ${ms.map((x) => x.toFixed(1)).join(' ')}`);
  const { clientNs } = link;
  await link.close();
  assert.ok(!execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).includes(clientNs), 'namespace removed');
});
