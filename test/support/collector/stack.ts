// Why the full stack (our collector + Prometheus + a delayed link + the agent on real tcpstates) cannot run here, or
// false when it can. Shared by the gateway e2e test and the dashboard test, which run that same stack.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { netnsSkipReason } from '../netns/netns.ts';
import { findCollector, type CollectorBinary } from './collector.ts';
import { prometheusSkipReason } from './prometheus.ts';

export const TCPSTATES = '/usr/sbin/tcpstates';

function tracefsReady(): boolean {
  try {
    execFileSync('sh', ['-c', 'mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function stackSkipReason(): Promise<{ collector: CollectorBinary; skip: string | false }> {
  const collector = await findCollector();
  const skip =
    collector.skip ??
    (process.getuid?.() !== 0 ? 'needs root (eBPF tcpstates, network namespaces)' : undefined) ??
    prometheusSkipReason() ??
    netnsSkipReason() ??
    (!existsSync(TCPSTATES) ? `${TCPSTATES} not found (apt-get install libbpf-tools)` : undefined) ??
    (!tracefsReady() ? 'tracefs is not mounted and cannot be (mount -t tracefs nodev /sys/kernel/tracing)' : undefined) ??
    false;
  return { collector, skip };
}
