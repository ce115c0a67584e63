// What a dev cluster could leave on the machine, read from the machine itself: sysctls the kubelet and kube-proxy
// set, processes in the node's cgroups, mounts, cgroups, network interfaces, netfilter chains, named network
// namespaces and the paths the kubelet and containerd use by default. Compare a snapshot from before `up`
// with one taken after `down` (and during, for what must never reach the machine). Other work on the machine
// (podman builds, other tests' veths) changes mounts, links and chains too, so only the kinds a node makes count:
// mounts of its paths and /proc/sys; links named like its bridge, veths and link; KUBE-* chains.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Machine-wide sysctls the kubelet (setupKernelTunables) or kube-proxy would set, and the forwarding/bridge ones. */
export const watchedSysctls = [
  'kernel/panic', 'kernel/panic_on_oops', 'vm/overcommit_memory', 'vm/panic_on_oom',
  'kernel/keys/root_maxkeys', 'kernel/keys/root_maxbytes',
  'net/ipv4/ip_forward', 'net/ipv4/conf/all/route_localnet', 'net/ipv4/conf/all/forwarding',
  'net/bridge/bridge-nf-call-iptables', 'net/bridge/bridge-nf-call-ip6tables', 'net/bridge/bridge-nf-call-arptables',
  'net/netfilter/nf_conntrack_max', 'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/netfilter/nf_conntrack_tcp_timeout_close_wait',
] as const;

/** Paths the kubelet, containerd and the CNI plugins write to unless kept from it. */
export const nodePaths = [
  '/var/lib/kubelet', '/var/log/pods', '/var/log/containers', '/var/lib/cni', '/run/containerd',
  '/var/lib/containerd', '/opt/containerd', '/run/netns', '/var/run/netns', '/etc/cni/net.d/10-connlat-dev.conflist',
  '/etc/kubernetes', '/run/connlat-dev-cluster',
] as const;

export interface Footprint {
  sysctls: Record<string, string>;
  /** "pid exe" of every process in a kubepods or connlat-dev-cluster cgroup. */
  nodeProcesses: string[];
  /** "mountpoint fstype" of the machine's mounts of the node's paths and /proc/sys. */
  mounts: string[];
  /** cgroup directories named kubepods* or connlat-dev-cluster, in any hierarchy. */
  cgroups: string[];
  /** Network interfaces named like the node's bridge (cni*), veths or link (connlat*). */
  interfaces: string[];
  /** "family table chain" of every KUBE-* netfilter chain (nft, which also shows iptables-nft's chains). */
  chains: string[];
  /** Lines of the machine's ruleset that name the node's pod or Service network. */
  rulesNamingNodeNetworks: string[];
  paths: string[];
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return fallback;
  }
}

function nodeProcesses(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    const cgroup = readOr(`/proc/${pid}/cgroup`, '');
    if (!/kubepods|connlat-dev-cluster/.test(cgroup)) continue;
    let exe = '?';
    try {
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      // a zombie or a process gone meanwhile
    }
    found.push(`${pid} ${exe}`);
  }
  return found;
}

function cgroups(): string[] {
  const found: string[] = [];
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const dir = join('/sys/fs/cgroup', hierarchy);
    try {
      for (const entry of readdirSync(dir)) {
        if (/^(kubepods|connlat-dev-cluster)/.test(entry)) found.push(join(dir, entry));
      }
    } catch {
      // not a directory
    }
    if (/^(kubepods|connlat-dev-cluster)/.test(hierarchy)) found.push(dir); // a pure cgroup2 machine
  }
  return found;
}

export async function footprint(): Promise<Footprint> {
  const sysctls: Record<string, string> = {};
  for (const name of watchedSysctls) sysctls[name] = readOr(join('/proc/sys', name), '(absent)');
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n').map((line) => {
    const fields = line.split(' ');
    const fstype = fields[fields.indexOf('-') + 1];
    return `${fields[4]} ${fstype}`;
  }).filter((mount) => /^\/(var\/lib\/kubelet|var\/lib\/containerd|run\/containerd|run\/connlat-dev-cluster|proc\/sys|var\/log\/pods|var\/log\/containers|var\/lib\/cni)\b/.test(mount));
  const interfaces = readdirSync('/sys/class/net').filter((name) => /^(cni|veth|connlat)/.test(name));
  const { stdout: ruleset } = await run('nft', ['list', 'ruleset']);
  const chains: string[] = [];
  let table = '';
  for (const line of ruleset.split('\n')) {
    const tableMatch = /^table (\S+) (\S+)/.exec(line);
    if (tableMatch) table = `${tableMatch[1]} ${tableMatch[2]}`;
    const chainMatch = /^\s*chain (\S+)/.exec(line);
    if (chainMatch?.[1]?.startsWith('KUBE-')) chains.push(`${table} ${chainMatch[1]}`);
  }
  const rulesNamingNodeNetworks = ruleset.split('\n').filter((line) => /10\.244\.0\.|10\.96\.|cni0|connlat-dev/.test(line));
  return {
    sysctls,
    nodeProcesses: nodeProcesses(),
    mounts,
    cgroups: cgroups(),
    interfaces,
    chains,
    rulesNamingNodeNetworks,
    paths: nodePaths.filter((path) => existsSync(path)),
  };
}

/** What `after` has that `before` had not, per kind (sysctls: "name before -> after"); empty kinds are left out. */
export function footprintGrowth(before: Footprint, after: Footprint): Record<string, string[]> {
  const grown: Record<string, string[]> = {};
  const added = (kind: keyof Omit<Footprint, 'sysctls'>): void => {
    const had = new Set(before[kind]);
    const extra = after[kind].filter((item) => !had.has(item));
    if (extra.length > 0) grown[kind] = extra;
  };
  for (const kind of ['nodeProcesses', 'mounts', 'cgroups', 'interfaces', 'chains', 'rulesNamingNodeNetworks', 'paths'] as const) added(kind);
  const changed = Object.keys(before.sysctls)
    .filter((name) => before.sysctls[name] !== after.sysctls[name])
    .map((name) => `${name} ${before.sysctls[name]} -> ${after.sysctls[name]}`);
  if (changed.length > 0) grown.sysctls = changed;
  return grown;
}
