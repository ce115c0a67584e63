import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { AutoSource, createSource, ReplaySource, ToolSource } from '../../src/sources/index.ts';

test('createSource maps every spec to its source', () => {
  const auto = createSource('auto');
  assert.ok(auto instanceof AutoSource);
  assert.equal(auto.format(), 'connlat-probe', 'auto tries connlat-probe first');
  const probe = createSource('connlat-probe', { connlatProbePath: '/opt/x/connlat-probe' });
  assert.ok(probe instanceof ToolSource);
  assert.equal(probe.description, 'connlat-probe (/opt/x/connlat-probe)');
  assert.equal(probe.format(), 'connlat-probe');
  const connlat = createSource('tcpconnlat', { tcpconnlatPath: '/opt/x/tcpconnlat' });
  assert.ok(connlat instanceof ToolSource);
  assert.equal(connlat.description, 'tcpconnlat (/opt/x/tcpconnlat)');
  assert.equal(connlat.format(), 'tcpconnlat');
  const states = createSource('tcpstates');
  assert.equal(states.description, 'tcpstates (/usr/sbin/tcpstates)');
  assert.equal(states.format(), 'tcpstates');
  const file = createSource('file:/tmp/rec.txt');
  assert.ok(file instanceof ReplaySource);
  assert.equal(file.description, 'file:/tmp/rec.txt');
  assert.equal(file.format(), 'detect');
  const stdin = createSource('-', { stdin: Readable.from([]) });
  assert.equal(stdin.description, 'stdin');
  assert.equal(stdin.ready(), false);
});

test('createSource rejects an unknown spec in one line', () => {
  for (const bad of ['', 'file:', 'tcpconnlat 1', 'kprobe']) {
    assert.throws(() => createSource(bad), /^Error: unknown source '.*': expected auto, connlat-probe, tcpconnlat, tcpstates, file:PATH or '-'$/);
  }
});
