// The one event type that flows source -> parse -> enrich -> record -> export. Each stage adds to it; none reaches
// back. Kept a plain object with fixed fields (no per-event allocation beyond itself) because it is on the hot path.

export type ToolName = 'tcpconnlat' | 'tcpstates' | 'connlat-probe';

/**
 * How a connect ended (connlat-probe's RESULT column): ok, or why it failed. A fixed set, because it becomes the
 * `error.type` attribute; `other` carries its errno in ConnectEvent.errno.
 */
export const CONNECT_RESULTS = ['ok', 'refused', 'timed_out', 'host_unreachable', 'net_unreachable', 'aborted', 'other'] as const;
export type ConnectResult = (typeof CONNECT_RESULTS)[number];

/** Kubernetes identity of one side of a connection, filled by src/enrich (absent when unknown or disabled). */
export interface PeerIdentity {
  /** k8s.{src,dst}.namespace */
  namespace?: string;
  /** k8s.{src,dst}.name: the pod, service or node name */
  name?: string;
  /** k8s.{src,dst}.type: Pod | Service | Node | External | Host */
  type?: string;
  /** k8s.{src,dst}.owner.name: the top-level workload (Deployment, StatefulSet, DaemonSet, CronJob, Job, ...) */
  ownerName?: string;
  /** k8s.{src,dst}.owner.type */
  ownerType?: string;
  /** full detail, logs only */
  podName?: string;
  podUid?: string;
  containerName?: string;
  containerId?: string;
  serviceName?: string;
  nodeName?: string;
}

export interface ConnectEvent {
  /** Epoch milliseconds when the line was read (with stdbuf -oL this is the event's own time to within ~1 ms). */
  timeMs: number;
  tool: ToolName;
  pid: number;
  /** Process name as the kernel reported it: attacker-controlled text, never trusted for anything but display. */
  comm: string;
  ipVersion: 4 | 6;
  saddr: string;
  /** Local port; undefined when the tool did not print it (tcpconnlat without -L). */
  sport: number | undefined;
  daddr: string;
  dport: number;
  /** Connect latency (or, for a failed connect, time until failure) in milliseconds. */
  latencyMs: number;
  /** true for a failed connect (tcpstates SYN_SENT -> CLOSE; connlat-probe: any result but ok). */
  failed: boolean;
  /** connlat-probe only (undefined from the other tools): how the connect ended. */
  result?: ConnectResult;
  /** connlat-probe, result `other`: the socket error (a positive errno). */
  errno?: number;
  /** connlat-probe only: SYN retransmissions while connecting. */
  synRetransmits?: number;
  /** connlat-probe only: the kernel's smoothed RTT at ESTABLISHED, in milliseconds (undefined: no sample/failed). */
  handshakeRttMs?: number;
  /** Set by the enrich stage. */
  src?: PeerIdentity;
  dst?: PeerIdentity;
}

/** A connect slower than slowMs, failed or not: it gets a log record and a line in the live view. */
export function isSlowConnect(event: ConnectEvent, slowMs: number): boolean {
  return event.latencyMs > slowMs;
}

/** "refused", "other:104": why a failed connect failed, when the tool says (connlat-probe); undefined otherwise. */
export function failureReason(event: ConnectEvent): string | undefined {
  if (event.result === undefined || event.result === 'ok') return undefined;
  return event.result === 'other' ? `other:${event.errno}` : event.result;
}

/**
 * `curl[21168] 10.0.2.15 -> 76.76.21.21:443 took 47.80 ms` (or `failed after`; IPv6 destinations as `[addr]:port`);
 * `verbPrefix` goes before the verb (the log body says `connect took`). From connlat-probe, what it adds:
 * `... failed after 2501.14 ms: aborted (2 SYN retransmits)`, `... took 1011.65 ms (1 SYN retransmit, RTT 1.000 ms)`.
 */
export function describeConnect(event: ConnectEvent, verbPrefix = ''): string {
  const dst = event.ipVersion === 6 ? `[${event.daddr}]:${event.dport}` : `${event.daddr}:${event.dport}`;
  const verb = event.failed ? 'failed after' : 'took';
  const reason = failureReason(event);
  const extra: string[] = [];
  if (event.synRetransmits) extra.push(`${event.synRetransmits} SYN retransmit${event.synRetransmits === 1 ? '' : 's'}`);
  if (event.handshakeRttMs !== undefined) extra.push(`RTT ${event.handshakeRttMs.toFixed(3)} ms`);
  return `${event.comm}[${event.pid}] ${event.saddr} -> ${dst} ${verbPrefix}${verb} ${event.latencyMs.toFixed(2)} ms` +
    `${reason ? `: ${reason}` : ''}${extra.length ? ` (${extra.join(', ')})` : ''}`;
}
