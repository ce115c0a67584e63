import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCgroupFile, parseCgroupPath, type CgroupPod } from '../../src/enrich/cgroup.ts';

const UID = '8e4c7a1f-3b2d-4c5e-9f60-1a2b3c4d5e6f';
const UID_ = UID.replaceAll('-', '_');
const HASH = '6a8f0c2e4b1d3f5a7c9e0b2d4f6a8c0e'; // a static pod's config hash
const CID = 'a3f1c9d2e8b7465f0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b';
const CID2 = 'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0001';
const FAKE_UID = '00000000-0000-4000-8000-000000000bad';
const FAKE_UID_ = FAKE_UID.replaceAll('-', '_');

type Want = Partial<CgroupPod> | undefined;

const cases: Array<[string, string, Want]> = [
  // containerd, systemd driver, cgroup v2, each QoS class
  ['containerd systemd besteffort', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${CID}.scope`,
    { podUid: UID, containerId: CID, runtime: 'containerd', driver: 'systemd', qos: 'besteffort' }],
  ['containerd systemd burstable', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${CID}.scope`,
    { podUid: UID, containerId: CID, runtime: 'containerd', qos: 'burstable' }],
  ['containerd systemd guaranteed', `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${CID}.scope`,
    { podUid: UID, containerId: CID, runtime: 'containerd', qos: 'guaranteed' }],
  // CRI-O
  ['cri-o systemd', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${CID}.scope`,
    { podUid: UID, containerId: CID, runtime: 'cri-o', driver: 'systemd' }],
  ['cri-o systemd, crun sub-cgroup', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${CID}.scope/container`,
    { podUid: UID, containerId: CID, runtime: 'cri-o' }],
  ['cri-o conmon is the pod, no container', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-conmon-${CID}.scope`,
    { podUid: UID, containerId: undefined, runtime: 'cri-o' }],
  ['cri-o cgroupfs', `/kubepods/burstable/pod${UID}/crio-${CID}`, { podUid: UID, containerId: CID, runtime: 'cri-o', driver: 'cgroupfs', qos: 'burstable' }],
  // Docker (cri-dockerd)
  ['docker systemd', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/docker-${CID}.scope`,
    { podUid: UID, containerId: CID, runtime: 'docker' }],
  ['docker/containerd cgroupfs besteffort', `/kubepods/besteffort/pod${UID}/${CID}`,
    { podUid: UID, containerId: CID, runtime: undefined, driver: 'cgroupfs', qos: 'besteffort' }],
  ['cgroupfs guaranteed', `/kubepods/pod${UID}/${CID}`, { podUid: UID, containerId: CID, driver: 'cgroupfs', qos: 'guaranteed' }],
  ['cgroupfs under --cgroup-root', `/kubelet/kubepods/burstable/pod${UID}/${CID}`, { podUid: UID, containerId: CID, qos: 'burstable' }],
  ['systemd under --cgroup-root=/kubelet', `/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${UID_}.slice/cri-containerd-${CID}.scope`,
    { podUid: UID, containerId: CID, qos: 'besteffort' }],
  ['containerd v1 inline form', `/system.slice/containerd.service/kubepods-burstable-pod${UID_}.slice:cri-containerd:${CID}`,
    { podUid: UID, containerId: CID, runtime: 'containerd', qos: 'burstable' }],
  // static pods: the config hash is the UID
  ['static pod, systemd', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${HASH}.slice/cri-containerd-${CID}.scope`,
    { podUid: HASH, containerId: CID }],
  ['static pod, cgroupfs', `/kubepods/burstable/pod${HASH}/${CID}`, { podUid: HASH, containerId: CID }],
  // seen from inside a cgroup namespace
  ['cgroupns, systemd', `/../../kubepods-besteffort-pod${UID_}.slice/cri-containerd-${CID}.scope`, { podUid: UID, containerId: CID, qos: 'besteffort' }],
  ['cgroupns, systemd with qos slice', `/../kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${CID}.scope`, { podUid: UID, containerId: CID }],
  ['cgroupns, cgroupfs', `/../../pod${UID}/${CID}`, { podUid: UID, containerId: CID, qos: undefined }],
  ['process in the pod cgroup itself', `/kubepods/besteffort/pod${UID}`, { podUid: UID, containerId: undefined }],
  // not pods
  ['root', '/', undefined],
  ['host service', '/system.slice/sshd.service', undefined],
  ['user session', '/user.slice/user-0.slice/session-3.scope', undefined],
  ['kubelet itself', '/system.slice/kubelet.service', undefined],
  ['plain docker container', `/system.slice/docker-${CID}.scope`, undefined],
  ['kubepods slice without pod', '/kubepods.slice/kubepods-besteffort.slice', undefined],
  // hostile
  ['fake pod nested in a real container: the real one wins',
    `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${CID}.scope/kubepods-besteffort-pod${FAKE_UID_}.slice/cri-containerd-${CID2}.scope`,
    { podUid: UID, containerId: CID }],
  ['fake cgroupfs pod nested in a real one', `/kubepods/besteffort/pod${UID}/${CID}/kubepods/besteffort/pod${FAKE_UID}/${CID2}`, { podUid: UID, containerId: CID }],
  ['look-alike pod slice under a host service', `/system.slice/evil.service/kubepods-besteffort-pod${FAKE_UID_}.slice/cri-containerd-${CID2}.scope`, undefined],
  ['look-alike systemd tree under a host service', `/system.slice/evil.service/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${FAKE_UID_}.slice/cri-containerd-${CID2}.scope`, undefined],
  ['look-alike cgroupfs tree in a plain docker container', `/system.slice/docker-${CID}.scope/kubepods/besteffort/pod${FAKE_UID}/${CID2}`, undefined],
  ['look-alike cgroupfs tree under /docker/<id>', `/docker/${CID}/kubepods/pod${FAKE_UID}/${CID2}`, undefined],
  ['pod slice with the wrong parent QoS', `/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${CID}.scope`, undefined],
  ['inline form outside containerd.service', `/system.slice/evil.service/kubepods-burstable-pod${UID_}.slice:cri-containerd:${CID}`, undefined],
  ['dot-dot inside the path', `/kubepods.slice/../kubepods-besteffort-pod${UID_}.slice/cri-containerd-${CID}.scope`, undefined],
  ['non-hex container id', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${'z'.repeat(64)}.scope`,
    { podUid: UID, containerId: undefined }],
  ['short container id', `/kubepods/besteffort/pod${UID}/${CID.slice(0, 12)}`, { podUid: UID, containerId: undefined }],
  ['uppercase container id', `/kubepods/besteffort/pod${UID}/${CID.toUpperCase()}`, { podUid: UID, containerId: undefined }],
  ['container id with a suffix', `/kubepods/besteffort/pod${UID}/${CID}x`, { podUid: UID, containerId: undefined }],
  ['non-hex pod uid', `/kubepods/besteffort/pod${UID.replace('8e4c', 'zz4c')}/${CID}`, undefined],
  ['uid with dashes in a systemd slice', `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID}.slice/cri-containerd-${CID}.scope`, undefined],
  ['uid too long', `/kubepods/besteffort/pod${UID}0/${CID}`, undefined],
  ['very long segment', `/kubepods/besteffort/pod${UID}/${'a'.repeat(100_000)}`, undefined],
  ['very deep path', `/kubepods/besteffort/pod${UID}/${CID}` + '/x'.repeat(1000), undefined],
  ['very long slice prefix', `/${'a-'.repeat(5000)}kubepods-besteffort-pod${UID_}.slice/cri-containerd-${CID}.scope`, undefined],
  ['relative path', `kubepods/besteffort/pod${UID}/${CID}`, undefined],
  ['empty', '', undefined],
];

describe('parseCgroupPath', () => {
  for (const [name, path, want] of cases) {
    it(name, () => {
      const got = parseCgroupPath(path);
      if (want === undefined) {
        assert.equal(got, undefined);
        return;
      }
      assert.ok(got, `expected a pod from ${path.slice(0, 200)}`);
      for (const [k, v] of Object.entries(want)) assert.equal(got[k as keyof CgroupPod], v, `${k} of ${path.slice(0, 200)}`);
    });
  }

  it('stays fast on hostile input (no super-linear regex)', () => {
    const hostile = `/${'kubepods-'.repeat(20)}pod${'_'.repeat(200)}.slice/` + 'a-'.repeat(120) + '.slice';
    const started = performance.now();
    for (let i = 0; i < 1000; i++) parseCgroupPath(hostile);
    assert.ok(performance.now() - started < 2000);
  });
});

describe('parseCgroupFile', () => {
  it('cgroup v2: one unified line', () => {
    const got = parseCgroupFile(`0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${CID}.scope\n`);
    assert.equal(got?.podUid, UID);
    assert.equal(got?.containerId, CID);
  });

  it('cgroup v1: many controllers, all agreeing', () => {
    const path = `/kubepods/burstable/pod${UID}/${CID}`;
    const text = [
      `12:pids:${path}`,
      `11:memory:${path}`,
      `10:cpu,cpuacct:${path}`,
      `9:net_cls,net_prio:${path}`,
      `1:name=systemd:${path}`,
      '0::/',
    ].join('\n');
    assert.deepEqual(parseCgroupFile(text), { podUid: UID, containerId: CID, runtime: undefined, driver: 'cgroupfs', qos: 'burstable' });
  });

  it('v1 with the containerd inline form in some hierarchies', () => {
    const text = [
      `5:memory:/kubepods-burstable-pod${UID_}.slice:cri-containerd:${CID}`,
      `1:name=systemd:/system.slice/containerd.service/kubepods-burstable-pod${UID_}.slice:cri-containerd:${CID}`,
    ].join('\n');
    assert.equal(parseCgroupFile(text)?.containerId, CID);
  });

  it('hierarchies that disagree on the pod are not trusted', () => {
    const text = [`11:memory:/kubepods/burstable/pod${UID}/${CID}`, `10:pids:/kubepods/burstable/pod${FAKE_UID}/${CID2}`].join('\n');
    assert.equal(parseCgroupFile(text), undefined);
  });

  it('hierarchies that disagree on the container are not trusted', () => {
    const text = [`11:memory:/kubepods/burstable/pod${UID}/${CID}`, `10:pids:/kubepods/burstable/pod${UID}/${CID2}`].join('\n');
    assert.equal(parseCgroupFile(text), undefined);
  });

  it('a host process', () => {
    assert.equal(parseCgroupFile('0::/system.slice/sshd.service\n'), undefined);
    assert.equal(parseCgroupFile(''), undefined);
    assert.equal(parseCgroupFile('garbage without colons'), undefined);
  });

  it('an oversized file is rejected', () => {
    assert.equal(parseCgroupFile(`0::/kubepods/pod${UID}/${CID}\n` + 'x'.repeat(70_000)), undefined);
  });
});
