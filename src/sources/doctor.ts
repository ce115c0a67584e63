// `connlat doctor`: a preflight report of what the sources need (kernel, BTF, tracefs, kprobes, capabilities, limits,
// tool binaries), with a real attach probe of each tool (a few seconds at most), and which tool `auto` would pick.
import { access, readFile } from 'node:fs/promises';
import { release as osRelease } from 'node:os';
import { execa } from 'execa';
import type { ToolName } from '../event.ts';
import { readLines } from './lines.ts';
import { scrub } from '../scrub.ts';
import { capabilityAdvice, decodeCapabilities, kernelVersion, StderrDiagnoser } from './stderr.ts';
import { findExecutable } from './tool.ts';
import { TRACEFS_HOWTO, tracefsMountPoint } from './tracefs.ts';
import { DEFAULT_TOOL_PATHS } from './types.ts';

export type DoctorStatus = 'ok' | 'warn' | 'fail';

export interface DoctorItem {
  name: string;
  status: DoctorStatus;
  detail: string;
}

export interface DoctorReport {
  items: DoctorItem[];
  /** What `--source auto` would run, and why; tool undefined when neither can run. */
  auto: { tool: ToolName | undefined; reason: string };
}

export interface DoctorOptions {
  /** connlat-probe: optional (not in Debian's libbpf-tools), so a missing one only warns. */
  connlatProbePath?: string;
  tcpconnlatPath?: string;
  tcpstatesPath?: string;
  stdbufPath?: string;
  /** Longest a tool probe may run (default 3000 ms). */
  probeTimeoutMs?: number;
}

export { CAPS, decodeCapabilities, type CapName } from './stderr.ts';

/** Pure: the soft "Max locked memory" limit from /proc/self/limits text: bytes, 'unlimited', or undefined. */
export function parseMemlockLimit(limits: string): number | 'unlimited' | undefined {
  const m = /^Max locked memory\s+(\S+)/m.exec(limits);
  if (!m || m[1] === undefined) return undefined;
  return m[1] === 'unlimited' ? 'unlimited' : Number(m[1]);
}

export interface ProbeResult {
  attached: boolean;
  detail: string;
}

/** Runs a tool under stdbuf for at most timeoutMs: attached when it prints its header; else the first failure line. */
export async function probeTool(stdbuf: string, path: string, timeoutMs: number): Promise<ProbeResult> {
  const child = execa(stdbuf, ['-oL', path], { reject: false, buffer: false, stdin: 'ignore', forceKillAfterDelay: false });
  let attached = false;
  let firstStderr: string | undefined;
  const diagnoser = new StderrDiagnoser('tcpstates', osRelease(), { diagnostic: () => {}, lostEvents: () => {} });
  diagnoser.beginRun();
  let timedOut = false;
  const kill = setTimeout(() => {
    timedOut = true;
    child.kill('SIGINT');
  }, timeoutMs);
  const hardKill = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 1000);
  const out = child.stdout
    ? readLines(child.stdout, () => {
        if (!attached) child.kill('SIGINT');
        attached = true;
      })
    : Promise.resolve();
  const err = child.stderr
    ? readLines(child.stderr, (line) => {
        firstStderr ??= line;
        diagnoser.handle(line);
      })
    : Promise.resolve();
  const result = await child;
  await Promise.allSettled([out, err]);
  clearTimeout(kill);
  clearTimeout(hardKill);
  if (attached) return { attached, detail: 'attached (printed its header)' };
  const why = diagnoser.primaryCause()?.[1] ?? firstStderr;
  const exit = result.signal ? `killed by ${result.signal}` : `exit ${result.exitCode ?? '?'}`;
  return { attached, detail: `did not attach${timedOut ? ` within ${timeoutMs} ms` : ''} (${exit}${why ? `: ${scrub(why, { max: 160 })}` : ''})` };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

export async function collectDoctorReport(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const items: DoctorItem[] = [];
  const add = (name: string, status: DoctorStatus, detail: string): void => void items.push({ name, status, detail });
  const release = osRelease();
  const version = kernelVersion(release);
  const modern = version !== undefined && (version[0] > 5 || (version[0] === 5 && version[1] >= 8));
  const memcgAccounting = version !== undefined && (version[0] > 5 || (version[0] === 5 && version[1] >= 11));
  add('kernel', modern ? 'ok' : 'warn', `Linux ${release}${modern ? '' : ' (before 5.8: BPF tracing needs CAP_SYS_ADMIN)'}`);

  add('btf', (await exists('/sys/kernel/btf/vmlinux')) ? 'ok' : 'fail',
    (await exists('/sys/kernel/btf/vmlinux')) ? '/sys/kernel/btf/vmlinux present (CO-RE works)' : 'no /sys/kernel/btf/vmlinux: the tools need a kernel with CONFIG_DEBUG_INFO_BTF');

  const tracefs = await tracefsMountPoint().catch(() => undefined);
  add('tracefs', tracefs ? 'ok' : 'warn', tracefs ? `mounted at ${tracefs}` : `not mounted (the agent mounts it when root); otherwise ${TRACEFS_HOWTO}`);

  const kprobePmu = await exists('/sys/bus/event_source/devices/kprobe');
  add('kprobe PMU', kprobePmu ? 'ok' : 'warn', kprobePmu ? '/sys/bus/event_source/devices/kprobe present' : 'no /sys/bus/event_source/devices/kprobe: perf kprobes unavailable (legacy kprobes via tracefs only)');

  const status = await readFile('/proc/self/status', 'latin1').catch(() => '');
  const capHex = /^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0';
  const caps = decodeCapabilities(capHex);
  const capsOk = caps.has('CAP_SYS_ADMIN') || (modern && caps.has('CAP_BPF') && caps.has('CAP_PERFMON'));
  const capList = [...caps].sort().join(', ') || 'none of CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_SYS_RESOURCE, CAP_SYS_PTRACE';
  add('capabilities', capsOk ? 'ok' : 'fail', `CapEff ${capHex}: ${capList}${capsOk ? '' : `; ${capabilityAdvice(release)}`}`);

  const paranoid = (await readFile('/proc/sys/kernel/perf_event_paranoid', 'latin1').catch(() => '')).trim();
  const perfCap = caps.has('CAP_PERFMON') || caps.has('CAP_SYS_ADMIN');
  add('perf_event_paranoid', paranoid === '' ? 'warn' : perfCap || Number(paranoid) <= 1 ? 'ok' : 'warn',
    paranoid === '' ? 'unreadable' : `${paranoid}${perfCap ? ' (irrelevant with CAP_PERFMON/CAP_SYS_ADMIN)' : ' and no CAP_PERFMON: perf events may be refused'}`);

  const memlock = parseMemlockLimit(await readFile('/proc/self/limits', 'latin1').catch(() => ''));
  const memlockText = memlock === undefined ? 'unknown' : memlock === 'unlimited' ? 'unlimited' : `${memlock} bytes`;
  if (memcgAccounting) add('RLIMIT_MEMLOCK', 'ok', `${memlockText} (kernel 5.11+ accounts BPF memory to the cgroup; not used)`);
  else if (memlock === 'unlimited' || caps.has('CAP_SYS_RESOURCE')) add('RLIMIT_MEMLOCK', 'ok', `${memlockText}; the tools can raise it`);
  else add('RLIMIT_MEMLOCK', 'warn', `${memlockText} and no CAP_SYS_RESOURCE: before 5.11 BPF maps may not fit; use ulimit -l unlimited`);

  const stdbuf = await findExecutable(opts.stdbufPath ?? 'stdbuf');
  add('stdbuf', stdbuf ? 'ok' : 'fail', stdbuf ?? `${opts.stdbufPath ?? 'stdbuf'} not found: install coreutils`);
  const timeoutMs = opts.probeTimeoutMs ?? 3000;
  const probe = async (tool: ToolName, path: string, missing: DoctorStatus, install: string): Promise<ProbeResult | undefined> => {
    const found = await findExecutable(path);
    add(tool, found ? 'ok' : missing, found ? `found at ${found}` : `not found at ${path}: ${install}`);
    if (!found || !stdbuf) return undefined;
    return probeTool(stdbuf, found, timeoutMs);
  };
  const [ours, connlat, states] = await Promise.all([
    probe('connlat-probe', opts.connlatProbePath ?? DEFAULT_TOOL_PATHS['connlat-probe'], 'warn', 'build it with scripts/build-probe.sh (the agent image has it)'),
    probe('tcpconnlat', opts.tcpconnlatPath ?? DEFAULT_TOOL_PATHS.tcpconnlat, 'fail', 'install libbpf-tools'),
    probe('tcpstates', opts.tcpstatesPath ?? DEFAULT_TOOL_PATHS.tcpstates, 'fail', 'install libbpf-tools'),
  ]);
  if (ours) add('connlat-probe attach (tracepoints)', ours.attached ? 'ok' : 'warn', ours.detail);
  if (connlat) add('tcpconnlat attach (kprobe/fentry)', connlat.attached ? 'ok' : 'warn', connlat.detail);
  if (states) add('tcpstates attach (tracepoint)', states.attached ? 'ok' : 'fail', states.detail);

  // the order `auto` tries them in
  const why: string[] = [];
  let auto: DoctorReport['auto'] | undefined;
  for (const [tool, result] of [['connlat-probe', ours], ['tcpconnlat', connlat], ['tcpstates', states]] as const) {
    if (result?.attached) {
      auto = { tool, reason: [...why, `${tool} attached`].join('; ') };
      break;
    }
    why.push(result ? `${tool} ${result.detail}` : `${tool} cannot run`);
  }
  auto ??= { tool: undefined, reason: why.join('; ') };
  add('auto source', auto.tool ? 'ok' : 'fail', auto.tool ? `would use ${auto.tool}: ${auto.reason}` : `no tool can run: ${auto.reason}`);
  return { items, auto };
}

export function formatDoctorReport(report: DoctorReport): string {
  const width = Math.max(...report.items.map((i) => i.name.length));
  return report.items.map((i) => `${i.status.padEnd(4)}  ${i.name.padEnd(width)}  ${i.detail}`).join('\n');
}
