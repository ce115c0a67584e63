// Thin, exact HTTP access to a kube-apiserver for tests: the request goes out as written (no client-side
// schema serialisation that would silently drop unknown fields), and a failed call throws the server's
// own Status message. Credentials come from a @kubernetes/client-node KubeConfig.
import { request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';

export type Query = Record<string, string | number | boolean | undefined>;

export interface KubeRequestOptions {
  /** JSON-serialised unless already a string. */
  body?: unknown;
  contentType?: string;
  query?: Query;
}

export interface KubeResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: unknown;
}

/** A non-2xx answer. `message` is the server's Status.message (its own words), `reason` e.g. "Forbidden". */
export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly response: KubeResponse;
  constructor(method: string, path: string, response: KubeResponse) {
    const status = response.json as { message?: string; reason?: string } | undefined;
    super(status?.message ?? `${method} ${path}: HTTP ${response.status}: ${response.text.slice(0, 500)}`);
    this.name = 'KubeApiError';
    this.status = response.status;
    this.reason = status?.reason ?? '';
    this.response = response;
  }
}

export async function kubeRequest(kc: KubeConfig, method: string, path: string, opts: KubeRequestOptions = {}): Promise<KubeResponse> {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error('kubeRequest: the KubeConfig has no current cluster');
  const url = new URL(path, cluster.server);
  for (const [key, value] of Object.entries(opts.query ?? {})) {
    if (value !== undefined) url.searchParams.set(key, String(value));
  }
  const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = opts.contentType ?? 'application/json';
  // agent: false -> no pooled keep-alive sockets outliving the server or the test.
  const requestOptions: import('node:https').RequestOptions = { method, headers, agent: false };
  await kc.applyToHTTPSOptions(requestOptions);
  return await new Promise<KubeResponse>((resolvePromise, reject) => {
    const req = httpsRequest(url, requestOptions, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** kubeRequest that returns the parsed body of a 2xx answer and throws KubeApiError otherwise. */
export async function kubeCall<T = unknown>(kc: KubeConfig, method: string, path: string, opts: KubeRequestOptions = {}): Promise<T> {
  const response = await kubeRequest(kc, method, path, opts);
  if (response.status < 200 || response.status > 299) throw new KubeApiError(method, path, response);
  return response.json as T;
}

export interface ClusterUser {
  name: string;
  certData?: string;
  keyData?: string;
  token?: string;
  /** Sent as the Impersonate-User header. */
  impersonateUser?: string;
}

/** A one-context KubeConfig for `server`, trusting the PEM CA `caPem`. */
export function makeKubeConfig(server: string, caPem: string, user: ClusterUser): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'connlat-test', server, caData: Buffer.from(caPem).toString('base64'), skipTLSVerify: false }],
    users: [user],
    contexts: [{ name: 'connlat-test', cluster: 'connlat-test', user: user.name, namespace: 'default' }],
    currentContext: 'connlat-test',
  });
  return kc;
}

// ---- server-side apply ----

export interface ApplyOptions {
  /** Field manager recorded in managedFields. Default "connlat-test". */
  fieldManager?: string;
  /** dryRun=All: validated, admitted and defaulted by the server, never stored. */
  dryRun?: boolean;
  /** Take ownership of fields other managers own. Default true (tests are the only writer). */
  force?: boolean;
  /** Server-side field validation. Default "Strict": unknown or duplicate fields are errors. */
  fieldValidation?: 'Strict' | 'Warn' | 'Ignore';
  /** Namespace for namespaced objects that name none. Default "default". */
  namespace?: string;
}

interface ApiResource { name: string; kind: string; namespaced: boolean }
const discoveryCache = new WeakMap<KubeConfig, Map<string, ApiResource[]>>();

/** Resolves apiVersion+kind to its REST collection through the server's discovery documents. */
export async function resourceFor(kc: KubeConfig, apiVersion: string, kind: string): Promise<{ base: string; resource: ApiResource }> {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  let perConfig = discoveryCache.get(kc);
  if (perConfig === undefined) discoveryCache.set(kc, (perConfig = new Map()));
  let resources = perConfig.get(apiVersion);
  if (resources === undefined) {
    resources = (await kubeCall<{ resources: ApiResource[] }>(kc, 'GET', base)).resources;
    perConfig.set(apiVersion, resources);
  }
  const resource = resources.find((r) => r.kind === kind && !r.name.includes('/'));
  if (resource === undefined) throw new Error(`the server has no resource of kind ${kind} in ${apiVersion}`);
  return { base, resource };
}

/** The REST path of one object; `name` undefined gives the collection. */
export async function objectPath(kc: KubeConfig, apiVersion: string, kind: string, namespace: string | undefined, name?: string): Promise<string> {
  const { base, resource } = await resourceFor(kc, apiVersion, kind);
  const scope = resource.namespaced ? `${base}/namespaces/${encodeURIComponent(namespace ?? 'default')}` : base;
  return name === undefined ? `${scope}/${resource.name}` : `${scope}/${resource.name}/${encodeURIComponent(name)}`;
}

/** Parses a multi-document YAML (or JSON) manifest; empty documents are skipped, syntax errors throw. */
export function parseManifests(manifest: string): KubernetesObject[] {
  const objects: KubernetesObject[] = [];
  for (const doc of parseAllDocuments(manifest)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML manifest: ${doc.errors[0]?.message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error('a manifest document must be a mapping (one Kubernetes object)');
    objects.push(value as KubernetesObject);
  }
  return objects;
}

export type Manifest = string | KubernetesObject | KubernetesObject[];
export type CreateOptions = Omit<ApplyOptions, 'force'>;

/** Sends every object of `manifest` in order, as `how` says (one request each); returns the server's objects. */
async function sendEach(
  kc: KubeConfig,
  manifest: Manifest,
  opts: CreateOptions,
  how: (object: KubernetesObject, apiVersion: string, kind: string) => Promise<{ method: string; path: string } & KubeRequestOptions>,
): Promise<KubernetesObject[]> {
  const objects = typeof manifest === 'string' ? parseManifests(manifest) : Array.isArray(manifest) ? manifest : [manifest];
  const results: KubernetesObject[] = [];
  for (const object of objects) {
    if (!object.apiVersion || !object.kind) throw new Error('every object needs apiVersion and kind');
    const { method, path, query, ...rest } = await how(object, object.apiVersion, object.kind);
    const common = { fieldManager: opts.fieldManager ?? 'connlat-test', fieldValidation: opts.fieldValidation ?? 'Strict', dryRun: opts.dryRun ? 'All' : undefined };
    results.push(await kubeCall<KubernetesObject>(kc, method, path, { body: object, ...rest, query: { ...common, ...query } }));
  }
  return results;
}

/** Server-side apply (PATCH application/apply-patch+yaml) of every object in order; returns the server's objects. */
export async function serverSideApply(kc: KubeConfig, manifest: Manifest, opts: ApplyOptions = {}): Promise<KubernetesObject[]> {
  return await sendEach(kc, manifest, opts, async (object, apiVersion, kind) => {
    const name = object.metadata?.name;
    if (!name) throw new Error(`a ${kind} to apply needs metadata.name`);
    return {
      method: 'PATCH',
      path: await objectPath(kc, apiVersion, kind, object.metadata?.namespace ?? opts.namespace, name),
      contentType: 'application/apply-patch+yaml',
      query: { force: opts.force ?? true },
    };
  });
}

/** Plain create (POST to the collection) of every object in order, with Strict field validation by default. */
export async function createObjects(kc: KubeConfig, manifest: Manifest, opts: CreateOptions = {}): Promise<KubernetesObject[]> {
  return await sendEach(kc, manifest, opts, async (object, apiVersion, kind) => ({
    method: 'POST',
    path: await objectPath(kc, apiVersion, kind, object.metadata?.namespace ?? opts.namespace),
  }));
}

// ---- identities and authorization ----

export interface AccessQuery {
  verb: string;
  resource: string;
  /** API group; "" (core) by default. */
  group?: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

export interface AccessDecision {
  allowed: boolean;
  denied: boolean;
  reason: string;
}

export interface Subject {
  user: string;
  groups?: string[];
}

/** The identity a ServiceAccount's tokens authenticate as (what the token authenticator reports). */
export function serviceAccountSubject(namespace: string, name: string): Subject {
  return {
    user: `system:serviceaccount:${namespace}:${name}`,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
  };
}

function resourceAttributes(query: AccessQuery) {
  return { group: query.group ?? '', ...query };
}

function decision(review: { status?: { allowed?: boolean; denied?: boolean; reason?: string } }): AccessDecision {
  return { allowed: review.status?.allowed === true, denied: review.status?.denied === true, reason: review.status?.reason ?? '' };
}

/** Asks the server's authorizer (RBAC) whether `subject` may do `query` (needs a caller allowed to create SARs). */
export async function subjectAccessReview(kc: KubeConfig, subject: Subject, query: AccessQuery): Promise<AccessDecision> {
  return decision(
    await kubeCall(kc, 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: { user: subject.user, groups: subject.groups ?? [], resourceAttributes: resourceAttributes(query) },
      },
    }),
  );
}

/** Asks as the KubeConfig's own identity ("kubectl auth can-i"). */
export async function selfSubjectAccessReview(kc: KubeConfig, query: AccessQuery): Promise<AccessDecision> {
  return decision(
    await kubeCall(kc, 'POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
      body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: resourceAttributes(query) } },
    }),
  );
}

/** Mints a bound token for an existing ServiceAccount through the TokenRequest API. */
export async function requestServiceAccountToken(
  kc: KubeConfig,
  namespace: string,
  name: string,
  expirationSeconds = 3600,
): Promise<string> {
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}/token`;
  const review = await kubeCall<{ status?: { token?: string } }>(kc, 'POST', path, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
  });
  if (!review.status?.token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  return review.status.token;
}
