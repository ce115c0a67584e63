// What connlat emits, declared once (as the Collector's metadata.yaml): every instrument and every attribute, with how
// an attribute is read from an event. The attribute cache and series keys (attributes.ts), the slow-log attributes,
// the instruments (index.ts), the --metric-attributes default (config.ts) and the README's metric and attribute tables
// (scripts/readme-tables.ts, checked by test/readme.test.ts) all follow from this table. Adding an attribute means
// adding a row here (and a case to test/telemetry/schema.test.ts). No runtime imports: config.ts reads it at start-up.
import { CONNECT_RESULTS, type ConnectEvent, type PeerIdentity } from '../event.ts';

/** error.type values: every connlat-probe result but ok. */
const FAILURE_TYPES = CONNECT_RESULTS.filter((r) => r !== 'ok');

export type AttributeValue = string | number;

export interface AttributeSpec {
  readonly key: string;
  readonly type: 'string' | 'int' | 'double';
  /** README text: what the value is */
  readonly brief: string;
  /** 'metrics': can be on the metrics (allow list) and is on every log record and span; 'logs': on log records and
   * spans only (the per-connect signals) */
  readonly signal: 'metrics' | 'logs';
  /** in the default --metric-attributes allow list */
  readonly onByDefault: boolean;
  /**
   * The attribute cache must key on it: it can differ between events to one server.address (the cache's map key).
   * Every metric attribute is, except constants (network.transport) and values derived from the address alone
   * (network.type); a metric attribute that is neither and is left out would give events the wrong cached series.
   */
  readonly cacheKey: boolean;
  /** Filled by the enrich stage: absent on every event without src/dst identity (the common, fast case). */
  readonly identity: boolean;
  readonly get: (event: ConnectEvent) => AttributeValue | undefined;
  /** The ConnectEvent field get() returns as it is, when it is one (the attribute cache compares it directly). */
  readonly field?: keyof ConnectEvent;
}

type Side = 'src' | 'dst';
const peerOf = (side: Side) => (side === 'src' ? (e: ConnectEvent) => e.src : (e: ConnectEvent) => e.dst);
const sideText = { src: 'source', dst: 'destination' };

/** k8s.{src,dst}.<suffix> for both sides, read from PeerIdentity[field]. */
function peer(suffix: string, field: keyof PeerIdentity, brief: string, o: { signal: 'metrics' | 'logs'; onByDefault: boolean }): AttributeSpec[] {
  return (['src', 'dst'] as const).map((side) => {
    const of = peerOf(side);
    return {
      key: `k8s.${side}.${suffix}`,
      type: 'string' as const,
      brief: `${sideText[side]} ${brief}`,
      signal: o.signal,
      onByDefault: o.onByDefault,
      cacheKey: o.signal === 'metrics',
      identity: true,
      get: (e: ConnectEvent) => of(e)?.[field],
    };
  });
}

/** Metric attributes first, in the order they appear on a data point; then log-only ones. */
const metricPeer = (suffix: string, field: keyof PeerIdentity, brief: string, onByDefault = true) => ({ suffix, field, brief, onByDefault });
const METRIC_PEER = [
  metricPeer('namespace', 'namespace', 'namespace'),
  metricPeer('name', 'name', 'pod, service or node name (opt-in: one series per pod)', false),
  metricPeer('type', 'type', 'type: `Pod`, `Service`, `Node`, `External` or `Host`'),
  metricPeer('owner.name', 'ownerName', 'top-level workload (Deployment, StatefulSet, DaemonSet, CronJob, Job ...)'),
  metricPeer('owner.type', 'ownerType', 'workload kind'),
];
const LOG_PEER: Array<[string, keyof PeerIdentity, string]> = [
  ['pod.name', 'podName', 'pod name'],
  ['pod.uid', 'podUid', 'pod UID'],
  ['container.name', 'containerName', 'container name'],
  ['container.id', 'containerId', 'container id'],
  ['service.name', 'serviceName', 'service name'],
  ['node.name', 'nodeName', 'node name'],
];

function connection(key: string, type: 'string' | 'int', brief: string, get: AttributeSpec['get'] | keyof ConnectEvent, cacheKey = true): AttributeSpec {
  if (typeof get === 'string') {
    const field = get;
    return { key, type, brief, signal: 'metrics', onByDefault: true, cacheKey, identity: false, get: (e) => e[field] as AttributeValue | undefined, field };
  }
  return { key, type, brief, signal: 'metrics', onByDefault: true, cacheKey, identity: false, get };
}
function logOnly(key: string, type: AttributeSpec['type'], brief: string, get: AttributeSpec['get']): AttributeSpec {
  return { key, type, brief, signal: 'logs', onByDefault: false, cacheKey: false, identity: false, get };
}
const sides = <T>(f: (side: Side) => T[]): T[] => [...f('src'), ...f('dst')];
const bySide = (list: AttributeSpec[], side: Side) => list.filter((a) => a.key.startsWith(`k8s.${side}.`));

const METRIC_PEER_ATTRIBUTES = METRIC_PEER.flatMap((p) => peer(p.suffix, p.field, p.brief, { signal: 'metrics', onByDefault: p.onByDefault }));
const LOG_PEER_ATTRIBUTES = LOG_PEER.flatMap(([suffix, field, brief]) => peer(suffix, field, brief, { signal: 'logs', onByDefault: false }));

export const ATTRIBUTES: readonly AttributeSpec[] = [
  connection('network.type', 'string', '`ipv4` or `ipv6`', (e) => (e.ipVersion === 6 ? 'ipv6' : 'ipv4'), false),
  connection('network.transport', 'string', '`tcp`', () => 'tcp', false),
  connection('server.address', 'string', 'destination IP address', 'daddr'),
  connection('server.port', 'int', 'destination port', 'dport'),
  connection('process.executable.name', 'string', 'COMM of the connecting process (untrusted text, scrubbed)', 'comm'),
  // only on failures, and only from a tool that says why (connlat-probe): a fixed set, so bounded
  connection('error.type', 'string', `why a connect failed (connlat-probe): ${FAILURE_TYPES.map((t) => `\`${t}\``).join(' ')}`,
    (e) => (e.failed && e.result !== undefined && e.result !== 'ok' ? e.result : undefined)),
  ...sides((side) => bySide(METRIC_PEER_ATTRIBUTES, side)),
  logOnly('connlat.tcp.syn_retransmits', 'int', 'SYN retransmits during the connect (connlat-probe)', (e) => e.synRetransmits),
  logOnly('connlat.tcp.handshake_rtt', 'double', "the kernel's smoothed RTT at ESTABLISHED, in seconds (connlat-probe)",
    (e) => (e.handshakeRttMs === undefined ? undefined : e.handshakeRttMs / 1000)),
  logOnly('connlat.tcp.errno', 'int', 'the socket error of an `error.type=other` failure (connlat-probe)', (e) => e.errno),
  logOnly('process.pid', 'int', 'PID of the connecting process', (e) => e.pid),
  // the address actually connected to (server.address is the same IP: connlat never sees a host name)
  logOnly('network.peer.address', 'string', 'destination IP address the SYN went to', (e) => e.daddr),
  logOnly('network.peer.port', 'int', 'destination port the SYN went to', (e) => e.dport),
  logOnly('client.address', 'string', 'source IP address', (e) => e.saddr),
  logOnly('client.port', 'int', 'source port (when the tool printed it)', (e) => e.sport),
  ...sides((side) => bySide(LOG_PEER_ATTRIBUTES, side)),
];

export const METRIC_ATTRIBUTES = ATTRIBUTES.filter((a) => a.signal === 'metrics');

/** Every metric attribute key connlat can record (the allow list picks from these). */
export const METRIC_ATTRIBUTE_KEYS = METRIC_ATTRIBUTES.map((a) => a.key) as [string, ...string[]];

/** The default --metric-attributes: workload level, bounded (pod names are opt-in). */
export const DEFAULT_METRIC_ATTRIBUTES = METRIC_ATTRIBUTES.filter((a) => a.onByDefault).map((a) => a.key);

export type InstrumentKind = 'histogram' | 'counter' | 'observable counter';

export interface InstrumentSpec {
  readonly name: string;
  readonly kind: InstrumentKind;
  readonly unit: string;
  /** exported with the metric */
  readonly description: string;
  readonly valueType: 'int' | 'double';
  /** README: more on what is counted */
  readonly note?: string;
  /** README: the attributes ('metric attributes' = the allow-listed ATTRIBUTES) */
  readonly attributes: string;
}

/** Explicit bucket boundaries in seconds, 50 us .. 10 s. */
export const CONNECT_DURATION_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

const METRIC_ATTRIBUTES_TEXT = 'the metric attributes in the allow list (below)';

export const INSTRUMENTS = {
  connectDuration: {
    name: 'tcp.connect.duration',
    kind: 'histogram',
    unit: 's',
    valueType: 'double',
    description: 'Duration of successful TCP connects (SYN sent to established), measured in the kernel by eBPF.',
    note: `explicit buckets 50 us .. 10 s (\`${CONNECT_DURATION_BUCKETS.join(' ')}\`) or base-2 exponential (\`--histogram exponential\`)`,
    attributes: METRIC_ATTRIBUTES_TEXT,
  },
  connectFailures: {
    name: 'tcp.connect.failures',
    kind: 'counter',
    unit: '{connection}',
    valueType: 'int',
    description: 'TCP connects that failed (SYN_SENT -> CLOSE).',
    note: 'tcpstates `SYN_SENT -> CLOSE`; never in the histogram',
    attributes: METRIC_ATTRIBUTES_TEXT,
  },
  synRetransmits: {
    name: 'connlat.tcp.connect.syn_retransmits',
    kind: 'counter',
    unit: '{segment}',
    valueType: 'int',
    description: 'SYN retransmissions during TCP connects (connlat-probe only).',
    note: 'the 1 s, 3 s steps in a latency graph; connlat-probe only (the other tools do not see them)',
    attributes: METRIC_ATTRIBUTES_TEXT,
  },
  linesRejected: {
    name: 'connlat.lines.rejected',
    kind: 'counter',
    unit: '{line}',
    valueType: 'int',
    description: 'Tool output lines that could not be parsed, by reason.',
    attributes: '`reason`',
  },
  toolRestarts: {
    name: 'connlat.tool.restarts',
    kind: 'counter',
    unit: '{restart}',
    valueType: 'int',
    description: 'Restarts of the eBPF tool process, by tool.',
    attributes: '`tool`',
  },
  lostEvents: {
    name: 'connlat.tool.lost_events',
    kind: 'counter',
    unit: '{event}',
    valueType: 'int',
    description: 'Events the eBPF tool reported as lost.',
    attributes: '',
  },
  logsDropped: {
    name: 'connlat.logs.dropped',
    kind: 'counter',
    unit: '{log_record}',
    valueType: 'int',
    description: 'Slow-connection log records dropped, by reason (rate_limit, queue_full, rejected, shutdown).',
    note: 'slow-connection log records given up',
    attributes:
      '`reason`: `rate_limit` (token bucket), `queue_full` (OTLP log queue during an outage), `rejected` (the gateway answered a final status, e.g. UNAUTHENTICATED), `shutdown` (not delivered by the shutdown deadline), `export_failed` (an OTLP/JSON file or console export failed, e.g. ENOSPC; no retry there)',
  },
  spansDropped: {
    name: 'connlat.spans.dropped',
    kind: 'counter',
    unit: '{span}',
    valueType: 'int',
    description: 'Connect spans dropped, by reason (rate_limit, queue_full, rejected, shutdown, export_failed).',
    note: 'connect spans given up',
    attributes:
      '`reason`: `rate_limit` (token bucket: a slow connect shares the log record\'s token; a fast failure has a bucket of its own with the same rate and burst), `queue_full`, `rejected`, `shutdown`, `export_failed` (as for logs)',
  },
  exportFailures: {
    name: 'connlat.export.failures',
    kind: 'counter',
    unit: '{export}',
    valueType: 'int',
    description: 'Exports that did not succeed, by signal (metrics, logs or traces).',
    note: 'every failed attempt, retries included',
    attributes: '`signal` (`metrics`/`logs`/`traces`)',
  },
  enrichOperations: {
    name: 'connlat.enrich.operations',
    kind: 'observable counter',
    unit: '1',
    valueType: 'int',
    description: 'Kubernetes enrichment totals: lookups, unresolved sources, processes gone before lookup, watch errors and restarts.',
    note: 'Kubernetes enrichment',
    attributes:
      '`operation`: `enriched`, `src_resolved`, `src_unresolved`, `dst_external`, `pid_lookups`, `process_gone` (a process exited before its PID was looked up), `proc_unreadable`, `watch_errors`, `watch_restarts`',
  },
} as const satisfies Record<string, InstrumentSpec>;

/** The slow-connection log record's event name. */
export const SLOW_EVENT_NAME = 'tcp.connect.slow';
/**
 * The connect span's name: constant (low cardinality, as the semantic conventions ask of span names; the addresses
 * are attributes), and the name Node's own `net` instrumentation gives an outgoing TCP connect, in the `tcp.connect`
 * namespace of our metric and log event.
 */
export const SPAN_NAME = 'tcp.connect';
/** Instrumentation scope of every metric, log record and span. */
export const SCOPE = 'connlat';
