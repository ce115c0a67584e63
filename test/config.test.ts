import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, DEFAULT_METRIC_ATTRIBUTES, helpText, parseCommandLine, SETTINGS } from '../src/config.ts';
import { EXIT } from '../src/exit-status.ts';

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
  for (const { code, meaning } of Object.values(EXIT)) assert.ok(help.includes(`  ${code}  ${meaning}`), `--help documents exit status ${code}`);
});

const invalid: Array<[string, string[], Record<string, string>, RegExp]> = [
  ['non-numeric slow-ms flag', ['--slow-ms', 'abc'], {}, /--slow-ms.*expected a decimal number, got 'abc'/],
  ['negative slow-ms', ['--slow-ms=-1'], {}, /invalid setting --slow-ms .*must be >= 0/],
  ['bad env names the env var', [], { CONNLAT_SLOW_MS: 'fast' }, /CONNLAT_SLOW_MS.*expected a decimal number/],
  ['unknown source', ['--source', 'kprobe'], {}, /invalid setting --source .*expected auto, connlat-probe, tcpconnlat/],
  ['unknown exporter', ['--export', 'zipkin'], {}, /invalid setting --export .*expected otlp, console or otlp-json:PATH/],
  ['empty otlp-json path', ['--export', 'otlp-json:'], {}, /--export/],
  ['histogram enum', ['--histogram', 'linear'], {}, /invalid setting --histogram/],
  ['fractional cardinality', ['--cardinality-limit', '1.5'], {}, /--cardinality-limit/],
  ['health addr', ['--health-addr', 'nope'], {}, /--health-addr .*HOST:PORT or off/],
  ['endpoint not a URL', ['--otlp-endpoint', 'gateway 4317'], {}, /--otlp-endpoint/],
  ['unknown flag', ['--slowms', '3'], {}, /Unknown option '--slowms'/],
  // ranges are configuration errors that name the flag and the allowed range (issue 11 item 7)
  ['cardinality-limit 1', ['--cardinality-limit', '1'], {}, /invalid setting --cardinality-limit .*an integer from 2 to 1000000 \(got 1\)/],
  ['cardinality-limit 2000000', ['--cardinality-limit', '2000000'], {}, /--cardinality-limit .*an integer from 2 to 1000000 \(got 2000000\)/],
  ['health-addr port 99999', ['--health-addr', '127.0.0.1:99999'], {}, /invalid setting --health-addr .*port from 0 to 65535 \(got "127\.0\.0\.1:99999"\)/],
  ['health-addr port not a number', ['--health-addr', '127.0.0.1:http'], {}, /--health-addr .*HOST:PORT or off/],
  ['shutdown-timeout-ms 50', ['--shutdown-timeout-ms', '50'], {}, /--shutdown-timeout-ms .*an integer from 100 to 60000 \(got 50\)/],
  ['slow-log-burst 1.5', ['--slow-log-burst', '1.5'], {}, /--slow-log-burst .*an integer from 1 to 1000000 \(got 1\.5\)/],
  ['export interval 0.5 from env', [], { CONNLAT_EXPORT_INTERVAL_MS: '0.5' }, /CONNLAT_EXPORT_INTERVAL_MS.*an integer from 100 to 3600000 \(got 0\.5\)/],
  ['slow-ms in hex', ['--slow-ms', '0x10'], {}, /--slow-ms.*expected a decimal number, got '0x10'/],
  ['slow-ms with exponent', ['--slow-ms', '1e3'], {}, /--slow-ms.*expected a decimal number, got '1e3'/],
  ['endpoint mailto', ['--otlp-endpoint', 'mailto:a@b'], {}, /invalid setting --otlp-endpoint .*http:\/\/HOST:PORT, https:\/\/HOST:PORT or HOST:PORT/],
  ['endpoint ftp', ['--otlp-endpoint', 'ftp://gateway:4317'], {}, /--otlp-endpoint .*http:\/\/HOST:PORT/],
  ['endpoint unix', ['--otlp-endpoint', 'unix:/run/otel.sock'], {}, /--otlp-endpoint .*http:\/\/HOST:PORT/],
  ['endpoint port out of range', ['--otlp-endpoint', 'http://gateway:70000'], {}, /--otlp-endpoint/],
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

test('ranges: the edges are accepted; endpoints the exporter can use are accepted', () => {
  const { config } = parse(['--cardinality-limit', '2', '--shutdown-timeout-ms', '60000', '--health-addr', '127.0.0.1:0', '--slow-ms', '0.5']);
  assert.equal(config.cardinalityLimit, 2);
  assert.equal(config.shutdownTimeoutMs, 60000);
  assert.equal(config.slowMs, 0.5);
  for (const endpoint of ['http://gateway:4317', 'https://gateway.example:4317', 'gateway:4317', 'http://[::1]:4317', 'http://10.0.0.1:4317/']) {
    assert.equal(parse(['--otlp-endpoint', endpoint]).config.otlpEndpoint, endpoint);
  }
});

test('a YAML number that is not finite says so, naming the file key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-config-'));
  for (const value of ['.inf', '-.inf', '1e309', '.nan']) {
    const file = join(dir, 'n.yaml');
    writeFileSync(file, `slowMs: ${value}\n`);
    assert.throws(() => parse(['-c', file]), /invalid setting --slow-ms .*not a finite number/, value);
  }
});

test('an unknown metric attribute key is a typo, named in the error', () => {
  assert.throws(() => parse(['--metric-attributes', 'server.adress']), /invalid setting --metric-attributes .*expected keys from network\.type/);
  const { config } = parse(['--metric-attributes', 'server.address,k8s.dst.name']);
  assert.deepEqual(config.metricAttributes, ['server.address', 'k8s.dst.name']);
});
