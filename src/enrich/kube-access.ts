// How the watches reach the API server: its URL and the TLS and credentials of each request. Read from the pod's
// ServiceAccount (in a cluster) or from a kubeconfig file, without @kubernetes/client-node: importing that package
// (its KubeConfig pulls in every generated API model) cost 24 MiB of heap and ~75 MiB of RSS, more than the index
// of a 150k-pod cluster (see docs/enrichment.md, Memory). Its KubeConfig still fits KubeAccess, so tests hand one in.
import { readFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';

export interface KubeAccess {
  getCurrentCluster(): { server: string } | null;
  /** Sets TLS (CA, client certificate) and the Authorization header on a request's options. */
  applyToHTTPSOptions(opts: RequestOptions): Promise<void>;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

interface Credentials {
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  insecure?: boolean;
  serverName?: string | undefined;
  /** a fixed token, or a file read at every request (a bound ServiceAccount token is rotated in place) */
  token?: string | undefined;
  tokenFile?: string | undefined;
  basic?: string | undefined;
}

class StaticAccess implements KubeAccess {
  readonly #server: string;
  readonly #creds: Credentials;
  constructor(server: string, creds: Credentials) {
    this.#server = server;
    this.#creds = creds;
  }
  getCurrentCluster(): { server: string } {
    return { server: this.#server };
  }
  async applyToHTTPSOptions(opts: RequestOptions): Promise<void> {
    const c = this.#creds;
    if (c.ca) opts.ca = c.ca;
    if (c.cert) opts.cert = c.cert;
    if (c.key) opts.key = c.key;
    if (c.insecure) opts.rejectUnauthorized = false;
    if (c.serverName) opts.servername = c.serverName;
    const token = c.tokenFile !== undefined ? readFileSync(c.tokenFile, 'utf8').trim() : c.token;
    const auth = token ? `Bearer ${token}` : c.basic ? `Basic ${c.basic}` : undefined;
    if (auth) opts.headers = { ...opts.headers, Authorization: auth };
  }
}

/** In a pod: KUBERNETES_SERVICE_HOST/PORT and the mounted ServiceAccount token and CA. */
export function inClusterAccess(env: NodeJS.ProcessEnv, dir = SERVICE_ACCOUNT_DIR): KubeAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) throw new Error('KUBERNETES_SERVICE_HOST is not set');
  const port = env.KUBERNETES_SERVICE_PORT || '443';
  const tokenFile = join(dir, 'token');
  readFileSync(tokenFile); // fail now, with the path, if the token is not mounted
  return new StaticAccess(`https://${host.includes(':') ? `[${host}]` : host}:${port}`, { ca: readFileSync(join(dir, 'ca.crt')), tokenFile });
}

type Named<T> = Array<{ name?: string } & T>;
interface KubeconfigFile {
  'current-context'?: string;
  contexts?: Named<{ context?: { cluster?: string; user?: string } }>;
  clusters?: Named<{ cluster?: Record<string, unknown> }>;
  users?: Named<{ user?: Record<string, unknown> }>;
}

/** A kubeconfig's current context: server, CA, client certificate, token or basic auth (exec and auth-provider plugins are not supported). */
export function kubeconfigAccess(path: string): KubeAccess {
  const doc = parse(readFileSync(path, 'utf8')) as KubeconfigFile | null;
  if (doc === null || typeof doc !== 'object') throw new Error('not a kubeconfig (empty or not a YAML mapping)');
  const name = doc['current-context'];
  const ctx = doc.contexts?.find((c) => c.name === name)?.context;
  if (!name || ctx === undefined) throw new Error(`no current context${name ? ` named ${name}` : ''}`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  const server = typeof cluster?.server === 'string' ? cluster.server : undefined;
  if (cluster === undefined || server === undefined) throw new Error(`context ${name}: no cluster with a server`);
  const user = doc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  if (user.exec !== undefined || user['auth-provider'] !== undefined) throw new Error(`user ${ctx.user}: exec and auth-provider credentials are not supported; use a token or a client certificate`);
  const base = dirname(path);
  const bytes = (data: unknown, file: unknown): Buffer | undefined =>
    typeof data === 'string' ? Buffer.from(data, 'base64') : typeof file === 'string' ? readFileSync(isAbsolute(file) ? file : join(base, file)) : undefined;
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const tokenFile = str(user.tokenFile);
  return new StaticAccess(server, {
    ca: bytes(cluster['certificate-authority-data'], cluster['certificate-authority']),
    insecure: cluster['insecure-skip-tls-verify'] === true,
    serverName: str(cluster['tls-server-name']),
    cert: bytes(user['client-certificate-data'], user['client-certificate']),
    key: bytes(user['client-key-data'], user['client-key']),
    token: str(user.token),
    tokenFile: tokenFile === undefined ? undefined : isAbsolute(tokenFile) ? tokenFile : join(base, tokenFile),
    basic: str(user.username) && str(user.password) ? Buffer.from(`${user.username}:${user.password}`).toString('base64') : undefined,
  });
}
