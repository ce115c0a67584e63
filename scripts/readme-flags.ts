// Writes the generated tables into README.md (`npx node scripts/readme-flags.ts`): the flags from src/config.ts
// SETTINGS, the exit statuses from src/exit-status.ts, the metrics and attributes from src/telemetry/schema.ts.
// test/readme.test.ts fails when the README and the code drift apart.
import { readFileSync, writeFileSync } from 'node:fs';
import { SETTINGS, settingHelp } from '../src/config.ts';
import { EXIT } from '../src/exit-status.ts';
import { ATTRIBUTES, INSTRUMENTS } from '../src/telemetry/schema.ts';

export const BEGIN = '<!-- FLAGS:BEGIN (generated from src/config.ts SETTINGS by test/readme.test.ts, which fails when this drifts) -->';
export const END = '<!-- FLAGS:END -->';

export function flagsTable(): string {
  const rows = ['| flag | env | file key | meaning |', '| --- | --- | --- | --- |'];
  rows.push('| `-c, --config FILE` | `CONNLAT_CONFIG` | | settings file (YAML or JSON) |');
  for (const s of SETTINGS) {
    const env = `CONNLAT_${s.flag.toUpperCase().replaceAll('-', '_')}`;
    rows.push(`| \`--${s.flag}\` | \`${env}\` | \`${String(s.key)}\` | ${settingHelp(s).replaceAll('|', '\\|')} |`);
  }
  return rows.join('\n');
}

export const EXIT_BEGIN = '<!-- EXIT:BEGIN (generated from src/exit-status.ts by test/readme.test.ts, which fails when this drifts) -->';
export const EXIT_END = '<!-- EXIT:END -->';

export function exitTable(): string {
  const rows = ['| exit status | meaning |', '| --- | --- |'];
  for (const { code, meaning } of Object.values(EXIT)) rows.push(`| ${code} | ${meaning.replaceAll('|', '\\|')} |`);
  return rows.join('\n');
}

function replaceBetween(text: string, begin: string, end: string, body: string): string {
  const start = text.indexOf(begin);
  const stop = text.indexOf(end);
  if (start < 0 || stop < start) throw new Error(`README.md has no ${begin.slice(5, begin.indexOf(':'))} markers`);
  return text.slice(0, start + begin.length) + '\n' + body + '\n' + text.slice(stop);
}

/** The README with both generated tables brought up to date. */
export function withFlags(readme: string): string {
  return replaceBetween(replaceBetween(readme, BEGIN, END, flagsTable()), EXIT_BEGIN, EXIT_END, exitTable());
}

const cell = (text: string) => text.replaceAll('|', '\\|');

export function metricsTable(): string {
  const rows = ['| metric | type | unit | attributes | description (exported with it) |', '| --- | --- | --- | --- | --- |'];
  for (const m of Object.values(INSTRUMENTS)) {
    const type = 'note' in m ? `${m.kind}: ${m.note}` : m.kind;
    rows.push(`| \`${m.name}\` | ${cell(type)} | \`${m.unit}\` | ${cell(m.attributes)} | ${cell(m.description)} |`);
  }
  return rows.join('\n');
}

export function attributesTable(): string {
  const rows = ['| attribute | type | on metrics (`--metric-attributes`) | on slow-connection logs and connect spans | value |', '| --- | --- | --- | --- | --- |'];
  for (const a of ATTRIBUTES) {
    const onMetrics = a.signal === 'logs' ? 'no' : a.onByDefault ? 'default' : 'opt-in';
    const value = a.identity ? `${a.brief} (Kubernetes enrichment)` : a.brief;
    rows.push(`| \`${a.key}\` | ${a.type} | ${onMetrics} | yes | ${cell(value)} |`);
  }
  return rows.join('\n');
}

const SCHEMA_MARK = '(generated from src/telemetry/schema.ts by scripts/readme-flags.ts; test/readme.test.ts fails when this drifts) -->';
export const METRICS_BEGIN = `<!-- METRICS:BEGIN ${SCHEMA_MARK}`;
export const ATTRIBUTES_BEGIN = `<!-- ATTRIBUTES:BEGIN ${SCHEMA_MARK}`;

/** The README with its metric and attribute tables generated from src/telemetry/schema.ts. */
export function withTelemetryTables(readme: string): string {
  const metrics = replaceBetween(readme, METRICS_BEGIN, '<!-- METRICS:END -->', metricsTable());
  return replaceBetween(metrics, ATTRIBUTES_BEGIN, '<!-- ATTRIBUTES:END -->', attributesTable());
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = new URL('../README.md', import.meta.url);
  writeFileSync(path, withTelemetryTables(withFlags(readFileSync(path, 'utf8'))));
}
