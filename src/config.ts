// The only place settings are read. Flags > CONNLAT_* env > config file (YAML or JSON) > defaults, merged into one
// raw object and validated by one zod schema, so every invalid setting is reported with the flag, env var and file
// key that set it.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { yamlModule } from './lazy.ts';
import * as z from 'zod';
import { EXIT } from './exit-status.ts';
import { DEFAULT_TOOL_PATHS } from './sources/types.ts';
import { EXPORT_SPEC_EXPECTED, ExportSpecSchema, SOURCE_SPEC_EXPECTED, SourceSpecSchema } from './specs.ts';
import { DEFAULT_METRIC_ATTRIBUTES, METRIC_ATTRIBUTE_KEYS } from './telemetry/schema.ts';

export { DEFAULT_METRIC_ATTRIBUTES };

type Kind = 'string' | 'number' | 'list' | 'boolean';

/** What a number setting allows: declared here once, enforced by the schema and stated in --help and the README. */
interface NumberRange {
  min: number;
  max?: number;
  integer?: boolean;
}

interface SettingSpec {
  /** key in Config and in the config file */
  key: keyof ConfigInput;
  flag: string;
  kind: Kind;
  help: string;
  short?: string;
  /** number settings only */
  range?: NumberRange;
}

/** Every setting, in --help order. Env name is CONNLAT_ + flag in upper snake case. */
export const SETTINGS: SettingSpec[] = [
  { key: 'source', flag: 'source', kind: 'string', help: 'auto | connlat-probe | tcpconnlat | tcpstates | file:PATH | - (stdin). Default auto: the first of connlat-probe, tcpconnlat that attaches, else tcpstates' },
  { key: 'exports', flag: 'export', kind: 'list', help: 'otlp | otlp-json:PATH | console; repeatable or comma-separated. Default otlp (gRPC, OTEL_EXPORTER_OTLP_* env honoured)' },
  { key: 'otlpEndpoint', flag: 'otlp-endpoint', kind: 'string', help: 'OTLP gRPC endpoint; default OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4317' },
  { key: 'slowMs', flag: 'slow-ms', kind: 'number', help: 'log every connect slower than this many milliseconds (decimal). Default 100', range: { min: 0 } },
  { key: 'slowLogRate', flag: 'slow-log-rate', kind: 'number', help: 'slow-connection log records per second, sustained (token bucket). Default 100', range: { min: 0 } },
  { key: 'slowLogBurst', flag: 'slow-log-burst', kind: 'number', help: 'slow-connection log burst size. Default 500', range: { min: 1, max: 1_000_000, integer: true } },
  { key: 'traces', flag: 'traces', kind: 'string', help: 'on | off: one span (kind CLIENT, `tcp.connect`) per slow connect (with its log record, under the same token) and per failed connect (a fast failure: a bucket of its own, same rate and burst); linked from the log record and the histogram\'s exemplars. Default on' },
  { key: 'histogram', flag: 'histogram', kind: 'string', help: 'explicit (buckets 50us..10s) | exponential. Default explicit' },
  { key: 'metricAttributes', flag: 'metric-attributes', kind: 'list', help: `metric attribute allow list. Default ${DEFAULT_METRIC_ATTRIBUTES.join(',')}` },
  { key: 'cardinalityLimit', flag: 'cardinality-limit', kind: 'number', help: 'max attribute sets per metric; beyond it otel.metric.overflow=true. Default 2000', range: { min: 2, max: 1_000_000, integer: true } },
  { key: 'exportIntervalMs', flag: 'export-interval-ms', kind: 'number', help: 'metric export interval. Default 10000', range: { min: 100, max: 3_600_000, integer: true } },
  { key: 'logQueueSize', flag: 'log-queue-size', kind: 'number', help: 'slow-connection log records queued while the OTLP gateway is unreachable; beyond it dropped and counted (connlat.logs.dropped{reason=queue_full}). Default 8192', range: { min: 1, max: 1_000_000, integer: true } },
  { key: 'exportRetryMaxMs', flag: 'export-retry-max-ms', kind: 'number', help: 'longest backoff between OTLP export retries (exponential from 1 s, jittered). Default 30000', range: { min: 100, max: 600_000, integer: true } },
  { key: 'temporality', flag: 'temporality', kind: 'string', help: 'cumulative | delta. Default cumulative (remote-write backends drop delta histograms)' },
  { key: 'connlatProbePath', flag: 'connlat-probe-path', kind: 'string', help: `connlat-probe binary (bpf-tools/connlat-probe). Default ${DEFAULT_TOOL_PATHS['connlat-probe']}` },
  { key: 'tcpconnlatPath', flag: 'tcpconnlat-path', kind: 'string', help: `tcpconnlat binary. Default ${DEFAULT_TOOL_PATHS.tcpconnlat}` },
  { key: 'tcpstatesPath', flag: 'tcpstates-path', kind: 'string', help: `tcpstates binary. Default ${DEFAULT_TOOL_PATHS.tcpstates}` },
  { key: 'stdbufPath', flag: 'stdbuf-path', kind: 'string', help: 'stdbuf binary (line-buffers the tool). Default stdbuf' },
  { key: 'healthAddr', flag: 'health-addr', kind: 'string', help: 'HOST:PORT for /healthz and /readyz, or off. Default 0.0.0.0:9300' },
  { key: 'view', flag: 'view', kind: 'string', help: 'live terminal table: auto (when stdout is a TTY) | on | off. Default auto' },
  { key: 'clusterName', flag: 'cluster-name', kind: 'string', help: 'k8s.cluster.name resource attribute' },
  { key: 'kubernetes', flag: 'kubernetes', kind: 'string', help: 'Kubernetes enrichment: auto (in a cluster) | on | off. Default auto' },
  { key: 'kubeconfig', flag: 'kubeconfig', kind: 'string', help: 'kubeconfig file for enrichment out of a cluster (and for tests); in a pod the ServiceAccount is used' },
  { key: 'nodeName', flag: 'node-name', kind: 'string', help: "this node's name: selects its pods as connection sources. Default env NODE_NAME (Downward API)" },
  { key: 'hostProc', flag: 'host-proc', kind: 'string', help: 'host /proc mount (PID -> container). Default /proc' },
  { key: 'shutdownTimeoutMs', flag: 'shutdown-timeout-ms', kind: 'number', help: 'max time to drain and flush on SIGTERM, SIGINT or SIGHUP (a stdin replay reads on for at most half of it). Default 9000', range: { min: 100, max: 60_000, integer: true } },
  { key: 'logLevel', flag: 'log-level', kind: 'string', help: 'debug | info | warn | error. Default info' },
];

/** "an integer from 2 to 1000000", ">= 0": what a range allows, in the words of the error and the help. */
export function rangeText(r: NumberRange): string {
  if (r.integer) return r.max !== undefined ? `an integer from ${r.min} to ${r.max}` : `an integer >= ${r.min}`;
  return r.max !== undefined ? `from ${r.min} to ${r.max}` : `>= ${r.min}`;
}

/** The schema of a number setting, from the range SETTINGS declares for it. */
function ranged(key: string, fallback: number): z.ZodDefault<z.ZodNumber> {
  const r: NumberRange | undefined = (SETTINGS as readonly { key: string; range?: NumberRange }[]).find((s) => s.key === key)?.range;
  if (r === undefined) throw new Error(`config: ${key} has no range`);
  const max = r.max ?? Number.POSITIVE_INFINITY;
  return z
    .number({ error: (issue) => (typeof issue.input === 'number' ? 'not a finite number' : 'expected a number') })
    .refine((v) => v >= r.min && v <= max && (!r.integer || Number.isInteger(v)), { message: `must be ${rangeText(r)}` })
    .default(fallback);
}

/** HOST:PORT with a port from 0 to 65535 (an empty HOST listens on every address). */
function isHostPort(s: string): boolean {
  const sep = s.lastIndexOf(':');
  if (sep < 0 || /\s/.test(s)) return false;
  const port = s.slice(sep + 1);
  return /^\d{1,5}$/.test(port) && Number(port) <= 65535;
}

/**
 * An endpoint the OTLP gRPC exporter can use: http://HOST:PORT (plaintext), https://HOST:PORT (TLS) or HOST:PORT (TLS
 * unless OTEL_EXPORTER_OTLP_INSECURE=true). The SDK would take anything else (mailto:, ftp://, unix:) and fail every
 * export.
 */
function isOtlpEndpoint(s: string): boolean {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(s);
  if (scheme === null) return /^[^/:\s]+:\d{1,5}$/.test(s) && isHostPort(s);
  if (scheme[1]!.toLowerCase() !== 'http' && scheme[1]!.toLowerCase() !== 'https') return false;
  try {
    const url = new URL(s);
    return url.hostname !== '' && url.username === '' && url.search === '' && url.hash === '';
  } catch {
    return false;
  }
}

export const ConfigSchema = z.object({
  source: z.string().refine((s) => SourceSpecSchema.safeParse(s).success, { message: SOURCE_SPEC_EXPECTED }).default('auto'),
  exports: z
    .array(z.string().refine((s) => ExportSpecSchema.safeParse(s).success, { message: EXPORT_SPEC_EXPECTED }))
    .min(1, { message: 'at least one exporter is needed' })
    .default(['otlp']),
  otlpEndpoint: z
    .string()
    .refine(isOtlpEndpoint, { message: 'expected http://HOST:PORT, https://HOST:PORT or HOST:PORT (OTLP gRPC)' })
    .optional(),
  slowMs: ranged('slowMs', 100),
  slowLogRate: ranged('slowLogRate', 100),
  slowLogBurst: ranged('slowLogBurst', 500),
  traces: z.enum(['on', 'off']).default('on'),
  histogram: z.enum(['explicit', 'exponential']).default('explicit'),
  metricAttributes: z
    .array(z.enum(METRIC_ATTRIBUTE_KEYS, { error: `expected keys from ${METRIC_ATTRIBUTE_KEYS.join(', ')}` }))
    .default([...DEFAULT_METRIC_ATTRIBUTES]),
  cardinalityLimit: ranged('cardinalityLimit', 2000),
  exportIntervalMs: ranged('exportIntervalMs', 10_000),
  logQueueSize: ranged('logQueueSize', 8192),
  exportRetryMaxMs: ranged('exportRetryMaxMs', 30_000),
  temporality: z.enum(['cumulative', 'delta']).default('cumulative'),
  connlatProbePath: z.string().min(1).default(DEFAULT_TOOL_PATHS['connlat-probe']),
  tcpconnlatPath: z.string().min(1).default(DEFAULT_TOOL_PATHS.tcpconnlat),
  tcpstatesPath: z.string().min(1).default(DEFAULT_TOOL_PATHS.tcpstates),
  stdbufPath: z.string().min(1).default('stdbuf'),
  healthAddr: z
    .string()
    .refine((s) => s === 'off' || isHostPort(s), { message: 'expected HOST:PORT or off, with a port from 0 to 65535' })
    .default('0.0.0.0:9300'),
  view: z.enum(['auto', 'on', 'off']).default('auto'),
  clusterName: z.string().min(1).optional(),
  kubernetes: z.enum(['auto', 'on', 'off']).default('auto'),
  kubeconfig: z.string().min(1).optional(),
  nodeName: z.string().min(1).optional(),
  hostProc: z.string().min(1).default('/proc'),
  shutdownTimeoutMs: ranged('shutdownTimeoutMs', 9000),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
})
  // the spec strings as typed unions (specs.ts), for the stages; the strings stay as given (--help, logs)
  .transform((c) => ({ ...c, sourceSpec: SourceSpecSchema.parse(c.source), exportSpecs: c.exports.map((e) => ExportSpecSchema.parse(e)) }));

export type Config = z.output<typeof ConfigSchema>;
type ConfigInput = z.input<typeof ConfigSchema>;

export class ConfigError extends Error {}

export interface ParsedCommandLine {
  command: 'run' | 'doctor' | 'help' | 'version';
  config: Config;
}

const envName = (flag: string) => `CONNLAT_${flag.toUpperCase().replaceAll('-', '_')}`;

/** Flags and env vars are documented as decimal: "0x10", "1e3", "Infinity" are not taken for numbers. */
const DECIMAL = /^-?\d+(\.\d+)?$/;

function convert(spec: SettingSpec, value: unknown, origin: string): unknown {
  if (spec.kind === 'number' && typeof value === 'string') {
    const text = value.trim();
    const n = DECIMAL.test(text) ? Number(text) : Number.NaN;
    if (!Number.isFinite(n)) throw new ConfigError(`invalid setting ${origin}: expected a decimal number, got '${value}'`);
    return n;
  }
  if (spec.kind === 'list') {
    const items = Array.isArray(value) ? value.map(String) : [String(value)];
    return items.flatMap((s) => splitList(s));
  }
  return value;
}

/** Comma-separated list; a comma inside otlp-json:PATH paths is not supported (documented). */
function splitList(s: string): string[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
}

function describeOrigin(spec: SettingSpec): string {
  return `--${spec.flag} (env ${envName(spec.flag)}, file key ${spec.key})`;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = yamlModule().parse(text); // YAML is a superset of JSON
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(`config file ${path}: expected a mapping of settings`);
  const known = new Set(SETTINGS.map((s) => s.key as string));
  for (const key of Object.keys(data)) {
    if (!known.has(key)) throw new ConfigError(`config file ${path}: unknown setting '${key}' (known: ${[...known].join(', ')})`);
  }
  return data as Record<string, unknown>;
}

/** Builds the Config from argv (without node and script), an env and an optional config file. Throws ConfigError. */
export function parseCommandLine(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedCommandLine {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    config: { type: 'string', short: 'c' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean' },
  };
  for (const s of SETTINGS) options[s.flag] = { type: 'string', ...(s.kind === 'list' ? { multiple: true } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message.split('\n')[0]} (see connlat --help)`);
  }
  const { values, positionals } = parsed;
  const [sub, ...extra] = positionals;
  if (extra.length > 0) throw new ConfigError(`unexpected argument '${extra[0]}' (see connlat --help)`);
  if (sub !== undefined && sub !== 'run' && sub !== 'doctor') throw new ConfigError(`unknown command '${sub}': expected run or doctor`);
  const command = values.help ? 'help' : values.version ? 'version' : ((sub ?? 'run') as 'run' | 'doctor');

  const configPath = (values.config as string | undefined) ?? env.CONNLAT_CONFIG;
  const fromFile = configPath ? readConfigFile(configPath) : {};
  const raw: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    const flagValue = values[spec.flag];
    const envValue = env[envName(spec.flag)];
    const fileValue = fromFile[spec.key];
    if (flagValue !== undefined) raw[spec.key] = convert(spec, flagValue, `--${spec.flag}`);
    else if (envValue !== undefined && envValue !== '') raw[spec.key] = convert(spec, envValue, envName(spec.flag));
    else if (fileValue !== undefined) raw[spec.key] = convert(spec, fileValue, `${configPath}: ${spec.key}`);
  }
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const spec = SETTINGS.find((s) => s.key === issue.path[0]);
    const where = spec ? describeOrigin(spec) : String(issue.path.join('.'));
    const value = raw[spec?.key ?? ''];
    const got = spec ? ` (got ${typeof value === 'number' ? String(value) : JSON.stringify(value)})` : '';
    throw new ConfigError(`invalid setting ${where}: ${issue.message}${got}`);
  }
  return { command, config: result.data };
}

/** A setting's help with its allowed range, as --help and the README show it. */
export function settingHelp(s: SettingSpec): string {
  return s.range ? `${s.help} (${rangeText(s.range)})` : s.help;
}

export function helpText(version: string): string {
  const lines = [
    `connlat ${version}: TCP connect latency (eBPF tcpconnlat/tcpstates) -> OpenTelemetry metrics and slow-connection logs`,
    '',
    'Usage: connlat [run] [flags]     run the agent (as root, or with CAP_BPF+CAP_PERFMON)',
    '       connlat doctor            preflight report: kernel, BTF, tracefs, capabilities, tools, chosen source',
    '',
    'Every flag can also be set as env CONNLAT_<FLAG> (e.g. CONNLAT_SLOW_MS=50) or as a key in --config FILE',
    '(YAML or JSON; env CONNLAT_CONFIG). Precedence: flag > env > file > default.',
    '',
    'Flags:',
    '  -c, --config FILE              settings file (YAML/JSON), keys as listed in the README',
  ];
  for (const s of SETTINGS) lines.push(`  --${s.flag.padEnd(28)} ${settingHelp(s)}`);
  lines.push('  -h, --help                     this text', '      --version                  print the version');
  lines.push(
    '',
    'Standard OpenTelemetry env honoured: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,',
    'OTEL_EXPORTER_OTLP_CERTIFICATE, OTEL_EXPORTER_OTLP_INSECURE, OTEL_RESOURCE_ATTRIBUTES.',
    "Kubernetes identity (Downward API): NODE_NAME, POD_NAME, POD_NAMESPACE, POD_UID.",
    '',
    'Exit status:',
  );
  for (const { code, meaning } of Object.values(EXIT)) lines.push(`  ${code}  ${meaning}`);
  return lines.join('\n');
}
