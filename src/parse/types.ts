import type { ConnectEvent } from '../event.ts';

/**
 * Why a line was rejected. A small fixed set because it becomes a metric attribute (bounded cardinality);
 * the human-readable specifics go in `detail`.
 */
export const REJECT_REASONS = [
  'too_long', // longer than MAX_LINE_BYTES
  'shape', // not the tool's printf layout (field count, column positions, unknown header)
  'time', // the optional TIME column is not what the tool prints
  'skaddr', // tcpstates socket address is not 1-16 lowercase hex digits
  'pid', // not an integer in 1..4194304 (tcpstates lines may print 0 for kernel context)
  'owner', // tcpstates: a connect whose connect() (CLOSE -> SYN_SENT) was not seen, or was another socket's: process unknown
  'ip_version', // IP column not 4/6, or addresses of different families than it says
  'ip', // not an IPv4/IPv6 address as inet_ntop prints it
  'port', // outside 1..65535 (0 only where the tool prints it)
  'state', // tcpstates state name the tool never prints
  'latency', // not a finite decimal >= 0
  'result', // connlat-probe RESULT, RETX or RTT(ms) not what the tool prints
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** What one untrusted tool line turned into. `skip` is not an error: headers, blank lines, non-connect transitions. */
export type DecodeResult =
  | { kind: 'event'; event: ConnectEvent }
  | { kind: 'skip' }
  | { kind: 'reject'; reason: RejectReason; detail?: string };

/** Which tool printed the stream; `detect` decides from the header, or from the first line's shape. */
export type StreamFormat = 'tcpconnlat' | 'tcpstates' | 'connlat-probe' | 'detect';

/** Lines longer than this are rejected before any other work (a line is untrusted input). */
export const MAX_LINE_BYTES = 4096;
