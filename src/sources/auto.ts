// AutoSource: prefer tcpconnlat (true connect latency via kprobes/fentry); if it cannot attach on this kernel (it
// fails or exits before printing its header), switch to tcpstates (tracepoint sock:inet_sock_set_state) for good.
import type { ToolName } from '../event.ts';
import type { Source, SourceHooks } from './types.ts';
import type { BackoffOptions } from '../backoff.ts';
import { scrub } from '../scrub.ts';
import { findExecutable, ToolSource, type EarlyExit, type ToolSourceOptions } from './tool.ts';

export interface AutoSourceOptions {
  tcpconnlatPath: string;
  tcpstatesPath: string;
  tcpconnlatArgs?: string[];
  tcpstatesArgs?: string[];
  stdbufPath?: string;
  backoff?: Partial<BackoffOptions>;
  stopTimeoutMs?: number;
  random?: () => number;
  kernelRelease?: string;
  logger?: { debug(msg: string): void };
}

export class AutoSource implements Source {
  readonly #opts: AutoSourceOptions;
  #current: ToolSource;
  #stopping = false;
  #selected = false;

  constructor(opts: AutoSourceOptions) {
    this.#opts = opts;
    this.#current = this.#make('tcpconnlat');
  }

  get description(): string {
    return `auto: ${this.#current.description}`;
  }

  format(): ToolName {
    return this.#current.format();
  }

  ready(): boolean {
    return this.#current.ready();
  }

  async run(hooks: SourceHooks): Promise<void> {
    const select = (tool: ToolName, reason: string): void => {
      if (this.#selected) return;
      this.#selected = true;
      hooks.toolSelected(tool, reason);
    };
    let fallbackReason: string | undefined;
    if (!(await findExecutable(this.#opts.tcpconnlatPath))) {
      fallbackReason = `tcpconnlat not found at ${this.#opts.tcpconnlatPath}`;
    } else {
      const connlat: ToolSource = this.#make('tcpconnlat', {
        onHeader: () => select('tcpconnlat', 'tcpconnlat attached (kprobe/fentry on tcp_v4_connect/tcp_v6_connect)'),
        // The tools exit after an attach failure; should one linger, the diagnosis alone decides.
        onFailureBeforeHeader: (kind, line) => {
          if (kind !== 'attach' || this.#selected || fallbackReason !== undefined) return;
          fallbackReason = explain({ exit: 'attach failed', kinds: new Map([['attach', line]]) });
          void connlat.stop();
        },
        onEarlyExit: (info) => {
          // Only the first run decides; once tcpconnlat attached, later failures are restarts like any tool's.
          if (this.#selected) return true;
          fallbackReason ??= explain(info);
          return false;
        },
      });
      this.#current = connlat;
      await connlat.run(hooks);
      if (this.#stopping || fallbackReason === undefined) return;
    }
    this.#opts.logger?.debug(`auto source: ${fallbackReason}`);
    const states = this.#make('tcpstates');
    this.#current = states;
    select('tcpstates', `${fallbackReason}; using tcpstates (tracepoint sock:inet_sock_set_state) instead`);
    if (this.#stopping) return;
    await states.run(hooks);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#current.stop();
  }

  #make(tool: ToolName, extra: Pick<ToolSourceOptions, 'onHeader' | 'onEarlyExit' | 'onFailureBeforeHeader'> = {}): ToolSource {
    const o = this.#opts;
    const args = tool === 'tcpconnlat' ? o.tcpconnlatArgs : o.tcpstatesArgs;
    return new ToolSource({
      tool,
      path: tool === 'tcpconnlat' ? o.tcpconnlatPath : o.tcpstatesPath,
      ...(args ? { args } : {}),
      ...(o.stdbufPath ? { stdbufPath: o.stdbufPath } : {}),
      ...(o.backoff ? { backoff: o.backoff } : {}),
      ...(o.stopTimeoutMs !== undefined ? { stopTimeoutMs: o.stopTimeoutMs } : {}),
      ...(o.random ? { random: o.random } : {}),
      ...(o.kernelRelease ? { kernelRelease: o.kernelRelease } : {}),
      // The fallback explains an attach failure of tcpconnlat; no separate diagnostic for it.
      ...(tool === 'tcpconnlat' ? { silence: ['attach' as const] } : {}),
      ...extra,
    });
  }
}

/** Why tcpconnlat could not be used, in one line. */
function explain(info: EarlyExit): string {
  const attach = info.kinds.get('attach');
  if (attach) return `tcpconnlat could not attach its kprobe/fentry programs (${scrub(attach, { max: 160 })})`;
  return `tcpconnlat stopped before attaching (${info.exit})`;
}
