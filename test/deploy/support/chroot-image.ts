// Replays a Dockerfile without a container engine: each stage's base image is emulated by a Debian bookworm root
// filesystem made with debootstrap (cached as a tarball under $CONNLAT_CACHE/rootfs/), its RUN steps run with chroot
// in a private mount namespace (proc, /dev and /sys mounted inside; they vanish with the process), and its COPY
// steps copy from the build context (honouring the Dockerfile's .dockerignore) or from an earlier stage's root.
// Needs root, debootstrap, unshare and chroot; network only to Debian's mirror and the npm registry.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, posix, relative } from 'node:path';
import { promisify } from 'node:util';
import { dockerignoreMatcher, parseDockerfile, substitute, type Stage } from './dockerfile.ts';

const run = promisify(execFile);

export const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
const SUITE = 'bookworm';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const cacheRoot = (): string => process.env.CONNLAT_CACHE ?? join(homedir(), '.cache', 'connlat');
export const baseTarballPath = (): string => join(cacheRoot(), 'rootfs', `debian-${SUITE}-minbase-amd64.tar.gz`);

/** Why the image tests cannot run here, or undefined when they can. */
export async function missingPrerequisite(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (chroot, mount namespaces)';
  for (const tool of ['debootstrap', 'unshare', 'chroot', 'tar']) {
    try {
      await run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}

/** The cached bookworm minbase tarball; made with debootstrap (a few minutes) when missing. */
export async function ensureBaseTarball(log: (s: string) => void): Promise<string> {
  const tarball = baseTarballPath();
  if (existsSync(tarball)) return tarball;
  await mkdir(dirname(tarball), { recursive: true });
  const work = await mkdtemp(join(dirname(tarball), '.debootstrap-'));
  try {
    const started = Date.now();
    log(`debootstrap --variant=minbase ${SUITE} from ${DEBIAN_MIRROR} (cached afterwards in ${tarball})`);
    await run('debootstrap', ['--variant=minbase', SUITE, join(work, 'root'), DEBIAN_MIRROR], { maxBuffer: 64 << 20 });
    await run('tar', ['-C', join(work, 'root'), '-czf', join(work, 'root.tar.gz'), '.']);
    await run('mv', [join(work, 'root.tar.gz'), tarball]);
    log(`base rootfs made in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return tarball;
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** debian:bookworm-slim and node:24-bookworm-slim, as far as the recipes rely on them. */
async function emulateBase(image: string, root: string, repoRoot: string): Promise<Record<string, string>> {
  await run('tar', ['-C', root, '-xzf', baseTarballPath()]);
  // The official Debian images use deb822 sources for the release, its updates and its security suite.
  await rm(join(root, 'etc/apt/sources.list'), { force: true });
  await writeFile(
    join(root, 'etc/apt/sources.list.d/debian.sources'),
    [
      `Types: deb\nURIs: ${DEBIAN_MIRROR}\nSuites: ${SUITE} ${SUITE}-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
      `Types: deb\nURIs: ${DEBIAN_MIRROR}-security\nSuites: ${SUITE}-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
    ].join('\n'),
  );
  // What Docker bind-mounts into every build step and container.
  await cp('/etc/resolv.conf', join(root, 'etc/resolv.conf'), { dereference: true });
  if (/^debian:bookworm(-slim)?$/.test(image)) return {};
  const node = /^node:(\d+)(?:[.\d]*)-bookworm-slim$/.exec(image);
  if (node) {
    // The official image: Node in /usr/local/bin and npm in /usr/local/lib/node_modules. Node is the project's
    // pinned Node 24 (the `node` devDependency); npm is the one on this machine's PATH.
    const nodeBin = join(repoRoot, 'node_modules/node/bin/node');
    const { stdout: version } = await run(nodeBin, ['--version']);
    if (!version.startsWith(`v${node[1]}.`)) throw new Error(`${image}: the project's Node is ${version.trim()}`);
    await cp(nodeBin, join(root, 'usr/local/bin/node'));
    const { stdout: npmBin } = await run('sh', ['-c', 'command -v npm']);
    const npmDir = dirname(dirname(await realpath(npmBin.trim())));
    await cp(npmDir, join(root, 'usr/local/lib/node_modules/npm'), { recursive: true, verbatimSymlinks: true });
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(root, 'usr/local/bin/npm'));
    await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(root, 'usr/local/bin/npx'));
    return { NODE_VERSION: version.trim().slice(1) };
  }
  throw new Error(`base image ${image} is not emulated by test/deploy/support/chroot-image.ts`);
}

export interface Bind {
  host: string;
  /** absolute path inside the root */
  inside: string;
  readOnly?: boolean;
}

export interface StageRoot {
  name?: string;
  base: string;
  root: string;
  workdir: string;
  env: Record<string, string>;
  entrypoint?: string[];
  cmd?: string[];
}

export interface RunOptions {
  binds?: Bind[];
  env?: Record<string, string>;
  /** As a container with readOnlyRootFilesystem: the root is remounted read-only, /tmp is a fresh tmpfs. */
  readOnlyRoot?: boolean;
}

function chrootArgs(stage: StageRoot, argv: string[], opts: RunOptions): string[] {
  const r = stage.root;
  const binds = opts.binds ?? [];
  const target = (inside: string) => quote(join(r, inside));
  const mounts = [
    // Mount points first: once the root is read-only nothing can be created in it.
    ...binds.map((b) => `mkdir -p ${target(b.inside)}`),
    ...(opts.readOnlyRoot ? [`mount --bind ${quote(r)} ${quote(r)}`, `mount -o remount,bind,ro ${quote(r)}`, `mount -t tmpfs -o size=16m tmpfs ${target('tmp')}`] : []),
    `mount -t proc proc ${target('proc')}`,
    `mount --rbind /dev ${target('dev')}`,
    `mount --rbind /sys ${target('sys')}`,
    ...binds.flatMap((b) => [
      `mount --bind ${quote(b.host)} ${target(b.inside)}`,
      ...(b.readOnly ? [`mount -o remount,bind,ro ${target(b.inside)}`] : []),
    ]),
  ];
  const env = { PATH, HOME: '/root', ...stage.env, ...opts.env };
  const envArgs = Object.entries(env).map(([k, v]) => quote(`${k}=${v}`));
  const inner = `cd ${quote(stage.workdir)} && exec ${argv.map(quote).join(' ')}`;
  const script = `set -e; ${mounts.join('; ')}; exec chroot ${quote(r)} /usr/bin/env -i ${envArgs.join(' ')} /bin/sh -c ${quote(inner)}`;
  return ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', script];
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs argv inside a stage's root (cwd = its WORKDIR); never rejects, the caller checks the code. */
export function runIn(stage: StageRoot, argv: string[], opts: RunOptions & { timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawnIn(stage, argv, opts);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30 * 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts argv inside a stage's root; the child's pid ends up being argv[0] itself (every wrapper execs). */
export function spawnIn(stage: StageRoot, argv: string[], opts: RunOptions = {}): ChildProcess {
  return spawn('unshare', chrootArgs(stage, argv, opts), { stdio: ['ignore', 'pipe', 'pipe'] });
}

async function expandSources(dir: string, pattern: string): Promise<string[]> {
  const full = join(dir, pattern);
  if (!/[*?]/.test(basename(pattern))) return [full];
  const re = new RegExp(`^${basename(pattern).replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`);
  const names = (await readdir(dirname(full))).filter((n) => re.test(n));
  return names.map((n) => join(dirname(full), n));
}

async function copyFromContext(context: string, src: string, dest: string, ignored: (rel: string) => boolean): Promise<void> {
  const rel = relative(context, src);
  if ((await stat(src)).isDirectory()) {
    for (const entry of await readdir(src, { recursive: true, withFileTypes: true })) {
      if (entry.isDirectory()) continue;
      const path = join(entry.parentPath, entry.name);
      if (ignored(relative(context, path))) continue;
      await mkdir(dirname(join(dest, relative(src, path))), { recursive: true });
      await cp(path, join(dest, relative(src, path)));
    }
  } else {
    if (ignored(rel)) throw new Error(`COPY ${rel}: excluded by the .dockerignore, docker build would fail`);
    await mkdir(dirname(dest), { recursive: true });
    await cp(src, dest);
  }
}

export interface BuildResult {
  stages: StageRoot[];
  final: StageRoot;
  /** seconds per stage */
  timings: Array<{ stage: string; seconds: number }>;
  cleanup(): Promise<void>;
}

/**
 * Builds every stage of a Dockerfile. context: the docker build context; binds: extra mounts for every RUN step
 * (e.g. a package cache, the equivalent of BuildKit cache mounts). Throws with the failing step and its output.
 */
export async function buildDockerfile(opts: {
  dockerfile: string;
  context: string;
  repoRoot: string;
  binds?: Bind[];
  buildArgs?: Record<string, string>;
  log: (s: string) => void;
}): Promise<BuildResult> {
  const text = await readFile(opts.dockerfile, 'utf8');
  const parsed = parseDockerfile(text);
  const ignoreFile = `${opts.dockerfile}.dockerignore`;
  const ignored = existsSync(ignoreFile)
    ? dockerignoreMatcher(await readFile(ignoreFile, 'utf8'))
    : existsSync(join(opts.context, '.dockerignore'))
      ? dockerignoreMatcher(await readFile(join(opts.context, '.dockerignore'), 'utf8'))
      : () => false;
  const work = await mkdtemp(join(tmpdir(), 'connlat-image-'));
  const stages: StageRoot[] = [];
  const timings: BuildResult['timings'] = [];
  const cleanup = () => rm(work, { recursive: true, force: true });
  try {
    for (const [index, stage] of parsed.stages.entries()) {
      const started = Date.now();
      const label = stage.name ?? `stage ${index}`;
      stages.push(await buildStage(stage, index, label, parsed.globalArgs, work, stages, ignored, opts));
      timings.push({ stage: label, seconds: (Date.now() - started) / 1000 });
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { stages, final: stages.at(-1)!, timings, cleanup };
}

async function buildStage(
  stage: Stage,
  index: number,
  label: string,
  globalArgs: Record<string, string>,
  work: string,
  earlier: StageRoot[],
  ignored: (rel: string) => boolean,
  opts: { context: string; repoRoot: string; binds?: Bind[]; buildArgs?: Record<string, string>; log: (s: string) => void },
): Promise<StageRoot> {
  const root = join(work, `stage-${index}`);
  await mkdir(root);
  const base = substitute(stage.base, { ...globalArgs, ...opts.buildArgs });
  opts.log(`[${label}] FROM ${base} (emulated)`);
  const env = await emulateBase(base, root, opts.repoRoot);
  const current: StageRoot = { base, root, workdir: '/', env, ...(stage.name ? { name: stage.name } : {}) };
  const args: Record<string, string> = {};
  for (const step of stage.steps) {
    const vars = { ...args, ...current.env };
    switch (step.kind) {
      case 'ARG':
        args[step.name] = opts.buildArgs?.[step.name] ?? step.value ?? '';
        break;
      case 'ENV':
        for (const [k, v] of Object.entries(step.vars)) current.env[k] = substitute(v, vars);
        break;
      case 'WORKDIR':
        current.workdir = posix.resolve(current.workdir, substitute(step.path, vars));
        await mkdir(join(root, current.workdir), { recursive: true });
        break;
      case 'COPY': {
        const from = step.from === undefined ? undefined : earlier.find((s, i) => s.name === step.from || String(i) === step.from);
        if (step.from !== undefined && !from) throw new Error(`COPY --from=${step.from}: no such stage`);
        const dest = posix.resolve(current.workdir, substitute(step.dest, vars));
        const sourceDir = from ? from.root : opts.context;
        const sources = (await Promise.all(step.sources.map((s) => expandSources(sourceDir, from ? s.replace(/^\/+/, '') : s)))).flat();
        if (sources.length === 0) throw new Error(`line ${step.line}: COPY ${step.sources.join(' ')}: nothing matched`);
        const intoDir = step.dest.endsWith('/') || sources.length > 1;
        for (const src of sources) {
          const isDir = (await stat(src)).isDirectory();
          const target = join(root, isDir || !intoDir ? dest : posix.join(dest, basename(src)));
          if (from) {
            await mkdir(isDir ? target : dirname(target), { recursive: true });
            await cp(src, target, { recursive: true, verbatimSymlinks: true });
          } else {
            await copyFromContext(opts.context, src, target, ignored);
          }
        }
        opts.log(`[${label}] COPY ${step.from ? `--from=${step.from} ` : ''}${step.sources.join(' ')} ${step.dest}`);
        break;
      }
      case 'RUN': {
        const started = Date.now();
        const trust = hostTrust();
        const result = await runIn(current, ['/bin/sh', '-c', step.command], { binds: [...(opts.binds ?? []), ...trust.binds], env: { ...args, ...trust.env } });
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        if (result.code !== 0) {
          const tail = (result.stderr + result.stdout).trim().split('\n').slice(-15).join('\n');
          throw new StepError(`[${label}] line ${step.line}: RUN ${step.command} exited ${result.code}:\n${tail}`, result);
        }
        opts.log(`[${label}] RUN ${step.command.slice(0, 100)} (${seconds} s)`);
        break;
      }
    }
  }
  if (stage.entrypoint) current.entrypoint = stage.entrypoint;
  if (stage.cmd) current.cmd = stage.cmd;
  return current;
}

/**
 * The build machine's extra TLS trust (a proxy's CA), handed to RUN steps the way a build environment would pass its
 * proxy settings: npm and Node read NODE_EXTRA_CA_CERTS / npm_config_cafile, curl CURL_CA_BUNDLE. curl replaces its
 * bundle with that file rather than adding to it: fine where it is the host's whole bundle (as here) or the CA of a
 * proxy that intercepts every connection. Nothing is written into the image.
 */
function hostTrust(): { binds: Bind[]; env: Record<string, string> } {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file || !existsSync(file)) return { binds: [], env: {} };
  const inside = '/run/connlat-build-ca';
  const path = posix.join(inside, basename(file));
  return { binds: [{ host: dirname(file), inside, readOnly: true }], env: { NODE_EXTRA_CA_CERTS: path, npm_config_cafile: path, CURL_CA_BUNDLE: path } };
}

export class StepError extends Error {
  result: RunResult;
  constructor(message: string, result: RunResult) {
    super(message);
    this.result = result;
  }
}
