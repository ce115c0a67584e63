// createSource: the one place a source spec ('auto' | 'connlat-probe' | 'tcpconnlat' | 'tcpstates' | 'file:PATH' | '-')
// becomes a Source.
import type { Readable } from 'node:stream';
import { SOURCE_SPEC_EXPECTED, SourceSpecSchema, type SourceSpec } from '../specs.ts';
import { DEFAULT_TOOL_PATHS, type Source } from './types.ts';
import type { BackoffOptions } from '../backoff.ts';
import { AutoSource } from './auto.ts';
import { ReplaySource } from './replay.ts';
import { ToolSource } from './tool.ts';

export interface CreateSourceOptions {
  connlatProbePath?: string;
  tcpconnlatPath?: string;
  tcpstatesPath?: string;
  stdbufPath?: string;
  backoff?: Partial<BackoffOptions>;
  stopTimeoutMs?: number;
  /** For '-' (default process.stdin). */
  stdin?: Readable;
  /** For '-': how long stop() still reads stdin while waiting for its EOF. */
  drainTimeoutMs?: number;
  logger?: { debug(msg: string): void };
}


/** A Source for a spec (Config.sourceSpec; a string is parsed by the same schema config.ts validates with). */
export function createSource(spec: SourceSpec | string, opts: CreateSourceOptions = {}): Source {
  const parsed = typeof spec === 'string' ? SourceSpecSchema.safeParse(spec) : { success: true as const, data: spec };
  if (!parsed.success) throw new Error(`unknown source '${String(spec)}': ${SOURCE_SPEC_EXPECTED}`);
  const source = parsed.data;
  const connlatProbePath = opts.connlatProbePath ?? DEFAULT_TOOL_PATHS['connlat-probe'];
  const tcpconnlatPath = opts.tcpconnlatPath ?? DEFAULT_TOOL_PATHS.tcpconnlat;
  const tcpstatesPath = opts.tcpstatesPath ?? DEFAULT_TOOL_PATHS.tcpstates;
  const common = {
    ...(opts.stdbufPath ? { stdbufPath: opts.stdbufPath } : {}),
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
    ...(opts.stopTimeoutMs !== undefined ? { stopTimeoutMs: opts.stopTimeoutMs } : {}),
  };
  const replay = opts.drainTimeoutMs !== undefined ? { drainTimeoutMs: opts.drainTimeoutMs } : {};
  switch (source.kind) {
    case 'auto':
      return new AutoSource({ connlatProbePath, tcpconnlatPath, tcpstatesPath, ...common, ...(opts.logger ? { logger: opts.logger } : {}) });
    case 'tool':
      // No min-latency argument for tcpconnlat: we want every connect, the slow threshold is ours.
      return new ToolSource({ tool: source.tool, path: { 'connlat-probe': connlatProbePath, tcpconnlat: tcpconnlatPath, tcpstates: tcpstatesPath }[source.tool], ...common });
    case 'stdin':
      return new ReplaySource({ stdin: opts.stdin ?? process.stdin }, replay);
    case 'file':
      return new ReplaySource({ path: source.path }, replay);
  }
}

export type { Source, SourceHooks } from './types.ts';
export { AutoSource } from './auto.ts';
export { ReplaySource } from './replay.ts';
export { ToolSource } from './tool.ts';
