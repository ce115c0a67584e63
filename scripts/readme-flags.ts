// Writes the flags table into README.md from src/config.ts SETTINGS (`npx node scripts/readme-flags.ts`);
// test/readme.test.ts fails when the README and the settings drift apart.
import { readFileSync, writeFileSync } from 'node:fs';
import { SETTINGS, settingHelp } from '../src/config.ts';

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

export function withFlags(readme: string): string {
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error('README.md has no FLAGS:BEGIN/END markers');
  return readme.slice(0, start + BEGIN.length) + '\n' + flagsTable() + '\n' + readme.slice(end);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = new URL('../README.md', import.meta.url);
  writeFileSync(path, withFlags(readFileSync(path, 'utf8')));
}
