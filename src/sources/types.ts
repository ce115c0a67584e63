import type { ToolName } from '../event.ts';

/** Where Debian's libbpf-tools installs the tools (the one place these paths are written). */
export const DEFAULT_TOOL_PATHS: Readonly<Record<ToolName, string>> = {
  'connlat-probe': '/usr/sbin/connlat-probe',
  tcpconnlat: '/usr/sbin/tcpconnlat',
  tcpstates: '/usr/sbin/tcpstates',
};

/** Callbacks a source drives. All are synchronous and cheap; the source never waits on the pipeline. */
export interface SourceHooks {
  /** One raw stdout line (without the newline) and when it was read (epoch ms). */
  line(text: string, readAtMs: number): void;
  /** libbpf "lost N events on CPU #x" (perf buffer overflow in the kernel). */
  lostEvents(count: number): void;
  /** The supervised tool exited and will be started again. */
  restart(exitDescription: string): void;
  /** One actionable, human-readable line (capabilities missing, attach failed, tracefs missing, ...). */
  diagnostic(message: string): void;
  /** The tool in use changed (auto source falling back from tcpconnlat to tcpstates), with the reason. */
  toolSelected(tool: ToolName, reason: string): void;
}

export interface Source {
  /** e.g. "tcpconnlat (/usr/sbin/tcpconnlat)", "file:/tmp/x.txt", "stdin" */
  readonly description: string;
  /** The format of the lines it emits; replay sources return 'detect'. May change when auto falls back. */
  format(): ToolName | 'detect';
  /** Optional: checks what run() will need (opens a replayed file), so a bad input fails before anything is set up. */
  prepare?(): Promise<void>;
  /** Runs until the input ends (replay EOF) or until stop() completes (tools). Rejects only on unrecoverable errors. */
  run(hooks: SourceHooks): Promise<void>;
  /** Graceful stop: SIGINT the tool and read every remaining line (stdin: read to EOF; file: stop now), then resolve.
   * Bounded by a timeout. */
  stop(): Promise<void>;
  /** Ready = tool attached and reading, not crash-looping. Replay sources are ready while reading. */
  ready(): boolean;
}
