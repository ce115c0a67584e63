// AutoSource: prefer connlat-probe (ours: tracepoints only, and it says why a connect failed), then tcpconnlat (true
// connect latency via kprobes/fentry); a tool that is missing or cannot attach on this kernel (it fails or exits
// before printing its header) is passed over for good, down to tcpstates (tracepoint sock:inet_sock_set_state).
import type { ToolName } from '../event.ts';
import type { Source, SourceHooks } from './types.ts';
import type { BackoffOptions } from '../backoff.ts';
import { scrub } from '../scrub.ts';
import { findExecutable, ToolSource, type EarlyExit, type ToolSourceOptions } from './tool.ts';

export interface AutoSourceOptions {
  /** Tried first when set (createSource sets it; undefined leaves connlat-probe out). */
  connlatProbePath?: string;
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

type Preferred = 'connlat-probe' | 'tcpconnlat';

/** The tools auto tries before tcpstates, best first, with what attaching means for each. */
const PREFERENCE: readonly { tool: Preferred; attached: string; programs: string }[] = [
  { tool: 'connlat-probe', attached: 'connlat-probe attached (tracepoints; SYN retransmits, handshake RTT, failure reason)', programs: 'tracepoint programs' },
  { tool: 'tcpconnlat', attached: 'tcpconnlat attached (kprobe/fentry on tcp_v4_connect/tcp_v6_connect)', programs: 'kprobe/fentry programs' },
];

export class AutoSource implements Source {
  readonly #opts: AutoSourceOptions;
  #current: ToolSource;
  #stopping = false;
  #selected = false;

  constructor(opts: AutoSourceOptions) {
    this.#opts = opts;
    this.#current = this.#make(opts.connlatProbePath !== undefined ? 'connlat-probe' : 'tcpconnlat');
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
    const passedOver: string[] = [];
    for (const { tool, attached, programs } of PREFERENCE) {
      const path = this.#pathOf(tool);
      if (path === undefined) continue;
      if (!(await findExecutable(path))) {
        passedOver.push(`${tool} not found at ${path}`);
        continue;
      }
      let fallbackReason: string | undefined;
      const source: ToolSource = this.#make(tool, {
        onHeader: () => select(tool, [...passedOver, attached].join('; ')),
        // The tools exit after an attach failure; should one linger, the diagnosis alone decides.
        onFailureBeforeHeader: (kind, line) => {
          if (kind !== 'attach' || this.#selected || fallbackReason !== undefined) return;
          fallbackReason = explain(tool, programs, { exit: 'attach failed', kinds: new Map([['attach', line]]) });
          void source.stop();
        },
        onEarlyExit: (info) => {
          // Only the first run decides; once the tool attached, later failures are restarts like any tool's.
          if (this.#selected) return true;
          fallbackReason ??= explain(tool, programs, info);
          return false;
        },
      });
      this.#current = source;
      await source.run(hooks);
      if (this.#stopping || fallbackReason === undefined) return;
      passedOver.push(fallbackReason);
    }
    const reason = passedOver.join('; ');
    this.#opts.logger?.debug(`auto source: ${reason}`);
    const states = this.#make('tcpstates');
    this.#current = states;
    select('tcpstates', `${reason}; using tcpstates (tracepoint sock:inet_sock_set_state) instead`);
    if (this.#stopping) return;
    await states.run(hooks);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#current.stop();
  }

  #pathOf(tool: ToolName): string | undefined {
    const o = this.#opts;
    return tool === 'connlat-probe' ? o.connlatProbePath : tool === 'tcpconnlat' ? o.tcpconnlatPath : o.tcpstatesPath;
  }

  #make(tool: ToolName, extra: Pick<ToolSourceOptions, 'onHeader' | 'onEarlyExit' | 'onFailureBeforeHeader'> = {}): ToolSource {
    const o = this.#opts;
    const args = tool === 'tcpconnlat' ? o.tcpconnlatArgs : tool === 'tcpstates' ? o.tcpstatesArgs : undefined;
    return new ToolSource({
      tool,
      path: this.#pathOf(tool) ?? o.tcpstatesPath,
      ...(args ? { args } : {}),
      ...(o.stdbufPath ? { stdbufPath: o.stdbufPath } : {}),
      ...(o.backoff ? { backoff: o.backoff } : {}),
      ...(o.stopTimeoutMs !== undefined ? { stopTimeoutMs: o.stopTimeoutMs } : {}),
      ...(o.random ? { random: o.random } : {}),
      ...(o.kernelRelease ? { kernelRelease: o.kernelRelease } : {}),
      // The fallback explains an attach failure of a preferred tool; no separate diagnostic for it. Causes every tool
      // shares (capabilities, seccomp, memlock, BTF) are reported once, by tcpstates, the last one, which meets them too.
      ...(tool !== 'tcpstates' ? { silence: ['attach' as const, 'permission' as const, 'memlock' as const, 'btf' as const] } : {}),
      ...extra,
    });
  }
}

/** Why a preferred tool could not be used, in one line. */
function explain(tool: Preferred, programs: string, info: EarlyExit): string {
  const attach = info.kinds.get('attach');
  if (attach) return `${tool} could not attach its ${programs} (${scrub(attach, { max: 160 })})`;
  return `${tool} stopped before attaching (${info.exit})`;
}
