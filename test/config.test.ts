import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, DEFAULT_METRIC_ATTRIBUTES, helpText, parseCommandLine, SETTINGS } from '../src/config.ts';

const parse = (argv: string[], env: Record<string, string> = {}) => parseCommandLine(argv, env);

test('defaults', () => {
  const { command, config } = parse([]);
  assert.equal(command, 'run');
  assert.equal(config.source, 'auto');
  assert.deepEqual(config.exports, ['otlp']);
  assert.equal(config.slowMs, 100);
  assert.equal(config.histogram, 'explicit');
  assert.equal(config.temporality, 'cumulative');
  assert.deepEqual(config.metricAttributes, [...DEFAULT_METRIC_ATTRIBUTES]);
  assert.equal(config.tcpconnlatPath, '/usr/sbin/tcpconnlat');
});

test('flags, repeatable and comma-separated lists', () => {
  const { config } = parse(['--source', 'file:/tmp/x', '--export', 'otlp-json:/tmp/o.json', '--export', 'console,otlp', '--slow-ms', '12.5']);
  assert.equal(config.source, 'file:/tmp/x');
  assert.deepEqual(config.exports, ['otlp-json:/tmp/o.json', 'console', 'otlp']);
  assert.equal(config.slowMs, 12.5);
});

test('precedence: flag > env > file > default', () => {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-config-'));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'slowMs: 7\nhistogram: exponential\ncardinalityLimit: 50\n');
  const env = { CONNLAT_CONFIG: file, CONNLAT_HISTOGRAM: 'explicit', CONNLAT_CARDINALITY_LIMIT: '60' };
  const { config } = parse(['--cardinality-limit', '70'], env);
  assert.equal(config.slowMs, 7); // file
  assert.equal(config.histogram, 'explicit'); // env over file
  assert.equal(config.cardinalityLimit, 70); // flag over env
});

test('subcommands and help', () => {
  assert.equal(parse(['doctor']).command, 'doctor');
  assert.equal(parse(['run']).command, 'run');
  assert.equal(parse(['--help']).command, 'help');
  const help = helpText('1.2.3');
  for (const s of SETTINGS) assert.ok(help.includes(`--${s.flag}`), `--help documents --${s.flag}`);
});

const invalid: Array<[string, string[], Record<string, string>, RegExp]> = [
  ['non-numeric slow-ms flag', ['--slow-ms', 'abc'], {}, /--slow-ms.*expected a number.*'abc'/],
  ['negative slow-ms', ['--slow-ms=-1'], {}, /invalid setting --slow-ms .*must be >= 0/],
  ['bad env names the env var', [], { CONNLAT_SLOW_MS: 'fast' }, /CONNLAT_SLOW_MS.*expected a number/],
  ['unknown source', ['--source', 'kprobe'], {}, /invalid setting --source .*expected auto, tcpconnlat/],
  ['unknown exporter', ['--export', 'zipkin'], {}, /invalid setting --export .*expected otlp, console or otlp-json:PATH/],
  ['empty otlp-json path', ['--export', 'otlp-json:'], {}, /--export/],
  ['histogram enum', ['--histogram', 'linear'], {}, /invalid setting --histogram/],
  ['fractional cardinality', ['--cardinality-limit', '1.5'], {}, /--cardinality-limit/],
  ['health addr', ['--health-addr', 'nope'], {}, /--health-addr .*HOST:PORT or off/],
  ['endpoint not a URL', ['--otlp-endpoint', 'gateway 4317'], {}, /--otlp-endpoint/],
  ['unknown flag', ['--slowms', '3'], {}, /Unknown option '--slowms'/],
  ['unknown command', ['serve'], {}, /unknown command 'serve'/],
];
for (const [name, argv, env, re] of invalid) {
  test(`invalid: ${name}`, () => {
    assert.throws(() => parse(argv, env), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, re);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    });
  });
}

test('config file errors name the file and key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-config-'));
  const unknownKey = join(dir, 'u.yaml');
  writeFileSync(unknownKey, 'slowms: 3\n');
  assert.throws(() => parse(['--config', unknownKey]), /unknown setting 'slowms'/);
  const badValue = join(dir, 'b.json');
  writeFileSync(badValue, '{"temporality": "sometimes"}');
  assert.throws(() => parse(['-c', badValue]), /invalid setting --temporality \(env CONNLAT_TEMPORALITY, file key temporality\)/);
  assert.throws(() => parse(['-c', join(dir, 'missing.yaml')]), /cannot read config file .*missing\.yaml/);
});

test('an unknown metric attribute key is a typo, named in the error', () => {
  assert.throws(() => parse(['--metric-attributes', 'server.adress']), /invalid setting --metric-attributes .*expected keys from network\.type/);
  const { config } = parse(['--metric-attributes', 'server.address,k8s.dst.name']);
  assert.deepEqual(config.metricAttributes, ['server.address', 'k8s.dst.name']);
});
