// A TCP server that answers through the project's delay line (test/support/netns), set up inside a given network
// namespace (the dev node's, where pod traffic is routed) by a child process, so pods connecting to it see a
// connect latency of the link's delay. Stop it to remove the link, its namespace and its processes.
import { ManagedProcess, waitFor } from '../collector/collector.ts';

const CHILD = new URL('./delayed-server-child.ts', import.meta.url).pathname;

export interface DelayedServer {
  /** The server's address (inside the link's own namespace) and port. */
  addr: string;
  port: number;
  method: string;
  /** Network namespace name and link devices, for leak checks. */
  ns: string;
  devices: string[];
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** `netnsPath`: a network namespace file (e.g. /proc/<pid>/ns/net) to build the link in; default this process's. */
export async function startDelayedServer(delayMs: number, port: number, netnsPath?: string): Promise<DelayedServer> {
  const argv = [process.execPath, CHILD, String(delayMs), String(port)];
  const [file, ...args] = (netnsPath ? ['nsenter', `--net=${netnsPath}`, ...argv] : argv) as [string, ...string[]];
  const proc = new ManagedProcess(`delayed server :${port}`, file, args, { env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
  const stop = async () => {
    const { code, signal } = await proc.stop('SIGTERM', 20_000);
    if (code !== 0) throw new Error(`delayed server exited ${code ?? signal}: ${proc.tail()}`);
  };
  try {
    const info = await waitFor(
      'the delayed server',
      async () => {
        if (!proc.running) throw new Error(`exited: ${proc.tail()}`);
        const line = proc.output.split('\n').find((l) => l.startsWith('{'));
        return line ? (JSON.parse(line) as { addr: string; port: number; method: string; ns: string; devices: string[] }) : undefined;
      },
      30_000,
      100,
    );
    return { ...info, process: proc, stop };
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
}
