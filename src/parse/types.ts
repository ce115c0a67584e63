import type { ConnectEvent } from '../event.ts';

/** What one untrusted tool line turned into. `skip` is not an error: headers, blank lines, non-connect transitions. */
export type DecodeResult =
  | { kind: 'event'; event: ConnectEvent }
  | { kind: 'skip' }
  | { kind: 'reject'; reason: string };

/** Which tool printed the stream; `detect` decides from the header, or from the first line's shape. */
export type StreamFormat = 'tcpconnlat' | 'tcpstates' | 'detect';

/** Lines longer than this are rejected before any other work (a line is untrusted input). */
export const MAX_LINE_BYTES = 4096;
