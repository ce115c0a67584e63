// Pure: the text of /proc/<pid>/cgroup -> the Kubernetes pod UID and container id the process runs in. Kubelet names
// one cgroup per pod and the runtime one per container below it, in a shape that depends on the cgroup driver
// (systemd slices or cgroupfs directories), the runtime (containerd, CRI-O, Docker) and the pod's QoS class:
//
//   systemd   /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope
//             /kubepods.slice/kubepods-pod<uid>.slice/crio-<id>.scope                          (Guaranteed)
//             /system.slice/containerd.service/kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>   (containerd, v1)
//   cgroupfs  /kubepods/besteffort/pod<uid>/<id>        /kubepods/pod<uid>/crio-<id>
//
// Seen from inside a cgroup namespace the path is relative and starts with "/.." segments. Static pods use their
// config hash (32 hex digits) as UID. Everything here is read from a file a container can influence (it may create
// nested cgroups under its own, named to look like another pod's), so the FIRST pod cgroup whose parent is the right
// kubelet QoS cgroup wins, only the segment right below it can name the container, and every id must have its exact
// shape.

export type CgroupDriver = 'systemd' | 'cgroupfs';
export type ContainerRuntime = 'containerd' | 'cri-o' | 'docker';
export type QosClass = 'guaranteed' | 'burstable' | 'besteffort';

export interface CgroupPod {
  /** metadata.uid of the pod, or for a static pod its config hash (the mirror pod's kubernetes.io/config.mirror). */
  podUid: string;
  /** 64 hex digits; undefined for a process in the pod cgroup itself (e.g. CRI-O's conmon) or a malformed one. */
  containerId: string | undefined;
  runtime: ContainerRuntime | undefined;
  driver: CgroupDriver;
  /** undefined when the QoS level is hidden above a cgroup namespace root */
  qos: QosClass | undefined;
}

/** Longest file and path looked at: a real /proc/<pid>/cgroup is a few KiB even on cgroup v1 with 13 controllers. */
export const MAX_CGROUP_FILE_CHARS = 64 * 1024;
const MAX_SEGMENT_CHARS = 255; // NAME_MAX: no real cgroup name is longer
const MAX_SEGMENTS = 256;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UUID_UNDERSCORE = /^[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12}$/;
const CONFIG_HASH = /^[0-9a-f]{32}$/;
const CONTAINER_ID = /^[0-9a-f]{64}$/;
const SLICE_PREFIX = /^(?:[a-z0-9]+-)*$/; // e.g. "kubelet-" when kubelet runs with --cgroup-root=/kubelet

function podUidFrom(text: string, underscores: boolean): string | undefined {
  if (CONFIG_HASH.test(text)) return text;
  if (underscores) return UUID_UNDERSCORE.test(text) ? text.replaceAll('_', '-') : undefined;
  return UUID.test(text) ? text : undefined;
}

interface PodSegment {
  podUid: string;
  qos: QosClass | undefined;
  driver: CgroupDriver;
  /** the cgroups above this one, outermost first, as kubelet or the runtime makes them */
  ancestorsOk: (ancestors: string[], fromRoot: boolean) => boolean;
  /** container named inside the same segment (containerd's "<slice>:cri-containerd:<id>" form) */
  inline?: { runtime: ContainerRuntime; id: string | undefined };
}

const QOS_SUFFIXES: Array<[string, QosClass]> = [
  ['kubepods-burstable', 'burstable'],
  ['kubepods-besteffort', 'besteffort'],
  ['kubepods', 'guaranteed'],
];

/** `seen` (what is visible) must be the tail of `expected`, and all of it when the path starts at the real root. */
function isTail(seen: string[], expected: string[], fromRoot: boolean): boolean {
  if (seen.length > expected.length || (fromRoot && seen.length !== expected.length)) return false;
  const offset = expected.length - seen.length;
  return seen.every((s, i) => s === expected[offset + i]);
}

/**
 * "kubepods-burstable-pod<uid>.slice". systemd nests slices by name ("a-b-c.slice" lives in /a.slice/a-b.slice), so
 * every ancestor is known: kubepods.slice, kubepods-burstable.slice. A look-alike under anything else is rejected.
 */
function systemdPodSlice(seg: string): PodSegment | undefined {
  if (!seg.endsWith('.slice')) return undefined;
  const body = seg.slice(0, -'.slice'.length);
  const at = body.lastIndexOf('-pod');
  if (at < 0) return undefined;
  const podUid = podUidFrom(body.slice(at + 4), true);
  if (podUid === undefined) return undefined;
  const parentBody = body.slice(0, at);
  for (const [suffix, qos] of QOS_SUFFIXES) {
    if (!parentBody.endsWith(suffix)) continue;
    if (!SLICE_PREFIX.test(parentBody.slice(0, -suffix.length))) return undefined;
    const words = parentBody.split('-');
    const expected = words.map((_, i) => `${words.slice(0, i + 1).join('-')}.slice`);
    return { podUid, qos, driver: 'systemd', ancestorsOk: (seen, fromRoot) => isTail(seen, expected, fromRoot) };
  }
  return undefined;
}

const INLINE_RUNTIMES: Record<string, ContainerRuntime> = { 'cri-containerd': 'containerd', crio: 'cri-o', docker: 'docker' };
const INLINE_PARENTS: Record<ContainerRuntime, string> = { containerd: 'containerd.service', 'cri-o': 'crio.service', docker: 'docker.service' };

/** containerd's systemd form on cgroup v1: "<pod slice>:cri-containerd:<id>" in /system.slice/containerd.service. */
function inlinePodSlice(seg: string): PodSegment | undefined {
  const parts = seg.split(':');
  if (parts.length !== 3) return undefined;
  const pod = systemdPodSlice(parts[0]!);
  const runtime = INLINE_RUNTIMES[parts[1]!];
  if (pod === undefined || runtime === undefined) return undefined;
  const expected = ['system.slice', INLINE_PARENTS[runtime]];
  return {
    ...pod,
    ancestorsOk: (seen, fromRoot) => isTail(seen, expected, fromRoot),
    inline: { runtime, id: CONTAINER_ID.test(parts[2]!) ? parts[2]! : undefined },
  };
}

const CGROUP_ROOT_NAME = /^[a-z][a-z0-9_-]{0,62}$/;

/**
 * "pod<uid>" in "kubepods" or "kubepods/burstable|besteffort". "kubepods" sits at the top, or under one plain
 * --cgroup-root directory: never under a container's own cgroup (a nested look-alike made by a container).
 */
function cgroupfsPodDir(seg: string): PodSegment | undefined {
  if (!seg.startsWith('pod')) return undefined;
  const podUid = podUidFrom(seg.slice(3), false);
  if (podUid === undefined) return undefined;
  const kubepodsOk = (above: string[], fromRoot: boolean) =>
    above.length === 0 || (fromRoot && above.length === 1 && CGROUP_ROOT_NAME.test(above[0]!) && above[0] !== 'docker');
  return {
    podUid,
    qos: undefined, // decided from the parent below
    driver: 'cgroupfs',
    ancestorsOk: (seen, fromRoot) => {
      const parent = seen.at(-1);
      if (parent === undefined) return !fromRoot; // the QoS level is above our cgroup namespace
      if (parent === 'kubepods') return kubepodsOk(seen.slice(0, -1), fromRoot);
      if (parent !== 'burstable' && parent !== 'besteffort') return false;
      if (seen.length === 1) return !fromRoot;
      return seen.at(-2) === 'kubepods' && kubepodsOk(seen.slice(0, -2), fromRoot);
    },
  };
}

function cgroupfsQos(parent: string | undefined): QosClass | undefined {
  if (parent === 'kubepods') return 'guaranteed';
  if (parent === 'burstable' || parent === 'besteffort') return parent;
  return undefined;
}

/** The segment right below the pod cgroup: "cri-containerd-<id>.scope", "crio-<id>", "docker-<id>.scope", "<id>". */
function containerSegment(seg: string | undefined): { runtime: ContainerRuntime | undefined; id: string | undefined } {
  if (seg === undefined || seg.length > MAX_SEGMENT_CHARS) return { runtime: undefined, id: undefined };
  let s = seg.endsWith('.scope') ? seg.slice(0, -'.scope'.length) : seg;
  let runtime: ContainerRuntime | undefined;
  if (s.startsWith('crio-conmon-')) return { runtime: 'cri-o', id: undefined }; // the monitor, not a container
  if (s.startsWith('cri-containerd-')) [runtime, s] = ['containerd', s.slice('cri-containerd-'.length)];
  else if (s.startsWith('crio-')) [runtime, s] = ['cri-o', s.slice('crio-'.length)];
  else if (s.startsWith('docker-')) [runtime, s] = ['docker', s.slice('docker-'.length)];
  return CONTAINER_ID.test(s) ? { runtime, id: s } : { runtime, id: undefined };
}

/** One cgroup path (the part after "hierarchy:controllers:") -> pod and container, or undefined when not in a pod. */
export function parseCgroupPath(path: string): CgroupPod | undefined {
  if (path.length === 0 || path.length > MAX_CGROUP_FILE_CHARS || path[0] !== '/') return undefined;
  const segments = path.split('/', MAX_SEGMENTS + 2).slice(1);
  if (segments.length > MAX_SEGMENTS) return undefined;
  // Inside a cgroup namespace the kernel prints paths relative to its root: "/../../kubepods-...". Below that run
  // of "..", what is visible starts part-way down the hierarchy, so ancestors can only be checked as a tail.
  let first = 0;
  while (segments[first] === '..') first++;
  const fromRoot = first === 0;
  for (let i = first; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg === '' || seg === '.' || seg === '..' || seg.length > MAX_SEGMENT_CHARS) return undefined; // "/" or not a kernel path
    const pod = systemdPodSlice(seg) ?? inlinePodSlice(seg) ?? cgroupfsPodDir(seg);
    if (pod === undefined) continue;
    const ancestors = segments.slice(first, i);
    if (!pod.ancestorsOk(ancestors, fromRoot)) continue;
    const container = pod.inline ?? containerSegment(segments[i + 1]);
    const qos = pod.driver === 'cgroupfs' ? cgroupfsQos(ancestors.at(-1)) : pod.qos;
    return { podUid: pod.podUid, containerId: container.id, runtime: container.runtime, driver: pod.driver, qos };
  }
  return undefined;
}

/**
 * The whole /proc/<pid>/cgroup text (v2: one "0::<path>" line; v1: one line per hierarchy). Lines that name a pod
 * must agree on it (and on the container where both name one): a disagreement means the file cannot be trusted.
 */
export function parseCgroupFile(text: string): CgroupPod | undefined {
  if (text.length > MAX_CGROUP_FILE_CHARS) return undefined;
  let found: CgroupPod | undefined;
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = first < 0 ? -1 : line.indexOf(':', first + 1);
    if (second < 0) continue;
    const pod = parseCgroupPath(line.slice(second + 1));
    if (pod === undefined) continue;
    if (found === undefined) {
      found = pod;
      continue;
    }
    if (found.podUid !== pod.podUid) return undefined;
    if (found.containerId !== undefined && pod.containerId !== undefined && found.containerId !== pod.containerId) return undefined;
    if (found.containerId === undefined && pod.containerId !== undefined) found = pod;
  }
  return found;
}
