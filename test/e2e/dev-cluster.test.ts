// The single-node dev cluster (scripts/dev-cluster.sh) for real: up, a pod behind a ClusterIP Service that kube-proxy
// DNATs to, its name resolved by the cluster DNS, a pod reaching a server on the machine, then down, and the machine
// exactly as it was before.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { footprint, footprintGrowth } from '../support/cluster-footprint.ts';
import { devClusterScript, devClusterSkipReason, startDevCluster, stopDevCluster } from '../support/cluster.ts';

const run = promisify(execFile);

function alreadyUp(): string | undefined {
  try {
    execFileSync(devClusterScript, ['status'], { stdio: 'ignore' });
  } catch (error) {
    if ((error as { status?: number }).status === 3) return undefined; // down: free to start one
  }
  return 'a dev cluster is already up on this machine (another test run owns it): scripts/dev-cluster.sh status';
}

const skip = devClusterSkipReason() ?? alreadyUp();

/** Runs the script expecting failure; returns its exit status and stderr. */
async function failing(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stderr: string }> {
  try {
    await run(devClusterScript, args, { env: { ...process.env, ...env } });
  } catch (error) {
    const { code, stderr } = error as { code: number; stderr: string };
    return { code, stderr };
  }
  assert.fail(`dev-cluster.sh ${args.join(' ')} succeeded`);
}

const podImage = (cluster: { kubectl(args: string[]): Promise<string> }) =>
  // The busybox image up imports (its tag is the Debian version, so read it rather than repeat it).
  cluster.kubectl(['get', 'node', '-o', 'jsonpath={.items[0].status.images[*].names[0]}'])
    .then((names) => names.split(' ').find((name) => name.startsWith('localhost/connlat/busybox:')));

/** Polls the pod until it has run to completion; returns Succeeded or Failed. */
async function podFinished(cluster: { kubectl(args: string[]): Promise<string> }, ns: string, pod: string, timeoutMs = 120_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const phase = await cluster.kubectl(['get', '-n', ns, 'pod', pod, '-o', 'jsonpath={.status.phase}']);
    if (phase === 'Succeeded' || phase === 'Failed') return phase;
    if (Date.now() > deadline) assert.fail(`pod ${ns}/${pod} still ${phase} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('dev cluster (scripts/dev-cluster.sh)', { skip, timeout: 900_000 }, () => {
  it('refuses a veth link whose address the machine already has, with one line, and starts nothing', async () => {
    const before = await footprint();
    const { code, stderr } = await failing(['up'], { CONNLAT_DEV_CLUSTER_LINK: '127.0.0.0/30' });
    assert.equal(code, 1);
    assert.match(stderr.trim(), /^dev-cluster: address 127\.0\.0\.1 \(of CONNLAT_DEV_CLUSTER_LINK=127\.0\.0\.0\/30\) is taken by lo on this machine; set CONNLAT_DEV_CLUSTER_LINK to a free \/30$/);
    assert.deepEqual(footprintGrowth(before, await footprint()), {});
  });

  it('runs a pod behind a ClusterIP Service, then down leaves the machine as it was', async (t) => {
    const before = await footprint();
    let up = false;
    t.after(async () => {
      if (up) await stopDevCluster();
    });
    const cluster = await startDevCluster();
    up = true;
    t.diagnostic(`up in ${cluster.upMs} ms: ${cluster.upLog.trim().split('\n').join(' | ')}`);
    assert.ok(cluster.kubeconfig.startsWith(cluster.stateDir) && cluster.nodeName === 'connlat-dev');

    // While it runs, the machine has the node's processes, cgroups, state dir and link, and nothing else of it:
    // no mount, no KUBE-* chain, no pod-network rule, and the sysctls the kubelet sets are the machine's own.
    const during = footprintGrowth(before, await footprint());
    assert.deepEqual(Object.keys(during).sort(), ['cgroups', 'interfaces', 'nodeProcesses', 'paths'], JSON.stringify(during, null, 1));
    assert.deepEqual(during.interfaces, ['connlat-dev0']);
    const shadowed = readFileSync(join(cluster.stateDir, 'sysctl', 'kernel.panic'), 'utf8').trim();
    assert.equal(shadowed, '10', 'the kubelet set kernel.panic, in the node\'s shadow copy only');

    const again = await failing(['up']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^dev-cluster: already up \(state in /);

    const image = await podImage(cluster);
    assert.ok(image, 'up imported the busybox image');
    const ns = 'dev-cluster-test';
    await cluster.kubectl(['create', 'namespace', ns]);
    const podCreated = performance.now();
    await cluster.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1', kind: 'List', items: [
          {
            apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', labels: { app: 'web' } },
            spec: {
              containers: [{
                name: 'web', image, imagePullPolicy: 'Never',
                command: ['/bin/busybox', 'httpd', '-f', '-p', '8080', '-h', '/www'],
                readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
              }],
            },
          },
          { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } },
        ],
      }),
    });
    await cluster.kubectl(['wait', '-n', ns, '--for=condition=Ready', 'pod/web', '--timeout=120s']);
    t.diagnostic(`pod Ready ${Math.round(performance.now() - podCreated)} ms after create, ${Math.round(cluster.upMs + performance.now() - podCreated)} ms after up began`);
    const clusterIp = await cluster.kubectl(['get', '-n', ns, 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}']);
    const nodeIp = await cluster.kubectl(['get', 'node', cluster.nodeName, '-o', 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}']);

    // A backend on the machine, where tests' backends listen: a pod reaches it (masqueraded to the node's address).
    const received: { from: string; data: string }[] = [];
    const server = createServer((socket) => {
      const from = socket.remoteAddress ?? '?';
      let data = '';
      socket.on('data', (chunk) => { data += String(chunk); socket.end(); });
      socket.on('close', () => received.push({ from, data: data.trim() }));
    });
    await new Promise<void>((resolve) => server.listen(0, cluster.hostIp, resolve));
    t.after(() => server.close());
    const hostPort = (server.address() as AddressInfo).port;

    // The client asks the Service's ClusterIP on port 80; only the server's port 8080 listens, so an answer proves
    // kube-proxy's DNAT (ClusterIP:80 -> pod:8080).
    await cluster.kubectl(['run', 'client', '-n', ns, `--image=${image}`, '--image-pull-policy=Never', '--restart=Never', '--command', '--',
      '/bin/sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${clusterIp} 80 && echo from-pod | nc -w 5 ${cluster.hostIp} ${hostPort} && { nslookup web; true; }`]);
    const phase = await podFinished(cluster, ns, 'client');
    const clientLog = await cluster.kubectl(['logs', '-n', ns, 'client']);
    // busybox nslookup exits 1 when any search-path name is NXDOMAIN, so the client's phase reflects the two nc.
    assert.equal(phase, 'Succeeded', `client log:\n${clientLog}`);
    assert.match(clientLog, /^HTTP\/1\.[01] 404 Not Found/m, `busybox httpd answered through the ClusterIP; client log:\n${clientLog}`);
    assert.deepEqual(received, [{ from: nodeIp, data: 'from-pod' }]);
    // Cluster DNS: the pod's search path and the kube-dns Service (CoreDNS on the node) resolve the Service's name.
    assert.match(clientLog, new RegExp(`Name:\\s+web\\.${ns}\\.svc\\.cluster\\.local\\s+Address:\\s+${clusterIp.replaceAll('.', '\\.')}`), clientLog);
    const holder = readFileSync(join(cluster.stateDir, 'holder.pid'), 'utf8').trim();
    const { stdout: nat } = await run('nsenter', ['--target', holder, '--net', 'iptables-save', '-t', 'nat']);
    assert.match(nat, new RegExp(`-d ${clusterIp.replaceAll('.', '\\.')}/32 .*-j KUBE-SVC-`), 'kube-proxy wrote the ClusterIP DNAT in the node');

    const downMs = await stopDevCluster();
    up = false;
    t.diagnostic(`down in ${downMs} ms`);
    assert.deepEqual(footprintGrowth(before, await footprint()), {}, 'down left nothing and every watched sysctl is as before');
    const { stderr } = await run(devClusterScript, ['down']);
    assert.match(stderr, /already down/);
  });
});

describe('dev cluster bad input', () => {
  it('up without root says so in one line and exits 1', async (t) => {
    // As root, drop to nobody (setpriv); the checkout must then be readable by nobody.
    const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'] : [];
    try {
      execFileSync(asNobody[0] ?? 'test', [...asNobody.slice(1), ...(asNobody.length > 0 ? ['test'] : []), '-r', devClusterScript]);
    } catch {
      t.skip(`nobody cannot read ${devClusterScript}`);
      return;
    }
    const argv = [...asNobody, devClusterScript, 'up'];
    const result = await run(argv[0] as string, argv.slice(1)).then(() => undefined, (error: { code: number; stdout: string; stderr: string }) => error);
    assert.ok(result, 'up succeeded without root');
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, 'dev-cluster: must run as root (it makes namespaces, cgroups and mounts, and runs the kubelet): sudo ' + devClusterScript + ' up\n');
  });
});
