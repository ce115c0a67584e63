// A real link with a fixed delay between two network namespaces the test creates, for kernels without sch_netem
// (this one has none: `tc qdisc add ... netem` says "Specified qdisc kind is unknown"). delay_line.py copies IP
// packets between a TUN device in each namespace after `oneWayMs`, so a TCP connect across it takes 2 x oneWayMs
// plus scheduling noise. Everything is removed on close(), and the Python process exits by itself when our stdin
// pipe closes (the test process died), so nothing outlives the test.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export interface DelayedLink {
  /** namespace of the client side and its address */
  clientNs: string;
  clientAddr: string;
  /** namespace of the server side and its address */
  serverNs: string;
  serverAddr: string;
  oneWayMs: number;
  close(): Promise<void>;
}

const script = fileURLToPath(new URL('./delay_line.py', import.meta.url));

/** Why a delayed link cannot be made here (not root, no TUN, no ip/python3), or undefined when it can. */
export function delayedLinkUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and TUN devices)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    execFileSync('python3', ['-c', 'import fcntl, ctypes'], { stdio: 'ignore' });
    execFileSync('test', ['-c', '/dev/net/tun']);
  } catch {
    return 'needs iproute2, python3 and /dev/net/tun';
  }
  return undefined;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** `subnet` picks 10.203.<subnet>.1/.2 so parallel links never share addresses. */
export async function startDelayedLink(opts: { oneWayMs: number; subnet?: number }): Promise<DelayedLink> {
  const id = randomBytes(3).toString('hex');
  const clientNs = `connlat-c-${id}`;
  const serverNs = `connlat-s-${id}`;
  const net = opts.subnet ?? 203;
  const clientAddr = `10.203.${net}.1`;
  const serverAddr = `10.203.${net}.2`;
  let child: ChildProcess | undefined;
  const close = async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    for (const ns of [clientNs, serverNs]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
  };
  try {
    ip('netns', 'add', clientNs);
    ip('netns', 'add', serverNs);
    // chrt: the delay line's own scheduling latency is the link's jitter; a real-time class keeps it small.
    const hasChrt = (() => {
      try {
        execFileSync('chrt', ['-f', '10', 'true'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    })();
    const argv = [script, clientNs, serverNs, String(opts.oneWayMs)];
    child = hasChrt ? spawn('chrt', ['-f', '10', 'python3', ...argv], { stdio: ['pipe', 'pipe', 'pipe'] }) : spawn('python3', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`delay line did not start: ${stderr}`)), 10_000);
      child!.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child!.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`delay line exited ${code}: ${stderr.trim()}`));
      });
    });
    for (const [ns, local, peer] of [
      [clientNs, clientAddr, serverAddr],
      [serverNs, serverAddr, clientAddr],
    ] as const) {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'addr', 'add', local, 'peer', peer, 'dev', 'tun0');
      ip('-n', ns, 'link', 'set', 'tun0', 'up');
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { clientNs, clientAddr, serverNs, serverAddr, oneWayMs: opts.oneWayMs, close };
}
