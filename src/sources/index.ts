// createSource: the one place a source spec ('auto' | 'tcpconnlat' | 'tcpstates' | 'file:PATH' | '-') becomes a Source.
import type { Readable } from 'node:stream';
import { DEFAULT_TOOL_PATHS, type Source } from './types.ts';
import type { BackoffOptions } from '../backoff.ts';
import { AutoSource } from './auto.ts';
import { ReplaySource } from './replay.ts';
import { ToolSource } from './tool.ts';

export interface CreateSourceOptions {
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


/** A replay of recorded output (file:PATH or - for stdin), as opposed to a live tool. */
export function isReplaySpec(spec: string): boolean {
  return spec === '-' || (spec.startsWith('file:') && spec.length > 'file:'.length);
}

export function createSource(spec: string, opts: CreateSourceOptions = {}): Source {
  const tcpconnlatPath = opts.tcpconnlatPath ?? DEFAULT_TOOL_PATHS.tcpconnlat;
  const tcpstatesPath = opts.tcpstatesPath ?? DEFAULT_TOOL_PATHS.tcpstates;
  const common = {
    ...(opts.stdbufPath ? { stdbufPath: opts.stdbufPath } : {}),
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
    ...(opts.stopTimeoutMs !== undefined ? { stopTimeoutMs: opts.stopTimeoutMs } : {}),
  };
  if (spec === 'auto') {
    return new AutoSource({ tcpconnlatPath, tcpstatesPath, ...common, ...(opts.logger ? { logger: opts.logger } : {}) });
  }
  // No min-latency argument for tcpconnlat: we want every connect, the slow threshold is ours.
  if (spec === 'tcpconnlat') return new ToolSource({ tool: 'tcpconnlat', path: tcpconnlatPath, ...common });
  if (spec === 'tcpstates') return new ToolSource({ tool: 'tcpstates', path: tcpstatesPath, ...common });
  const replay = opts.drainTimeoutMs !== undefined ? { drainTimeoutMs: opts.drainTimeoutMs } : {};
  if (spec === '-') return new ReplaySource({ stdin: opts.stdin ?? process.stdin }, replay);
  if (isReplaySpec(spec)) return new ReplaySource({ path: spec.slice('file:'.length) }, replay);
  throw new Error(`unknown source '${spec}': expected auto, tcpconnlat, tcpstates, file:PATH or '-'`);
}

export type { Source, SourceHooks } from './types.ts';
export { AutoSource } from './auto.ts';
export { ReplaySource } from './replay.ts';
export { ToolSource } from './tool.ts';
