// tracefs: libbpf reads tracepoint ids (and creates legacy kprobes) under /sys/kernel/tracing, or
// /sys/kernel/debug/tracing. A fresh machine may not have it mounted; as root we mount it, otherwise we say how.
import { readFile } from 'node:fs/promises';
import { execaModule } from '../lazy.ts';

export const TRACEFS_PATH = '/sys/kernel/tracing';
const TRACEFS_PATHS = [TRACEFS_PATH, '/sys/kernel/debug/tracing'];

/** Pure: the mount point of a tracefs at one of the paths libbpf uses, from /proc/self/mountinfo text. */
export function findTracefsMount(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    // "36 35 0:13 / /sys/kernel/tracing rw,relatime - tracefs nodev rw": mount point is field 5, fstype follows " - ".
    const sep = line.indexOf(' - ');
    if (sep === -1) continue;
    const fields = line.slice(0, sep).split(' ');
    const fstype = line.slice(sep + 3).split(' ')[0];
    const mountPoint = fields[4];
    if (fstype === 'tracefs' && mountPoint !== undefined && TRACEFS_PATHS.includes(mountPoint)) return mountPoint;
  }
  return undefined;
}

export async function tracefsMountPoint(mountinfoPath = '/proc/self/mountinfo'): Promise<string | undefined> {
  return findTracefsMount(await readFile(mountinfoPath, 'latin1'));
}

export interface TracefsResult {
  ok: boolean;
  /** true when this call mounted it. */
  mountedNow: boolean;
  /** One line for the operator. */
  message: string;
}

export const TRACEFS_HOWTO = `mount it with 'mount -t tracefs nodev ${TRACEFS_PATH}' as root (in Kubernetes: a hostPath volume for ${TRACEFS_PATH})`;

/** Makes sure tracefs is mounted: mounts it when we may (root / CAP_SYS_ADMIN), otherwise explains how. */
export async function ensureTracefs(): Promise<TracefsResult> {
  const existing = await tracefsMountPoint().catch(() => undefined);
  if (existing) return { ok: true, mountedNow: false, message: `tracefs is mounted at ${existing}` };
  if (process.getuid?.() !== 0) {
    return { ok: false, mountedNow: false, message: `tracefs is not mounted and we are not root: ${TRACEFS_HOWTO}` };
  }
  const r = await execaModule().execa('mount', ['-t', 'tracefs', 'nodev', TRACEFS_PATH], { reject: false, stdin: 'ignore' });
  if (r.exitCode === 0) {
    return { ok: true, mountedNow: true, message: `tracefs was not mounted; mounted it at ${TRACEFS_PATH}` };
  }
  const why = String(r.stderr || r.shortMessage || `exit ${r.exitCode}`).split('\n')[0];
  return { ok: false, mountedNow: false, message: `tracefs is not mounted and mounting it failed (${why}): ${TRACEFS_HOWTO}` };
}
