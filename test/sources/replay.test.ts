import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReplaySource } from '../../src/sources/replay.ts';
import { recorder } from './helpers.ts';

const tmp = await mkdtemp(join(tmpdir(), 'connlat-replay-'));
const HEADER = 'PID    COMM         IP SADDR            DADDR            DPORT LAT(ms)';
const body = Array.from({ length: 5000 }, (_, i) => `${1000 + i}   curl         4  10.0.0.1         10.0.0.2         443   ${(i / 100).toFixed(2)}`);

test('file replay emits every line, including an unterminated last one and latin1 bytes, then resolves', async () => {
  const path = join(tmp, 'recorded.txt');
  const lastBytes = Buffer.from([0x37, 0x37, 0x20, 0xff, 0xfe, 0x20, 0x34, 0x20, 0x31]); // "77 \xff\xfe 4 1", no newline
  await writeFile(path, Buffer.concat([Buffer.from([HEADER, ...body].join('\n') + '\n', 'latin1'), lastBytes]));
  const src = new ReplaySource({ path });
  assert.equal(src.description, `file:${path}`);
  assert.equal(src.format(), 'detect');
  const r = recorder();
  await src.run(r);
  assert.equal(r.lines.length, 1 + body.length + 1);
  assert.equal(r.lines[0]!.text, HEADER);
  assert.deepEqual(r.lines.slice(1, -1).map((l) => l.text), body);
  assert.deepEqual(Buffer.from(r.lines.at(-1)!.text, 'latin1'), lastBytes);
  assert.equal(src.ready(), false, 'not ready after EOF');
});

test('stdin replay in a child process whose stdin is a pipe delivers every line', async () => {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./replay-stdin-child.ts', import.meta.url))], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c: string) => (out += c));
  // Write in odd-sized pieces so lines straddle chunks; the last line has no newline.
  const input = [HEADER, ...body].join('\n') + '\nunterminated last';
  for (let i = 0; i < input.length; i += 777) child.stdin.write(input.slice(i, i + 777));
  child.stdin.end();
  const code = await new Promise<number | null>((res) => child.on('close', res));
  assert.equal(code, 0);
  const got = JSON.parse(out) as { description: string; format: string; lines: string[] };
  assert.equal(got.description, 'stdin');
  assert.equal(got.format, 'detect');
  assert.deepEqual(got.lines, [HEADER, ...body, 'unterminated last']);
});

test('stdin replay from a Readable: the stdout of a real process', async () => {
  const child = spawn('printf', ['a\\nb\\nc'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const src = new ReplaySource({ stdin: child.stdout });
  const r = recorder();
  await src.run(r);
  assert.deepEqual(r.lines.map((l) => l.text), ['a', 'b', 'c']);
});

/** A stdin replay of a pipe that has had `written` written to it, running. */
async function stdinReplay(written: string, drainTimeoutMs: number) {
  const stdin = new PassThrough();
  const src = new ReplaySource({ stdin }, { drainTimeoutMs });
  const r = recorder();
  const done = src.run(r);
  stdin.write(written);
  await new Promise((res) => setImmediate(res));
  return { stdin, src, r, done };
}

test('stop() on a stdin replay keeps reading until EOF, within its drain bound', async () => {
  const { stdin, src, r, done } = await stdinReplay('a\nb\n', 5000);
  const stopped = src.stop();
  // the writer (a tool that got the same Ctrl-C) prints its last lines after the signal
  setTimeout(() => stdin.end('c\nlast'), 100);
  await stopped;
  await done;
  assert.deepEqual(r.lines.map((l) => l.text), ['a', 'b', 'c', 'last']);
});

test('stop() on a stdin replay that never ends gives up at the drain bound and drops the partial line at the cut', async () => {
  const { src, r, done } = await stdinReplay('a\nb\n47', 200);
  const t0 = Date.now();
  await src.stop();
  await done;
  assert.ok(Date.now() - t0 >= 150, 'waited for EOF');
  assert.deepEqual(r.lines.map((l) => l.text), ['a', 'b']);
});

test('stop() on a file replay stops at once; a line cut by it is not delivered', async () => {
  const path = join(tmp, 'big.txt');
  await writeFile(path, `${'y'.repeat(66)}\n`.repeat(150_000)); // 10 MB: stop() lands inside it, most likely mid-line
  const src = new ReplaySource({ path });
  const r = recorder();
  const done = src.run(r);
  await new Promise((res) => setTimeout(res, 5));
  await src.stop();
  await done;
  assert.ok(r.lines.length < 150_000, 'stopped before the end');
  assert.ok(r.lines.every((l) => l.text.length === 66), 'whole lines only, never the tail cut by stop()');
});

test('prepare() opens the file, so a missing file fails before anything else starts', async () => {
  await assert.rejects(new ReplaySource({ path: join(tmp, 'absent.txt') }).prepare(), /cannot read .*absent\.txt: ENOENT/);
});

test('a missing or unreadable file rejects with one line naming the path', async () => {
  const missing = join(tmp, 'nope.txt');
  await assert.rejects(new ReplaySource({ path: missing }).run(recorder()), (e: Error) => {
    assert.equal(e.message, `cannot read ${missing}: ENOENT`);
    return true;
  });
  await assert.rejects(new ReplaySource({ path: tmp }).run(recorder()), (e: Error) => {
    assert.equal(e.message, `cannot read ${tmp}: EISDIR`);
    return true;
  });
});
