// PID -> pod UID and container id, through <hostProc>/<pid>/cgroup. Needed where the source address says nothing:
// hostNetwork pods share the node's IP, and a pod talking to 127.0.0.1 shows loopback. Results are cached by
// (pid, start time): the start time (field 22 of /proc/<pid>/stat, clock ticks since boot) changes when the kernel
// reuses a PID, so a reused PID can never inherit the previous owner's pod. The cgroup file is read between two
// reads of the start time; if they differ the process changed under us and nothing is concluded.
// A process often connects, then exits before its last connect's line is read (a Job's client, measured on the dev
// node right after the agent restarted): when /proc/<pid> is gone, an answer cached for that PID within
// RECENT_MS still stands. It cannot be another process's: a PID is handed out again only after the kernel has
// cycled through the whole PID space (pid_max, at least 32768), and a live reuse shows a new start time instead.
import { closeSync, openSync, readSync } from 'node:fs';
import { MAX_CGROUP_FILE_CHARS, parseCgroupFile } from './cgroup.ts';

export type PidLookup =
  | { kind: 'pod'; podUid: string; containerId: string | undefined }
  /** a live process outside any pod cgroup: a host process (kubelet, sshd, ...) */
  | { kind: 'host' }
  /** exited (or its PID was reused) before we could read it */
  | { kind: 'gone' }
  /** no PID (0, as tcpstates reports from softirq context) or /proc unreadable */
  | { kind: 'unknown' };

export interface PidCounters {
  /** lookups answered from /proc or the cache */
  lookups: number;
  cacheHits: number;
  /** processes gone (exited or PID reused) before the lookup: their connection keeps no source identity */
  processGone: number;
  /** processes gone before the lookup whose PID was resolved within RECENT_MS: that answer is used */
  goneButRecent: number;
  /** /proc/<pid> files that exist but could not be read (permissions, hostProc wrong) */
  unreadable: number;
}

const GONE: PidLookup = Object.freeze({ kind: 'gone' });
const UNKNOWN: PidLookup = Object.freeze({ kind: 'unknown' });
const HOST: PidLookup = Object.freeze({ kind: 'host' });

/** Field 22 (starttime) of /proc/<pid>/stat. COMM (field 2) is in parentheses and may itself hold ") " and spaces,
 * so fields are counted from the LAST ')'. */
export function parseStatStartTime(stat: string): string | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  const start = fields[22 - 3]; // fields[0] is field 3 (state)
  return start !== undefined && /^\d{1,20}$/.test(start) ? start : undefined;
}

type ReadResult = string | 'gone' | 'unreadable';

const readBuffer = Buffer.allocUnsafe(MAX_CGROUP_FILE_CHARS + 1);

/** open/read/close into one reused buffer: half the cost of readFileSync on the per-event path. /proc files are
 * seq_files, which fill a read as far as they have data, so a short read is the end of the file. */
function readProcFile(path: string, maxChars: number): ReadResult {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    let total = 0;
    while (total < maxChars) {
      const want = maxChars - total;
      const n = readSync(fd, readBuffer, total, want, null);
      total += n;
      if (n < want) break;
    }
    return readBuffer.toString('latin1', 0, total);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ESRCH' ? 'gone' : 'unreadable';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** How long an answer for a PID stands after its process is gone. */
export const RECENT_MS = 5_000;

export class PidResolver {
  readonly counters: PidCounters = { lookups: 0, cacheHits: 0, processGone: 0, goneButRecent: 0, unreadable: 0 };
  readonly #hostProc: string;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #cache = new Map<number, { start: string; result: PidLookup; atMs: number }>();

  constructor(hostProc: string, maxEntries = 16_384, now: () => number = Date.now) {
    this.#hostProc = hostProc.replace(/\/+$/, '') || '/';
    this.#maxEntries = Math.max(1, maxEntries);
    this.#now = now;
  }

  get cacheSize(): number {
    return this.#cache.size;
  }

  #startTime(pid: number): string | 'gone' | 'unreadable' {
    const stat = readProcFile(`${this.#hostProc}/${pid}/stat`, 4096);
    if (stat === 'gone' || stat === 'unreadable') return stat;
    return parseStatStartTime(stat) ?? 'unreadable';
  }

  #fail(what: 'gone' | 'unreadable'): PidLookup {
    if (what === 'gone') {
      this.counters.processGone++;
      return GONE;
    }
    this.counters.unreadable++;
    return UNKNOWN;
  }

  resolve(pid: number): PidLookup {
    if (!Number.isSafeInteger(pid) || pid <= 0) return UNKNOWN;
    this.counters.lookups++;
    const start = this.#startTime(pid);
    const cached = this.#cache.get(pid);
    if (start === 'gone' && cached !== undefined && this.#now() - cached.atMs <= RECENT_MS) {
      this.counters.goneButRecent++;
      return cached.result;
    }
    if (start === 'gone' || start === 'unreadable') return this.#fail(start);
    if (cached !== undefined && cached.start === start) {
      this.counters.cacheHits++;
      cached.atMs = this.#now();
      return cached.result;
    }
    const cgroup = readProcFile(`${this.#hostProc}/${pid}/cgroup`, MAX_CGROUP_FILE_CHARS + 1);
    if (cgroup === 'gone' || cgroup === 'unreadable') return this.#fail(cgroup);
    const again = this.#startTime(pid);
    if (again !== start) return this.#fail(again === 'unreadable' ? 'unreadable' : 'gone');
    const pod = parseCgroupFile(cgroup);
    // Not a pod, unless it mentions kubepods without parsing cleanly: then it is untrusted, not the host.
    const notPod = cgroup.includes('kubepods') ? UNKNOWN : HOST;
    const result: PidLookup = pod === undefined ? notPod : Object.freeze({ kind: 'pod', podUid: pod.podUid, containerId: pod.containerId });
    if (cached === undefined && this.#cache.size >= this.#maxEntries) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(pid, { start, result, atMs: this.#now() });
    return result;
  }
}
