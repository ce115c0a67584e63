// The tool failing in the ways it fails on real nodes, through the real CLI; each gives one actionable message.
// - crash loop: restarts on a jittered exponential backoff, /readyz 503 while it loops, ready once a run stays up;
// - binary missing: exit 1 with what to install or which flag to set;
// - no privileges: the real /usr/sbin/tcpstates run by the agent as the real user `nobody` (setpriv): the message
//   names the capabilities, the agent stays alive and not ready, and keeps retrying on a growing backoff.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ensureTracefs } from '../../src/sources/tracefs.ts';
import { CONNLAT_BIN, runAgent, startAgent } from '../support/agent.ts';
import { FAKES, freePort, sleep, waitUntil } from './helpers.ts';

async function readyz(port: number): Promise<{ status: number; text: string } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, text: await res.text() };
  } catch {
    return undefined;
  }
}

/** "restart N in X ms" from the agent's restart warnings. */
function restartDelays(stderr: string): Array<[number, number]> {
  return [...stderr.matchAll(/restart (\d+) in (\d+) ms/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

test('crash loop: backoff grows within its ceilings, not ready while looping, ready once a run stays up', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-crash-'));
  const health = await freePort();
  const agent = startAgent(
    ['--source', 'tcpconnlat', '--tcpconnlat-path', join(FAKES, 'tcpconnlat-crashloop.sh'), '--export', `otlp-json:${join(dir, 'out.jsonl')}`, '--health-addr', `127.0.0.1:${health}`, '--view', 'off', '--kubernetes', 'off'],
    { FAKE_STATE: join(dir, 'runs'), FAKE_CRASHES: '5' },
  );
  t.after(() => agent.stop('SIGTERM', 5000));
  const runs = () => Number(existsSync(join(dir, 'runs')) ? readFileSync(join(dir, 'runs'), 'utf8') : 0);
  const notReadyTexts = new Set<string>();
  await waitUntil('the first run', () => runs() >= 1, 30_000, 20);
  while (runs() <= 5) {
    const r = await readyz(health);
    if (r) {
      assert.equal(r.status, 503, `ready while crash-looping (run ${runs()})`);
      notReadyTexts.add(r.text);
    }
    await sleep(50);
  }
  const deadline = Date.now() + 30_000;
  let ready = false;
  while (!ready && Date.now() < deadline) {
    ready = (await readyz(health))?.status === 200;
    if (!ready) await sleep(100);
  }
  assert.ok(ready, `never ready after the loop: ${agent.stderr()}`);
  const delays = restartDelays(agent.stderr());
  assert.deepEqual(delays.map(([n]) => n), [1, 2, 3, 4, 5]);
  // full jitter under a ceiling of 500 ms * 2^(n-1)
  for (const [n, ms] of delays) assert.ok(ms <= 500 * 2 ** (n - 1), `restart ${n} after ${ms} ms`);
  assert.match([...notReadyTexts].join('\n'), /not ready: tcpconnlat \(.*tcpconnlat-crashloop\.sh\) is not attached and reading/);
  assert.match(agent.stderr(), /ERROR tcpconnlat stderr: libbpf: fake crash in run 1\n/);
  assert.match(agent.stderr(), /exited \(tcpconnlat exited with code 1; restart 1 in \d+ ms\); restarting with backoff/);
  assert.equal(await agent.stop('SIGTERM'), 0);
  t.diagnostic(`restart delays (ms): ${delays.map(([, ms]) => ms).join(', ')}`);
});

for (const source of ['tcpstates', 'auto'] as const) {
  test(`binary missing (--source ${source}): exit 1 with what to install or set`, { timeout: 60_000 }, async () => {
    const r = await runAgent(
      ['--source', source, '--tcpstates-path', '/nonexistent/tcpstates', '--tcpconnlat-path', '/nonexistent/tcpconnlat', '--export', 'console', '--health-addr', 'off', '--view', 'off', '--kubernetes', 'off'],
      { timeoutMs: 30_000 },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /connlat: tcpstates: no executable at \/nonexistent\/tcpstates; install libbpf-tools \(apt-get install libbpf-tools\) or set --tcpstates-path\n$/);
    if (source === 'auto') assert.match(r.stderr, /source auto: using tcpstates \((connlat-probe not found at [^;]+; )?tcpconnlat not found at \/nonexistent\/tcpconnlat/);
  });
}

const AS_NOBODY = ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all'];

async function unprivilegedUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root to switch to the user nobody';
  if (spawnSync('setpriv', ['--version']).status !== 0) return 'setpriv (util-linux) is not installed';
  if (!existsSync('/usr/sbin/tcpstates')) return '/usr/sbin/tcpstates is not installed (apt-get install libbpf-tools)';
  // A checkout under a 0700 directory (mktemp -d) is unreadable to nobody: the agent would not start at all.
  const asNobody = spawnSync('setpriv', [...AS_NOBODY, process.execPath, CONNLAT_BIN, '--version'], { encoding: 'utf8' });
  if (asNobody.status !== 0) return `the user nobody cannot start the agent from this checkout (${asNobody.stderr.split('\n').find((l) => /Error/.test(l)) ?? `exit ${asNobody.status}`}); make its path readable to others`;
  const tracefs = await ensureTracefs();
  if (!tracefs.ok) return `tracefs unavailable: ${tracefs.message}`;
  return undefined;
}

test('no privileges: the real tcpstates as user nobody gives the capability advice once, stays alive and not ready', { timeout: 90_000 }, async (t) => {
  const why = await unprivilegedUnavailable();
  if (why) return t.skip(why);
  const dir = mkdtempSync(join(tmpdir(), 'connlat-nobody-'));
  chmodSync(dir, 0o777);
  const health = await freePort();
  const child = spawn(
    'setpriv',
    [...AS_NOBODY, process.execPath, CONNLAT_BIN,
      '--source', 'tcpstates', '--export', `otlp-json:${join(dir, 'out.jsonl')}`, '--health-addr', `127.0.0.1:${health}`, '--view', 'off', '--kubernetes', 'off'],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.after(() => child.kill('SIGKILL'));
  await waitUntil('3 restarts', () => {
    if (child.exitCode !== null) throw new Error(`the agent exited with ${child.exitCode}: ${stderr}`);
    return restartDelays(stderr).length >= 3;
  }, 60_000);
  const ready = await readyz(health);
  assert.equal(child.exitCode, null, `the agent must stay up: ${stderr}`);
  assert.equal(ready?.status, 503);
  assert.match(ready!.text, /not ready: tcpstates \(\/usr\/sbin\/tcpstates\) is not attached and reading/);
  const advice = `tcpstates: not permitted to load BPF programs \\(libbpf: .*Operation not permitted.*\\): kernel ${release().replaceAll('.', '\\.')} needs CAP_BPF and CAP_PERFMON \\(or root\\); in Kubernetes add them to securityContext.capabilities.add or run privileged`;
  assert.match(stderr, new RegExp(advice));
  assert.equal(stderr.match(/not permitted to load BPF programs/g)!.length, 1, 'the advice once, not once per restart');
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  t.diagnostic(`restart delays (ms): ${restartDelays(stderr).map(([, ms]) => ms).join(', ')}`);
});
