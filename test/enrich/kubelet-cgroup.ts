// Test helper: a real process placed in cgroups named exactly as kubelet names a container's (cgroup2 with the
// systemd driver's slice names; the cgroup v1 "pids" hierarchy, when mounted, with cgroupfs names), so that
// /proc/<pid>/cgroup reads as it would on a node. Needs root; removes what it made on cleanup().
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The mount point of a hierarchy: cgroup2 ("") or a v1 controller such as "pids". */
export function cgroupMount(controller: string): string | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountPoint = left.split(' ')[4]!;
    const [fstype, , options] = right.split(' ');
    if (controller === '' && fstype === 'cgroup2') return mountPoint;
    if (controller !== '' && fstype === 'cgroup' && options?.split(',').includes(controller)) return mountPoint;
  }
  return undefined;
}

/** Why a real kubelet-named cgroup cannot be made here, or undefined when it can. */
export function kubeletCgroupSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create cgroups';
  if (cgroupMount('') === undefined) return 'no cgroup2 hierarchy mounted';
  return undefined;
}

export class KubeletCgroups {
  readonly #created: string[] = [];
  readonly #children: ChildProcess[] = [];

  /** Spawns `sleep 60` inside the cgroups of pod `podUid` (BestEffort), container `containerId`. */
  async spawnInContainer(podUid: string, containerId: string): Promise<ChildProcess> {
    const v2 = cgroupMount('')!;
    const v1 = cgroupMount('pids');
    const slice = `kubepods-besteffort-pod${podUid.replaceAll('-', '_')}.slice`;
    const v2Leaf = this.#makeDirs(v2, ['kubepods.slice', 'kubepods-besteffort.slice', slice, `cri-containerd-${containerId}.scope`]);
    const v1Leaf = v1 ? this.#makeDirs(v1, ['kubepods', 'besteffort', `pod${podUid}`, containerId]) : undefined;
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    this.#children.push(child);
    await new Promise((resolve, reject) => child.once('spawn', resolve).once('error', reject));
    writeFileSync(join(v2Leaf, 'cgroup.procs'), String(child.pid));
    if (v1Leaf !== undefined) writeFileSync(join(v1Leaf, 'cgroup.procs'), String(child.pid));
    return child;
  }

  #makeDirs(root: string, parts: string[]): string {
    let dir = root;
    for (const part of parts) {
      dir = join(dir, part);
      if (!existsSync(dir)) {
        mkdirSync(dir);
        this.#created.push(dir);
      }
    }
    return dir;
  }

  /** Kills the processes, then removes the cgroups (innermost first; a cgroup must be empty to go). */
  async cleanup(): Promise<void> {
    for (const child of this.#children) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
    }
    for (const dir of this.#created.splice(0).reverse()) if (existsSync(dir)) rmdirSync(dir);
  }
}
