// Classifies the stderr of libbpf-tools and turns known failures into one actionable line each. Strings come from
// libbpf-tools (tcpconnlat.c, tcpstates.c, trace_helpers.c) and libbpf (libbpf.c). Stderr is untrusted and may flood:
// each failure kind is reported once per source, unknown lines only up to a cap.
import type { ToolName } from '../event.ts';
import { scrub } from '../scrub.ts';

export type StderrKind =
  | 'lost' // "lost N events on CPU #x", "lost N events (why)"
  | 'permission' // EPERM loading/attaching BPF
  | 'memlock' // RLIMIT_MEMLOCK could not be raised (kernels before 5.11 charge BPF memory to it)
  | 'tracefs' // tracefs/debugfs not mounted, tracepoint id unreadable
  | 'attach' // kprobe/fentry/tracepoint attach failed
  | 'btf' // no kernel BTF for CO-RE
  | 'missing' // the tool binary is not there (stdbuf could not run it)
  | 'load' // loading the BPF object failed (a consequence; the cause is usually on an earlier line)
  | 'other';

export interface StderrClass {
  kind: StderrKind;
  /** For 'lost': the number of events lost. */
  lost?: number;
}

// libbpf-tools: "lost N events on CPU #x"; connlat-probe also "lost N events (why)" when the kernel does not say the CPU
const LOST = /^lost (\d+) events( on CPU #\d+| \()/;

// Lower-cased substrings (or patterns) per kind, most specific cause first: the first match wins.
const RULES: [Exclude<StderrKind, 'lost' | 'other'>, (string | RegExp)[]][] = [
  ['memlock', ['failed to set temporary rlimit_memlock', 'failed to bump rlimit_memlock', 'failed to increase rlimit']],
  [
    'permission',
    ["couldn't load trivial bpf program", 'operation not permitted', 'permission denied', /\beperm\b/, /failed to load bpf object: -1\b/],
  ],
  ['tracefs', [/tracepoint.*no such file or directory/, '/sys/kernel/tracing', '/sys/kernel/debug/tracing', 'tracefs', 'debugfs']],
  ['attach', ['failed to auto-attach', 'failed to attach', 'kprobe', 'fentry', 'failed to create tracepoint']],
  ['btf', ['btf']],
  ['missing', ['stdbuf: failed to run command']],
  ['load', ['failed to load object', 'failed to load bpf skeleton', 'failed to load bpf object', 'failed to open bpf object']],
];

/** Causes first: the first kind of this list seen in a run is what the run failed of. */
const PRECEDENCE: StderrKind[] = ['permission', 'btf', 'tracefs', 'missing', 'memlock', 'attach', 'load'];
const ROOT_CAUSES = new Set<StderrKind>(['permission', 'btf', 'tracefs', 'missing', 'memlock']);

/** Pure: what one stderr line means. */
export function classifyStderrLine(line: string): StderrClass {
  const lost = LOST.exec(line);
  if (lost) return { kind: 'lost', lost: Number(lost[1]) };
  const l = line.toLowerCase();
  for (const [kind, patterns] of RULES) {
    if (patterns.some((p) => (typeof p === 'string' ? l.includes(p) : p.test(l)))) return { kind };
  }
  return { kind: 'other' };
}

/** Parses "6.18.44-fc" -> [6, 18]; undefined when unparsable. */
export function kernelVersion(release: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

function atLeast(release: string, major: number, minor: number): boolean | undefined {
  const v = kernelVersion(release);
  if (!v) return undefined;
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

export const CAPS = { CAP_SYS_PTRACE: 19, CAP_SYS_ADMIN: 21, CAP_SYS_RESOURCE: 24, CAP_PERFMON: 38, CAP_BPF: 39 } as const;
export type CapName = keyof typeof CAPS;

/** Pure: the named capabilities present in a CapEff hex mask ("000001fffeffffff"). */
export function decodeCapabilities(capEffHex: string): Set<CapName> {
  const mask = BigInt(`0x${capEffHex.trim() || '0'}`);
  const present = new Set<CapName>();
  for (const [name, bit] of Object.entries(CAPS) as [CapName, number][]) {
    if ((mask >> BigInt(bit)) & 1n) present.add(name);
  }
  return present;
}

/**
 * Pure: what the process's own CapEff says about a refused bpf()/perf_event_open(), as one phrase: which of the
 * needed capabilities it lacks, or, holding them all, that something else refuses (a seccomp profile that allows
 * those syscalls only with CAP_SYS_ADMIN, as podman's and CRI-O's default does, or an LSM). The tool inherits
 * exactly the agent's capabilities (no file capabilities, no_new_privs in Kubernetes).
 */
export function capabilityFinding(release: string, capEffHex: string): string {
  const caps = decodeCapabilities(capEffHex);
  const needed: CapName[] = atLeast(release, 5, 8) === false ? ['CAP_SYS_ADMIN'] : ['CAP_BPF', 'CAP_PERFMON'];
  const missing = caps.has('CAP_SYS_ADMIN') ? [] : needed.filter((c) => !caps.has(c));
  if (missing.length > 0) return `this process lacks ${missing.join(' and ')}`;
  return `this process holds ${caps.has('CAP_SYS_ADMIN') ? 'CAP_SYS_ADMIN' : needed.join(' and ')}, so its seccomp profile (or an LSM) refuses bpf()/perf_event_open(): use the runtime's default where it allows them (containerd), else a Localhost profile adding them, or Unconfined`;
}

/** Which capabilities this kernel needs for BPF tracing, as one phrase. */
export function capabilityAdvice(release: string): string {
  const modern = atLeast(release, 5, 8);
  if (modern === true) return `kernel ${release} needs CAP_BPF and CAP_PERFMON (or root)`;
  if (modern === false) return `kernel ${release} is older than 5.8 and needs CAP_SYS_ADMIN (or root)`;
  return `needs CAP_BPF and CAP_PERFMON (kernel 5.8+) or CAP_SYS_ADMIN (older kernels)`;
}

/** One actionable line for a failure kind; undefined for kinds that are not failures. `capEff`: the process's
 * CapEff (hex), which lets a permission failure say what is missing. */
export function diagnosticFor(kind: StderrKind, tool: ToolName, release: string, detail = '', capEff?: string): string | undefined {
  const seen = detail ? ` (${detail})` : '';
  switch (kind) {
    case 'permission':
      return `${tool}: not permitted to load BPF programs${seen}: ${capabilityAdvice(release)}; in Kubernetes add them to securityContext.capabilities.add or run privileged${capEff === undefined ? '' : `; ${capabilityFinding(release, capEff)}`}`;
    case 'memlock': {
      const before511 = atLeast(release, 5, 11) === false;
      return before511
        ? `${tool}: could not raise RLIMIT_MEMLOCK${seen}: kernel ${release} is older than 5.11 and charges BPF maps to it; grant CAP_SYS_RESOURCE or run with an unlimited memlock limit (ulimit -l unlimited)`
        : `${tool}: could not raise RLIMIT_MEMLOCK${seen}: grant CAP_SYS_RESOURCE or set an unlimited memlock limit (ulimit -l unlimited); kernel ${release} should not need it, so check the capabilities too (${capabilityAdvice(release)})`;
    }
    case 'tracefs':
      return `${tool}: tracefs is not mounted${seen}: mount it with 'mount -t tracefs nodev /sys/kernel/tracing' (in Kubernetes: a hostPath volume for /sys/kernel/tracing)`;
    case 'attach':
      return `${tool}: could not attach its BPF program${seen}: the kernel lacks usable kprobes/fentry for it; the 'auto' source falls back to tcpstates (tracepoint sock:inet_sock_set_state)`;
    case 'btf':
      return `${tool}: no kernel BTF for CO-RE${seen}: needs a kernel built with CONFIG_DEBUG_INFO_BTF (/sys/kernel/btf/vmlinux)`;
    case 'missing':
      return `${tool}: the tool binary could not be run${seen}: install libbpf-tools or set its path`;
    case 'load':
      return `${tool}: could not load its BPF programs${seen}: run 'connlat doctor' to see what the kernel or the capabilities lack`;
    default:
      return undefined;
  }
}


export interface StderrSink {
  lostEvents(count: number): void;
  diagnostic(message: string): void;
}

/** Unknown stderr lines passed through verbatim per source before we go quiet. */
export const MAX_OTHER_LINES = 10;

/**
 * Per-source stderr state: sums lost events, reports each failure kind once per source (not once per restart), and
 * passes through at most MAX_OTHER_LINES unknown lines, then one line saying the rest are suppressed. Failures seen
 * while the tool starts are held until endOfStartup() (header printed or tool exited) so that the cause is reported
 * and its consequences (attach/load failures, libbpf's memlock warning on a kernel that does not need it) are not.
 */
export class StderrDiagnoser {
  readonly #tool: ToolName;
  readonly #release: string;
  readonly #sink: StderrSink;
  readonly #reported = new Set<StderrKind>();
  #otherLines = 0;
  #started = false;
  /** Kinds seen in the current run of the tool (reset by beginRun). */
  readonly runKinds = new Set<StderrKind>();
  /** First line of each kind in the current run, for callers that explain a failure or a fallback. */
  readonly runFirstLine = new Map<StderrKind, string>();
  lostTotal = 0;

  readonly #capEff: string | undefined;

  constructor(tool: ToolName, release: string, sink: StderrSink, capEff?: string) {
    this.#tool = tool;
    this.#release = release;
    this.#sink = sink;
    this.#capEff = capEff;
  }

  beginRun(): void {
    this.runKinds.clear();
    this.runFirstLine.clear();
    this.#started = false;
  }

  /** Stops reporting a kind (a caller that handles it itself, e.g. auto's fallback on attach failure). */
  silence(kind: StderrKind): void {
    this.#reported.add(kind);
  }

  handle(line: string): StderrClass {
    const c = classifyStderrLine(line);
    if (c.kind === 'lost') {
      this.lostTotal += c.lost ?? 0;
      this.#sink.lostEvents(c.lost ?? 0);
      return c;
    }
    if (!this.runKinds.has(c.kind)) this.runFirstLine.set(c.kind, line);
    this.runKinds.add(c.kind);
    if (c.kind === 'other') {
      if (line.trim() === '') return c;
      this.#otherLines++;
      if (this.#otherLines <= MAX_OTHER_LINES) {
        this.#sink.diagnostic(`${this.#tool} stderr: ${scrub(line, { max: 200 })}`);
      } else if (this.#otherLines === MAX_OTHER_LINES + 1) {
        this.#sink.diagnostic(`${this.#tool} stderr: further unrecognised lines suppressed`);
      }
      return c;
    }
    if (this.#started) this.#report(c.kind);
    return c;
  }

  /** The tool printed its header or exited: report the failures of its start, causes only. */
  endOfStartup(): void {
    if (this.#started) return;
    this.#started = true;
    const hasCause = PRECEDENCE.some((k) => ROOT_CAUSES.has(k) && this.runKinds.has(k));
    const modernMemlock = atLeast(this.#release, 5, 11) === true;
    for (const kind of PRECEDENCE) {
      if (!this.runKinds.has(kind)) continue;
      if ((kind === 'attach' || kind === 'load') && hasCause) continue;
      if (kind === 'memlock' && modernMemlock && this.runKinds.has('permission')) continue;
      this.#report(kind);
    }
  }

  /** The most likely cause of this run's failure and its first line, if any. */
  primaryCause(): [StderrKind, string] | undefined {
    const kind = PRECEDENCE.find((k) => this.runKinds.has(k));
    return kind ? [kind, this.runFirstLine.get(kind) ?? ''] : undefined;
  }

  #report(kind: StderrKind): void {
    if (this.#reported.has(kind)) return;
    this.#reported.add(kind);
    const message = diagnosticFor(kind, this.#tool, this.#release, scrub(this.runFirstLine.get(kind) ?? '', { max: 160 }), this.#capEff);
    if (message) this.#sink.diagnostic(message);
  }
}
