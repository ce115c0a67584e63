// The two settings written as little languages, `--source` and `--export`: each string is parsed here, once, by a zod
// schema into a typed union; config.ts validates with these schemas and hands the unions on (Config.sourceSpec,
// Config.exportSpecs), and the sources and exporters take the unions (no stage parses a spec string again).
import * as z from 'zod';
import type { ToolName } from './event.ts';

export type SourceSpec = { kind: 'auto' } | { kind: 'tool'; tool: ToolName } | { kind: 'file'; path: string } | { kind: 'stdin' };
export type ExportSpec = { kind: 'otlp' } | { kind: 'otlp-json'; path: string } | { kind: 'console' };

export const SOURCE_SPEC_EXPECTED = "expected auto, connlat-probe, tcpconnlat, tcpstates, file:PATH or '-'";
export const EXPORT_SPEC_EXPECTED = 'expected otlp, console or otlp-json:PATH';

const FILE = 'file:';
const OTLP_JSON = 'otlp-json:';

export const SourceSpecSchema = z.string().transform((s, ctx): SourceSpec => {
  if (s === 'auto') return { kind: 'auto' };
  if (s === 'connlat-probe' || s === 'tcpconnlat' || s === 'tcpstates') return { kind: 'tool', tool: s };
  if (s === '-') return { kind: 'stdin' };
  if (s.startsWith(FILE) && s.length > FILE.length) return { kind: 'file', path: s.slice(FILE.length) };
  ctx.addIssue({ code: 'custom', message: SOURCE_SPEC_EXPECTED });
  return z.NEVER;
});

export const ExportSpecSchema = z.string().transform((s, ctx): ExportSpec => {
  if (s === 'otlp' || s === 'console') return { kind: s };
  if (s.startsWith(OTLP_JSON) && s.length > OTLP_JSON.length) return { kind: 'otlp-json', path: s.slice(OTLP_JSON.length) };
  ctx.addIssue({ code: 'custom', message: EXPORT_SPEC_EXPECTED });
  return z.NEVER;
});

/** A replay of recorded output (file:PATH or - for stdin), as opposed to a live tool. */
export function isReplay(spec: SourceSpec): boolean {
  return spec.kind === 'file' || spec.kind === 'stdin';
}
