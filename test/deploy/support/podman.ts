// The images scripts/build-images.sh built, run for real with podman (scripts/podman.sh: connlat's own storage and
// containers.conf) for the image tests. Each image is found through the archive the script reports, and is loaded
// back into podman's storage from it when missing, by the ref the archive carries (the one `ctr images import` uses).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PODMAN = join(REPO_ROOT, 'scripts/podman.sh');
const BUILD = join(REPO_ROOT, 'scripts/build-images.sh');

export type ImageName = 'agent' | 'gateway' | 'workload' | 'tools-debian' | 'tools-source';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs scripts/podman.sh with args; never rejects on a non-zero exit (the caller checks the code). */
export function podman(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawnPodman(args);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function spawnPodman(args: string[]): ChildProcess {
  return spawn(PODMAN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The ref an OCI archive names its image by (its index's org.opencontainers.image.ref.name) and the image ID. */
export async function archiveImage(archive: string): Promise<{ ref: string; id: string }> {
  const member = async (name: string) => JSON.parse((await exec('tar', ['-xOf', archive, name], { maxBuffer: 1 << 20 })).stdout) as unknown;
  const index = (await member('index.json')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  const ref = index.manifests[0]?.annotations?.['org.opencontainers.image.ref.name'];
  if (!ref) throw new Error(`${archive}: its index names no image`);
  const manifest = (await member(`blobs/sha256/${index.manifests[0]!.digest.replace(/^sha256:/, '')}`)) as { config: { digest: string } };
  return { ref, id: manifest.config.digest.replace(/^sha256:/, '') };
}

export type Images = { skip: string; archives?: undefined } | { skip?: undefined; archives: Record<ImageName, string> };

/** The built images' archives, or why the image tests cannot run (not root, podman missing, images not built). */
export async function builtImages(): Promise<Images> {
  if (process.getuid?.() !== 0) return { skip: 'needs root (podman with its storage under $CONNLAT_CACHE)' };
  try {
    await exec('sh', ['-c', 'command -v podman']);
  } catch {
    return { skip: 'podman is not installed' };
  }
  try {
    const { stdout } = await exec(BUILD, ['--check']);
    const archives = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
    return { archives: archives as Record<ImageName, string> };
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim() ?? String(err);
    return { skip: `${stderr}; build them with scripts/build-images.sh` };
  }
}

/**
 * The archive's image, loaded into podman's storage when podman lacks it. Tests run it by `id`: checkouts sharing the
 * cache may have tagged another build of theirs with the same ref.
 */
export async function loadImage(archive: string): Promise<{ ref: string; id: string }> {
  const image = await archiveImage(archive);
  if ((await podman(['image', 'exists', image.id])).code !== 0) {
    const load = await podman(['load', '-q', '-i', archive], 300_000);
    if (load.code !== 0) throw new Error(`podman load ${archive}: ${load.stderr}`);
  }
  return image;
}

export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  User?: string;
  Env?: string[];
  ExposedPorts?: Record<string, unknown>;
}

export async function imageConfig(ref: string): Promise<ImageConfig> {
  const r = await podman(['image', 'inspect', '--format', '{{json .Config}}', ref]);
  if (r.code !== 0) throw new Error(`podman image inspect ${ref}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ImageConfig;
}

/** Which of `paths` exist in the image (one container, listing them with test -e). */
export async function existingPaths(ref: string, paths: string[]): Promise<string[]> {
  const script = 'for p in "$@"; do [ -e "$p" ] || [ -L "$p" ] && echo "$p"; done; true';
  const r = await podman(['run', '--rm', '--network=host', '--entrypoint', '/bin/sh', ref, '-c', script, 'sh', ...paths]);
  if (r.code !== 0) throw new Error(`listing paths in ${ref}: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l !== '');
}

/**
 * A seccomp profile for podman that is its own default profile (containers-common's seccomp.json) with bpf() allowed
 * to holders of CAP_BPF and perf_event_open() to holders of CAP_PERFMON, as containerd's RuntimeDefault does. The
 * default allows both only with CAP_SYS_ADMIN, so a tool with CAP_BPF+CAP_PERFMON alone fails to load under it.
 */
export async function bpfSeccompProfile(dir: string): Promise<string> {
  interface Rule {
    names: string[];
    action: string;
    includes?: { caps?: string[] };
    excludes?: { caps?: string[] };
  }
  const profile = JSON.parse(await readFile('/usr/share/containers/seccomp.json', 'utf8')) as { syscalls: Rule[] };
  const ours = new Set(['bpf', 'perf_event_open']);
  const gatedBySysAdmin = profile.syscalls.filter((r) => r.names.some((n) => ours.has(n)));
  if (gatedBySysAdmin.length === 0) throw new Error('podman default seccomp profile: no rule for bpf/perf_event_open');
  // Take them out of the CAP_SYS_ADMIN-only rules (allow with it, EPERM without it), then allow them per capability.
  for (const rule of gatedBySysAdmin) rule.names = rule.names.filter((n) => !ours.has(n));
  profile.syscalls.push(
    { names: ['bpf'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_BPF'] } },
    { names: ['perf_event_open'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_PERFMON'] } },
  );
  const path = join(dir, 'seccomp-bpf.json');
  await writeFile(path, JSON.stringify(profile));
  return path;
}
