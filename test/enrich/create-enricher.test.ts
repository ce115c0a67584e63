// Which enricher the agent gets: off on a plain host (one line saying why), on with a cluster or a kubeconfig.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseCommandLine } from '../../src/config.ts';
import { DisabledEnricher } from '../../src/enrich/enricher.ts';
import { createEnricher } from '../../src/enrich/index.ts';
import { KubeEnricher } from '../../src/enrich/kube-enricher.ts';
import { createLogger } from '../../src/log.ts';

const logger = createLogger('error');
const configOf = (...argv: string[]) => parseCommandLine(argv, {}).config;

describe('createEnricher', () => {
  const dir = mkdtempSync(join(tmpdir(), 'connlat-kubeconfig-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a plain host: off, saying why', async () => {
    const e = await createEnricher(configOf(), {}, logger);
    assert.ok(e instanceof DisabledEnricher);
    assert.equal(e.description, 'Kubernetes enrichment off: not running in a cluster (KUBERNETES_SERVICE_HOST unset) and no --kubeconfig given');
  });

  it('--kubernetes off wins even in a cluster', async () => {
    const e = await createEnricher(configOf('--kubernetes', 'off'), { KUBERNETES_SERVICE_HOST: '10.96.0.1' }, logger);
    assert.equal(e.description, 'Kubernetes enrichment off: --kubernetes off');
  });

  it('--kubernetes on without a cluster is an error, not a silent off', async () => {
    await assert.rejects(createEnricher(configOf('--kubernetes', 'on'), {}, logger), /--kubernetes on, but not running in a cluster.*--kubeconfig/);
  });

  it('a kubeconfig that cannot be read is a one-line error naming it', async () => {
    await assert.rejects(createEnricher(configOf('--kubeconfig', join(dir, 'missing')), {}, logger), /cannot load --kubeconfig .*missing/);
  });

  it('--kubeconfig turns it on, with the node from NODE_NAME or --node-name', async () => {
    const path = join(dir, 'kubeconfig');
    writeFileSync(path, [
      'apiVersion: v1', 'kind: Config', 'current-context: test',
      'clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]',
      'users: [{name: u, user: {token: abc}}]',
      'contexts: [{name: test, context: {cluster: c, user: u}}]',
    ].join('\n'));
    const fromEnv = await createEnricher(configOf('--kubeconfig', path), { NODE_NAME: 'node-7' }, logger);
    assert.ok(fromEnv instanceof KubeEnricher);
    assert.match(fromEnv.description, /^Kubernetes enrichment on: https:\/\/127\.0\.0\.1:6443, node node-7; watching pods, pods on node-7, services, nodes, endpointslices, replicasets, jobs$/);
    const fromFlag = await createEnricher(configOf('--kubeconfig', path, '--node-name', 'node-8'), { NODE_NAME: 'node-7' }, logger);
    assert.match(fromFlag.description, /node node-8/);
    const noNode = await createEnricher(configOf('--kubeconfig', path), {}, logger);
    assert.match(noNode.description, /NODE_NAME unset/);
    assert.deepEqual(noNode.counters, {
      enriched: 0, srcResolved: 0, srcUnresolved: 0, dstExternal: 0, pidLookups: 0, processGone: 0, procUnreadable: 0, watchErrors: 0, watchRestarts: 0,
    });
  });
});
