// One tool line -> DecodeResult. Knows which tool and which options printed the stream: from the header line when
// there is one (the tools print it once at start; a restarted tool prints it again), otherwise from the shape of the
// first line that fits one of the tool's layouts (replayed files cut without their header).

import type { ToolName } from '../event.ts';
import { reject, SKIP, trimmedEnd } from './columns.ts';
import {
  CONNLAT_PROBE_FORMAT_VERSION, CONNLAT_PROBE_HEADER, connlatProbeHeaderVersion, parseConnlatProbeLine,
} from './connlat-probe.ts';
import { parseTcpconnlatLine, TCPCONNLAT_FORMATS, type TcpconnlatFormat } from './tcpconnlat.ts';
import { ConnectingSockets, decodeTcpstatesLine, TCPSTATES_FORMATS, type TcpstatesFormat } from './tcpstates.ts';
import { type DecodeResult, MAX_LINE_BYTES, type StreamFormat } from './types.ts';

type Format =
  | { tool: 'tcpconnlat'; spec: TcpconnlatFormat }
  | { tool: 'tcpstates'; spec: TcpstatesFormat }
  | { tool: 'connlat-probe'; spec: { header: string } };

const ALL: readonly Format[] = [
  ...TCPCONNLAT_FORMATS.map((spec) => ({ tool: 'tcpconnlat' as const, spec })),
  ...TCPSTATES_FORMATS.map((spec) => ({ tool: 'tcpstates' as const, spec })),
  { tool: 'connlat-probe', spec: { header: CONNLAT_PROBE_HEADER } },
];
const HEADERS: ReadonlyMap<string, Format> = new Map(ALL.map((f) => [f.spec.header, f]));

export class LineDecoder {
  readonly #candidates: readonly Format[];
  readonly #fixedTool: ToolName | undefined;
  #format: Format | undefined;
  readonly #sockets: ConnectingSockets;

  constructor(format: StreamFormat, options: { connectingSocketsMax?: number } = {}) {
    this.#candidates = format === 'detect' ? ALL : ALL.filter((f) => f.tool === format);
    if (this.#candidates.length === 0) throw new TypeError(`unknown stream format ${JSON.stringify(format)}`);
    this.#fixedTool = format === 'detect' ? undefined : format;
    this.#sockets = new ConnectingSockets(options.connectingSocketsMax);
  }

  /** The tool that printed the stream, once a header or a line has shown it (or the constructor was told). */
  get tool(): ToolName | undefined {
    return this.#format?.tool ?? this.#fixedTool;
  }

  /** Whether a header or a line has shown the stream's format (a live tool printing none it knows is not ready). */
  get formatKnown(): boolean {
    return this.#format !== undefined;
  }

  /** The options the stream was printed with (-t/-L, -T/-w), once known. */
  get options(): Readonly<Record<string, boolean>> | undefined {
    const format = this.#format;
    if (format === undefined) return undefined;
    switch (format.tool) {
      case 'tcpconnlat':
        return format.spec.bcc ? { time: format.spec.time, lport: format.spec.lport, bcc: true } : { time: format.spec.time, lport: format.spec.lport };
      case 'tcpstates':
        return { time: format.spec.time, wide: format.spec.wide };
      case 'connlat-probe':
        return {}; // one fixed layout
    }
  }

  decode(line: string, timeMs: number): DecodeResult {
    if (line.length > MAX_LINE_BYTES) return reject('too_long', `line of ${line.length} bytes (max ${MAX_LINE_BYTES})`);
    const end = trimmedEnd(line);
    if (end === 0) return SKIP;
    const first = line.charCodeAt(0);
    if (first >= 0x41 && first <= 0x5a) return this.#header(line.slice(0, end)); // event lines start with a digit/hex
    const format = this.#format;
    if (format !== undefined) return this.#parse(format, line, end, timeMs);
    return this.#detect(line, end, timeMs);
  }

  #header(text: string): DecodeResult {
    const format = HEADERS.get(text);
    const version = format === undefined ? connlatProbeHeaderVersion(text) : undefined;
    if (version !== undefined && version !== CONNLAT_PROBE_FORMAT_VERSION) {
      return reject('shape', `connlat-probe output format ${version}; this connlat reads format ${CONNLAT_PROBE_FORMAT_VERSION}`);
    }
    if (format === undefined || !this.#candidates.includes(format)) {
      return reject('shape', `not a ${this.#fixedTool ?? 'tcpconnlat, tcpstates or connlat-probe'} header`);
    }
    this.#format = format;
    // A header starts a run of the tool: what the previous run saw of sockets in flight may be stale (tcpstates)
    this.#sockets.clear();
    return SKIP;
  }

  #parse(format: Format, line: string, end: number, timeMs: number): DecodeResult {
    if (format.tool === 'tcpconnlat') return parseTcpconnlatLine(line, end, format.spec, timeMs);
    if (format.tool === 'connlat-probe') return parseConnlatProbeLine(line, end, timeMs);
    return decodeTcpstatesLine(line, end, format.spec, this.#sockets, timeMs);
  }

  /**
   * No header yet: the first layout the line fits decides, unless another fits it too (a 7-digit PID is a libbpf-tools
   * PID overflowing its 6 columns and a BCC one filling its 7): then the line counts and the next one decides. A line
   * that fits none leaves the stream undecided.
   */
  #detect(line: string, end: number, timeMs: number): DecodeResult {
    let fallback: { format: Format; result: DecodeResult } | undefined;
    const candidates = this.#candidates;
    for (let i = 0; i < candidates.length; i++) {
      const format = candidates[i]!;
      const result = this.#parse(format, line, end, timeMs);
      if (result.kind !== 'reject') {
        if (!this.#fitsAnotherFrom(i + 1, format, line, end)) this.#format = format;
        return result;
      }
      // right shape, bad value (port 0, bad IP): still tells the format
      if (result.reason !== 'shape' && fallback === undefined) fallback = { format, result };
    }
    if (fallback !== undefined) {
      this.#format = fallback.format;
      return fallback.result;
    }
    return reject('shape', `fits no ${this.#fixedTool ?? 'tcpconnlat, tcpstates or connlat-probe'} layout`);
  }

  /** Whether a tcpconnlat line also fits a later tcpconnlat layout (checks the shape only: no side effects). */
  #fitsAnotherFrom(first: number, fitted: Format, line: string, end: number): boolean {
    if (fitted.tool !== 'tcpconnlat') return false;
    for (let i = first; i < this.#candidates.length; i++) {
      const other = this.#candidates[i]!;
      if (other.tool === 'tcpconnlat' && parseTcpconnlatLine(line, end, other.spec, 0).kind === 'event') return true;
    }
    return false;
  }
}
