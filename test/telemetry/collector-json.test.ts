// Our otlp-json lines against the real OpenTelemetry Collector's file exporter: the same export goes over gRPC to
// otelcol-connlat (otlp receiver -> file exporter) and to our otlp-json file; both must hold the same requests.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { createTelemetry } from '../../src/telemetry/index.ts';
import { comparable, FAILURES, NINE_CONNECTS, options } from './helpers.ts';
import { freePort } from '../support/net.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

function collectorBinary(): string | undefined {
  try {
    const path = execFileSync('bash', [join(REPO, 'scripts/build-collector.sh'), '--path'], { encoding: 'utf8' }).trim();
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    return undefined;
  }
}

async function waitUntil(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });

/** The complete lines of a file the Collector may be writing right now (the text after the last newline is not one). */
function jsonLines(path: string): any[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .slice(0, -1)
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l));
}

const binary = collectorBinary();

describe('telemetry: otlp-json matches the Collector file exporter', () => {
  for (const histogram of ['explicit', 'exponential'] as const) {
    it(`writes the same metrics, logs and traces requests as otelcol-connlat does (${histogram} histogram; exemplars with explicit)`, { skip: binary ? false : 'otelcol-connlat not built (scripts/build-collector.sh; .ci/run builds it)' }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'connlat-collector-json-'));
      const port = await freePort();
      const collectorOut = join(dir, 'collector.jsonl');
      const ourOut = join(dir, 'ours.jsonl');
      const config = join(dir, 'config.yaml');
      writeFileSync(
        config,
        [
          'receivers:',
          '  otlp:',
          '    protocols:',
          '      grpc:',
          `        endpoint: 127.0.0.1:${port}`,
          'exporters:',
          '  file:',
          `    path: ${collectorOut}`,
          '    flush_interval: 100ms',
          'service:',
          '  telemetry:',
          '    metrics:',
          '      level: none',
          '  pipelines:',
          '    metrics: { receivers: [otlp], exporters: [file] }',
          '    logs: { receivers: [otlp], exporters: [file] }',
          '    traces: { receivers: [otlp], exporters: [file] }',
          '',
        ].join('\n'),
      );
      let collector: ChildProcess | undefined;
      let stderr = '';
      try {
        collector = spawn(binary!, [`--config=${config}`], { stdio: ['ignore', 'ignore', 'pipe'] });
        collector.stderr!.on('data', (d) => (stderr += d));
        await waitUntil(() => canConnect(port), 30_000, `the collector to listen on ${port}\n${stderr}`);

        const telemetry = createTelemetry(
          options({ histogram, traces: true, exports: [{ kind: 'otlp', endpoint: `http://127.0.0.1:${port}` }, { kind: 'otlp-json', path: ourOut }] }),
        );
        for (const e of [...NINE_CONNECTS, ...FAILURES]) telemetry.record(e);
        telemetry.self.lineRejected('bad_field_count');
        await telemetry.shutdown();

        await waitUntil(() => jsonLines(collectorOut).length >= 3, 10_000, 'the collector file exporter to write 3 lines');
        const theirs = jsonLines(collectorOut);
        const ours = jsonLines(ourOut);
        const pick = (lines: any[], key: string) => lines.filter((l) => key in l);
        assert.equal(pick(theirs, 'resourceMetrics').length, 1);
        assert.equal(pick(theirs, 'resourceLogs').length, 1);
        assert.equal(pick(theirs, 'resourceSpans').length, 1);
        assert.equal(JSON.stringify(pick(ours, 'resourceSpans')), JSON.stringify(pick(theirs, 'resourceSpans')), 'spans, times included');
        const exemplars = (lines: any[]) => JSON.stringify(pick(lines, 'resourceMetrics')[0].resourceMetrics[0].scopeMetrics[0].metrics[0].histogram?.dataPoints.map((p: any) => p.exemplars));
        if (histogram === 'explicit') {
          assert.equal(exemplars(ours), exemplars(theirs), 'exemplars, times included');
          assert.match(exemplars(theirs), /"traceId":"[0-9a-f]{32}"/);
        }
        // Compared as text, so field order counts too.
        assert.equal(JSON.stringify(comparable(pick(ours, 'resourceMetrics'), { keepZeroDropped: true })), JSON.stringify(comparable(pick(theirs, 'resourceMetrics'), { keepZeroDropped: true })));
        assert.equal(JSON.stringify(comparable(pick(ours, 'resourceLogs'), { keepZeroDropped: true })), JSON.stringify(comparable(pick(theirs, 'resourceLogs'), { keepZeroDropped: true })));
        // the log records' own times pass through unchanged
        assert.deepEqual(
          pick(ours, 'resourceLogs')[0].resourceLogs[0].scopeLogs[0].logRecords.map((r: any) => r.timeUnixNano),
          pick(theirs, 'resourceLogs')[0].resourceLogs[0].scopeLogs[0].logRecords.map((r: any) => r.timeUnixNano),
        );
      } finally {
        if (collector && collector.exitCode === null) {
          const exited = new Promise((r) => collector!.once('exit', r));
          collector.kill('SIGTERM');
          await exited;
        }
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
