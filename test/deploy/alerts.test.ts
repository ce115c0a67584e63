// dashboards/connlat-alerts.yaml under `promtool test rules` (dashboards/connlat-alerts.test.yaml): each alert fires
// and resolves on synthetic series. This file runs promtool and fails with its report when it fails, and checks, from
// the rules file itself, that every alert has a case where it fires and a later one where that firing alert is gone.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../support/collector/collector.ts';

const ALERTS = join(REPO_ROOT, 'dashboards/connlat-alerts.yaml');
const ALERT_TESTS = join(REPO_ROOT, 'dashboards/connlat-alerts.test.yaml');
const PROMTOOL = process.env.CONNLAT_PROMTOOL ?? '/usr/bin/promtool';
const skip = existsSync(PROMTOOL) ? false : `${PROMTOOL} not found (apt-get install prometheus)`;

interface PromtoolRun {
  code: number;
  output: string;
}

/** `promtool test rules FILE`: exit status and stdout+stderr (failures are reported on stderr). */
function promtoolTestRules(file: string): Promise<PromtoolRun> {
  return new Promise((done, fail) => {
    execFile(PROMTOOL, ['test', 'rules', file], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = (err as { code?: unknown } | null)?.code;
      if (err && typeof code !== 'number') return fail(err);
      done({ code: typeof code === 'number' ? code : 0, output: `${stdout}${stderr}` });
    });
  });
}

/** Asserts promtool passed; its own report is the failure message. */
function assertPassed(run: PromtoolRun, file: string): void {
  assert.ok(run.code === 0 && /SUCCESS/.test(run.output), `promtool test rules ${file} exited ${run.code}:\n${run.output}`);
}

interface AlertRuleTest {
  eval_time: string;
  alertname: string;
  exp_alerts?: Array<{ exp_labels?: Record<string, string> }>;
}
interface RuleTestFile {
  rule_files: string[];
  tests: Array<{ name?: string; alert_rule_test?: AlertRuleTest[] }>;
}

/** Prometheus durations as promtool's eval_time takes them (e.g. 90s, 20m, 1h30m), in seconds. */
function durationSeconds(d: string): number {
  const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
  const parts = [...d.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)];
  assert.ok(parts.length > 0 && parts.map((p) => p[0]).join('') === d, `not a duration: ${d}`);
  return parts.reduce((s, [, n, u]) => s + Number(n) * unit[u!]!, 0);
}

const labelKey = (labels: Record<string, string> = {}) => JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));

/**
 * For one alert: the firing label sets of some case that are gone at a later eval_time of the same test group
 * ("fires, then resolves"). Empty when the tests never show that alert fire and resolve.
 */
function firesAndResolves(tests: RuleTestFile['tests'], alert: string): string[] {
  const found: string[] = [];
  for (const group of tests) {
    const cases = (group.alert_rule_test ?? []).filter((c) => c.alertname === alert);
    const at = cases.map((c) => ({ t: durationSeconds(c.eval_time), firing: new Set((c.exp_alerts ?? []).map((a) => labelKey(a.exp_labels))) }));
    for (const early of at) {
      for (const late of at.filter((x) => x.t > early.t)) {
        for (const k of early.firing) if (!late.firing.has(k)) found.push(`${group.name ?? '?'}: ${k} fires at ${early.t}s, resolved at ${late.t}s`);
      }
    }
  }
  return found;
}

test('promtool test rules dashboards/connlat-alerts.test.yaml passes', { skip }, async () => {
  assertPassed(await promtoolTestRules(ALERT_TESTS), ALERT_TESTS);
});

test('every alert of connlat-alerts.yaml has a test where it fires and later resolves', async () => {
  const rules = parseYaml(await readFile(ALERTS, 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string; record?: string }> }> };
  const alerts = rules.groups.flatMap((g) => g.rules).map((r) => r.alert);
  assert.ok(alerts.length > 0 && alerts.every((a) => a), 'the rules file holds only alerts (a recording rule would need a promql_expr_test)');
  const tests = parseYaml(await readFile(ALERT_TESTS, 'utf8')) as RuleTestFile;
  assert.deepEqual(tests.rule_files.map((f) => resolve(dirname(ALERT_TESTS), f)), [ALERTS], 'the tests load the shipped rules file');
  for (const alert of alerts) {
    const cases = firesAndResolves(tests.tests, alert!);
    assert.ok(cases.length > 0, `${alert}: no test where it fires and then resolves`);
  }
  const tested = new Set(tests.tests.flatMap((g) => (g.alert_rule_test ?? []).map((c) => c.alertname)));
  assert.deepEqual([...tested].filter((a) => !alerts.includes(a)), [], 'tests name alerts the rules file does not have');
});

test('fires-and-resolves check: a firing set still there later is not a resolution', () => {
  const fired = { exp_labels: { server_port: '443' } };
  const other = { exp_labels: { server_port: '80' } };
  const group = (cases: Array<[string, Array<typeof fired>]>) => [
    { name: 'g', alert_rule_test: cases.map(([eval_time, exp_alerts]) => ({ eval_time, alertname: 'A', exp_alerts })) },
  ];
  assert.deepEqual(firesAndResolves(group([['20m', [fired]], ['40m', [fired]]]), 'A'), []);
  assert.deepEqual(firesAndResolves(group([['10m', []], ['20m', [fired]]]), 'A'), []); // silent before it fired: no resolution
  assert.deepEqual(firesAndResolves(group([['20m', [fired]], ['40m', [fired]]]), 'B'), []);
  assert.equal(firesAndResolves(group([['20m', [fired, other]], ['1h', [other]]]), 'A').length, 1);
  assert.equal(durationSeconds('1h30m'), 5400);
  assert.throws(() => durationSeconds('20'), /not a duration/);
});

test('a wrong expectation makes promtool, and so this test, fail with promtool\'s report', { skip }, async () => {
  // A copy of the tests (beside a copy of the rules) that expects another failure ratio in the payments alert.
  const dir = await mkdtemp(join(tmpdir(), 'connlat-alerts-'));
  try {
    await copyFile(ALERTS, join(dir, basename(ALERTS)));
    const tests = await readFile(ALERT_TESTS, 'utf8');
    const wrong = tests.replace('description: "16.67% of connects fail (cluster prod)."', 'description: "15% of connects fail (cluster prod)."');
    assert.notEqual(wrong, tests, 'the mutation applies');
    const file = join(dir, 'wrong.test.yaml');
    await writeFile(file, wrong);
    const run = await promtoolTestRules(file);
    assert.notEqual(run.code, 0);
    assert.throws(() => assertPassed(run, file), (err: Error) => /FAILED[\s\S]*16\.67% of connects fail/.test(err.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
