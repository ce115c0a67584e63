// Renders deploy/ with the two tools users apply it with: kustomize (deploy/kustomize/base) and Helm
// (deploy/helm/connlat), both built by scripts/build-helm.sh into the cache. Tests skip with the build command when
// the binaries are missing.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);
export const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
export const chartDir = join(repoRoot, 'deploy/helm/connlat');
export const kustomizeDir = join(repoRoot, 'deploy/kustomize/base');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

export interface RenderTools {
  helm: string;
  kustomize: string;
}

/** The cached helm and kustomize, or the reason they are unavailable. */
export async function renderTools(): Promise<RenderTools | string> {
  try {
    const { stdout } = await run(join(repoRoot, 'scripts/build-helm.sh'), ['--check']);
    const paths = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
    if (!paths.helm || !paths.kustomize) return `scripts/build-helm.sh --check printed no paths: ${stdout}`;
    return { helm: paths.helm, kustomize: paths.kustomize };
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim() ?? String(err);
    return `${stderr}; build them with scripts/build-helm.sh`;
  }
}

export function parseObjects(text: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as K8sObject | null;
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

export const objectKey = (o: K8sObject): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

// Helm keeps its caches out of $HOME (no repositories are used; the chart is local).
const helmEnv = { ...process.env, HELM_CACHE_HOME: '/tmp/connlat-helm/cache', HELM_CONFIG_HOME: '/tmp/connlat-helm/config', HELM_DATA_HOME: '/tmp/connlat-helm/data' };

export async function renderKustomize(tools: RenderTools, dir = kustomizeDir): Promise<K8sObject[]> {
  const { stdout } = await run(tools.kustomize, ['build', dir], { maxBuffer: 16 << 20 });
  return parseObjects(stdout);
}

export async function renderHelm(tools: RenderTools, args: string[] = [], namespace = 'connlat'): Promise<K8sObject[]> {
  const { stdout } = await run(tools.helm, ['template', 'connlat', chartDir, '--namespace', namespace, ...args], {
    maxBuffer: 16 << 20,
    env: helmEnv,
  });
  return parseObjects(stdout);
}

export async function helmLint(tools: RenderTools): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(tools.helm, ['lint', '--strict', chartDir], {
      env: helmEnv,
    });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, output: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

export function byKey(objects: K8sObject[]): Map<string, K8sObject> {
  const map = new Map<string, K8sObject>();
  for (const o of objects) {
    const key = objectKey(o);
    if (map.has(key)) throw new Error(`rendered twice: ${key}`);
    map.set(key, o);
  }
  return map;
}
