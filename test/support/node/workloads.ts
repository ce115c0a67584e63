// The workloads the node tests run (image localhost/connlat-test-workload:1, test/support/workload/): servers that
// accept and close, and clients that make an exact number of connects, so what connlat counts can be compared with
// what was made. Plain objects for the API; every pod runs on the one dev node with the image already imported.
import type { KubernetesObject } from '@kubernetes/client-node';

export const WORKLOAD_IMAGE = 'localhost/connlat-test-workload:1';

type Obj = KubernetesObject & Record<string, unknown>;

export function namespace(name: string): Obj {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'connlat-e2e': 'true' } } };
}

interface PodOptions {
  hostNetwork?: boolean;
  restartPolicy?: 'Always' | 'Never';
}

function podTemplate(app: string, args: string[], opts: PodOptions = {}): Record<string, unknown> {
  return {
    metadata: { labels: { app } },
    spec: {
      ...(opts.hostNetwork ? { hostNetwork: true } : {}),
      ...(opts.restartPolicy ? { restartPolicy: opts.restartPolicy } : {}),
      terminationGracePeriodSeconds: 2,
      enableServiceLinks: false,
      automountServiceAccountToken: false,
      containers: [
        {
          name: app,
          image: WORKLOAD_IMAGE,
          imagePullPolicy: 'Never', // imported into containerd; there is no registry
          args,
          resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
        },
      ],
    },
  };
}

function deployment(ns: string, name: string, args: string[], opts: PodOptions = {}): Obj {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: { replicas: 1, selector: { matchLabels: { app: name } }, template: podTemplate(name, args, opts) },
  };
}

/** A Deployment whose pod accepts and closes every connection on `port`. */
export function server(ns: string, name: string, port: number): Obj {
  const d = deployment(ns, name, ['serve', String(port)]);
  const container = ((d.spec as { template: { spec: { containers: Array<Record<string, unknown>> } } }).template.spec.containers)[0]!;
  container.ports = [{ name: 'tcp', containerPort: port }];
  container.readinessProbe = { tcpSocket: { port }, periodSeconds: 2 };
  return d;
}

/** A ClusterIP Service; without `selector` its endpoints are whatever EndpointSlice the test adds. */
export function service(ns: string, name: string, port: number, targetPort: number, selector?: Record<string, string>): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: { type: 'ClusterIP', ...(selector ? { selector } : {}), ports: [{ name: 'tcp', port, targetPort, protocol: 'TCP' }] },
  };
}

/** The endpoints of a selector-less Service: one address outside the cluster (the delay line's server). */
export function endpointSlice(ns: string, serviceName: string, ip: string, port: number): Obj {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${serviceName}-1`, namespace: ns, labels: { 'kubernetes.io/service-name': serviceName } },
    addressType: 'IPv4',
    ports: [{ name: 'tcp', port, protocol: 'TCP' }],
    endpoints: [{ addresses: [ip], conditions: { ready: true } }],
  };
}

export interface ClientOptions {
  intervalMs?: number;
  hostNetwork?: boolean;
}

function connectArgs(host: string, port: number, count: number, opts: ClientOptions, exit: boolean): string[] {
  return ['connect', host, String(port), String(count), '--interval-ms', String(opts.intervalMs ?? 100), ...(exit ? ['--exit'] : [])];
}

/** A Deployment whose pod makes `count` connects to host:port once, then idles (it never connects again). */
export function client(ns: string, name: string, host: string, port: number, count: number, opts: ClientOptions = {}): Obj {
  return deployment(ns, name, connectArgs(host, port, count, opts, false), { hostNetwork: opts.hostNetwork ?? false });
}

/** A Job whose one pod makes `count` connects to host:port and exits 0. */
export function clientJob(ns: string, name: string, host: string, port: number, count: number, opts: ClientOptions = {}): Obj {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: ns },
    spec: { backoffLimit: 0, template: podTemplate(name, connectArgs(host, port, count, opts, true), { restartPolicy: 'Never' }) },
  };
}
