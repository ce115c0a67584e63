// Reaching the API server without @kubernetes/client-node: kubeconfig files and the in-cluster ServiceAccount.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { inClusterAccess, kubeconfigAccess } from '../../src/enrich/kube-access.ts';

const dir = mkdtempSync(join(tmpdir(), 'connlat-kube-access-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(name: string, cluster: string, user: string, context = 'ctx'): string {
  const path = join(dir, name);
  writeFileSync(path, [
    'apiVersion: v1', 'kind: Config', `current-context: ${context}`,
    `clusters: [{name: c, cluster: ${cluster}}]`,
    `users: [{name: u, user: ${user}}]`,
    'contexts: [{name: ctx, context: {cluster: c, user: u}}]',
  ].join('\n'));
  return path;
}

async function optionsOf(access: { applyToHTTPSOptions(o: RequestOptions): Promise<void> }): Promise<RequestOptions> {
  const opts: RequestOptions = { headers: { Accept: 'application/json' } };
  await access.applyToHTTPSOptions(opts);
  return opts;
}

describe('kubeconfigAccess', () => {
  it('server, inline CA and client certificate', async () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const a = kubeconfigAccess(kubeconfig('cert', `{server: "https://10.0.0.1:6443", certificate-authority-data: ${b64('CA')}}`, `{client-certificate-data: ${b64('CERT')}, client-key-data: ${b64('KEY')}}`));
    assert.deepEqual(a.getCurrentCluster(), { server: 'https://10.0.0.1:6443' });
    const o = await optionsOf(a);
    assert.equal(String(o.ca), 'CA');
    assert.equal(String(o.cert), 'CERT');
    assert.equal(String(o.key), 'KEY');
    assert.deepEqual(o.headers, { Accept: 'application/json' });
  });

  it('a token, a CA file relative to the kubeconfig, insecure and server name', async () => {
    writeFileSync(join(dir, 'ca.pem'), 'CAFILE');
    const o = await optionsOf(kubeconfigAccess(kubeconfig('token', '{server: "https://k", certificate-authority: ca.pem, tls-server-name: api.internal}', '{token: abc}')));
    assert.equal(String(o.ca), 'CAFILE');
    assert.equal(o.servername, 'api.internal');
    assert.deepEqual(o.headers, { Accept: 'application/json', Authorization: 'Bearer abc' });
    const insecure = await optionsOf(kubeconfigAccess(kubeconfig('insecure', '{server: "https://k", insecure-skip-tls-verify: true}', '{username: a, password: b}')));
    assert.equal(insecure.rejectUnauthorized, false);
    assert.deepEqual(insecure.headers, { Accept: 'application/json', Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` });
  });

  it('a tokenFile is read at every request (rotated tokens)', async () => {
    const tokenPath = join(dir, 'tok');
    writeFileSync(tokenPath, 'one\n');
    const a = kubeconfigAccess(kubeconfig('tokfile', '{server: "https://k"}', `{tokenFile: ${tokenPath}}`));
    assert.equal((await optionsOf(a)).headers!['Authorization' as never], 'Bearer one');
    writeFileSync(tokenPath, 'two');
    assert.equal((await optionsOf(a)).headers!['Authorization' as never], 'Bearer two');
  });

  it('one-line errors: no context, no server, exec plugins', () => {
    assert.throws(() => kubeconfigAccess(kubeconfig('noctx', '{server: "https://k"}', '{}', 'other')), /no current context named other/);
    assert.throws(() => kubeconfigAccess(kubeconfig('nosrv', '{}', '{}')), /context ctx: no cluster with a server/);
    assert.throws(() => kubeconfigAccess(kubeconfig('exec', '{server: "https://k"}', '{exec: {command: aws}}')), /exec and auth-provider credentials are not supported/);
    writeFileSync(join(dir, 'empty'), '');
    assert.throws(() => kubeconfigAccess(join(dir, 'empty')), /not a kubeconfig/);
  });
});

describe('inClusterAccess', () => {
  it('service host and port, the mounted CA, the token re-read per request', async () => {
    const sa = mkdtempSync(join(dir, 'sa-'));
    writeFileSync(join(sa, 'token'), 't1');
    writeFileSync(join(sa, 'ca.crt'), 'CLUSTERCA');
    const a = inClusterAccess({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }, sa);
    assert.deepEqual(a.getCurrentCluster(), { server: 'https://[fd00::1]:6443' });
    const o = await optionsOf(a);
    assert.equal(String(o.ca), 'CLUSTERCA');
    assert.equal(o.headers!['Authorization' as never], 'Bearer t1');
    assert.throws(() => inClusterAccess({ KUBERNETES_SERVICE_HOST: '10.96.0.1' }, join(dir, 'nothing')), /token/);
  });
});
