// Real eBPF: ToolSource runs the real /usr/sbin/tcpstates (tracepoint sock:inet_sock_set_state) and must see the
// loopback connects this test makes: N that succeed and M to a closed port, each within 2 s of the connect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { ToolSource } from '../../src/sources/tool.ts';
import { recorder, waitFor } from './helpers.ts';

const TCPSTATES = '/usr/sbin/tcpstates';

interface StateLine {
  lport: number;
  rport: number;
  oldState: string;
  newState: string;
  atMs: number;
}

/** Fields counted from the end, so a COMM with spaces cannot shift them. */
function parse(text: string, atMs: number): StateLine | undefined {
  const f = text.trim().split(/\s+/);
  if (f.length < 9 || f.at(-3) !== '->') return undefined;
  return { lport: Number(f.at(-7)), rport: Number(f.at(-5)), oldState: f.at(-4)!, newState: f.at(-2)!, atMs };
}

function listen(server: Server): Promise<number> {
  return new Promise((res) => server.listen(0, '127.0.0.1', () => res((server.address() as { port: number }).port)));
}

test('real tcpstates sees N loopback connects and M refused ones within 2 s', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to load BPF programs');
  if (!(await access(TCPSTATES).then(() => true, () => false))) return t.skip(`${TCPSTATES} not installed (Debian libbpf-tools)`);
  const src = new ToolSource({ tool: 'tcpstates', path: TCPSTATES, backoff: { initialMs: 200, maxMs: 1000, resetAfterMs: 60_000 } });
  const r = recorder();
  const done = src.run(r);
  try {
    await waitFor(() => src.ready(), 15_000, 'tcpstates to attach');
  } catch {
    await src.stop();
    await done;
    return t.skip(`BPF cannot run here: tcpstates did not attach (${r.diagnostics.join(' | ') || r.restarts.map((x) => x.desc).join(' | ')})`);
  }
  const N = 5;
  const M = 3;
  const server = createServer((s) => s.end());
  const port = await listen(server);
  const closed = createServer();
  const closedPort = await listen(closed);
  await new Promise((res) => closed.close(res));

  const opened: { lport: number; startMs: number }[] = [];
  for (let i = 0; i < N; i++) {
    const startMs = Date.now();
    const sock: Socket = await new Promise((res, rej) => {
      const s = connect(port, '127.0.0.1', () => res(s));
      s.once('error', rej);
    });
    opened.push({ lport: sock.localPort!, startMs });
    sock.destroy();
  }
  const refusedStarts: number[] = [];
  for (let i = 0; i < M; i++) {
    refusedStarts.push(Date.now());
    const err = await new Promise<NodeJS.ErrnoException>((res) => connect(closedPort, '127.0.0.1').once('error', res));
    assert.equal(err.code, 'ECONNREFUSED');
  }
  const lastConnect = Date.now();

  const events = (): StateLine[] => r.lines.map((l) => parse(l.text, l.atMs)).filter((e): e is StateLine => e !== undefined);
  const established = (): StateLine[] =>
    events().filter((e) => e.rport === port && e.oldState === 'SYN_SENT' && e.newState === 'ESTABLISHED');
  const refused = (): StateLine[] => events().filter((e) => e.rport === closedPort && e.oldState === 'SYN_SENT' && e.newState === 'CLOSE');
  try {
    await waitFor(() => established().length >= N && refused().length >= M, 2000 + (Date.now() - lastConnect), 'the lines for our ports');
  } finally {
    await src.stop();
    await done;
    server.close();
  }
  assert.equal(established().length, N);
  assert.equal(refused().length, M);
  const worst: number[] = [];
  for (const o of opened) {
    const line = established().find((e) => e.lport === o.lport);
    assert.ok(line, `SYN_SENT -> ESTABLISHED for local port ${o.lport}`);
    assert.ok(line.atMs - o.startMs < 2000, `arrived ${line.atMs - o.startMs} ms after the connect`);
    worst.push(line.atMs - o.startMs);
  }
  for (const line of refused()) {
    assert.ok(line.atMs >= refusedStarts[0]! - 5 && line.atMs - refusedStarts[0]! < 2000);
    worst.push(line.atMs - refusedStarts[0]!);
  }
  console.log(`tcpstates: ${N} established + ${M} refused seen; connect -> line read: max ${Math.max(...worst)} ms`);
});
