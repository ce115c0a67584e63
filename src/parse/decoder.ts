// One tool line -> DecodeResult. Knows which tool and which options printed the stream: from the header line when
// there is one (the tools print it once at start; a restarted tool prints it again), otherwise from the shape of the
// first line that fits one of the tool's layouts (replayed files cut without their header).

import type { ToolName } from '../event.ts';
import { reject, SKIP, trimmedEnd } from './columns.ts';
import { parseTcpconnlatLine, TCPCONNLAT_FORMATS, type TcpconnlatFormat } from './tcpconnlat.ts';
import { ConnectingSockets, parseTcpstatesLine, TCPSTATES_FORMATS, type TcpstatesFormat, transitionResult } from './tcpstates.ts';
import { type DecodeResult, MAX_LINE_BYTES, type StreamFormat } from './types.ts';

type Format = { tool: 'tcpconnlat'; spec: TcpconnlatFormat } | { tool: 'tcpstates'; spec: TcpstatesFormat };

const ALL: readonly Format[] = [
  ...TCPCONNLAT_FORMATS.map((spec) => ({ tool: 'tcpconnlat' as const, spec })),
  ...TCPSTATES_FORMATS.map((spec) => ({ tool: 'tcpstates' as const, spec })),
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

  /** The options the stream was printed with (-t/-L, -T/-w), once known. */
  get options(): Readonly<Record<string, boolean>> | undefined {
    const spec = this.#format?.spec;
    if (spec === undefined) return undefined;
    return 'wide' in spec ? { time: spec.time, wide: spec.wide } : { time: spec.time, lport: spec.lport };
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
    if (format === undefined || !this.#candidates.includes(format)) {
      return reject('shape', `not a ${this.#fixedTool ?? 'tcpconnlat or tcpstates'} header`);
    }
    this.#format = format;
    return SKIP;
  }

  #parse(format: Format, line: string, end: number, timeMs: number): DecodeResult {
    if (format.tool === 'tcpconnlat') return parseTcpconnlatLine(line, end, format.spec, timeMs);
    const t = parseTcpstatesLine(line, end, format.spec);
    return t.kind === 'transition' ? transitionResult(t, this.#sockets, timeMs) : t;
  }

  /** No header yet: the first layout the line fits decides; a line that fits none leaves the stream undecided. */
  #detect(line: string, end: number, timeMs: number): DecodeResult {
    let fallback: { format: Format; result: DecodeResult } | undefined;
    for (const format of this.#candidates) {
      const result = this.#parse(format, line, end, timeMs);
      if (result.kind !== 'reject') {
        this.#format = format;
        return result;
      }
      // right shape, bad value (port 0, bad IP): still tells the format
      if (result.reason !== 'shape' && fallback === undefined) fallback = { format, result };
    }
    if (fallback !== undefined) {
      this.#format = fallback.format;
      return fallback.result;
    }
    return reject('shape', `fits no ${this.#fixedTool ?? 'tcpconnlat or tcpstates'} layout`);
  }
}
