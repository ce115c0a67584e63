// The delay line between the two TUN devices of a netns link (see netns.ts): a separate process so it can run
// with real-time priority (chrt) and its timers fire on time even when builds load every core.
// Usage: node delay-relay.ts <delayMs> <hostSocatPort> <nsSocatPort>
// Prints {"toHost":PORT,"toNs":PORT} once both UDP sockets are bound: the ports each socat must send to.
// Datagrams from the root-end socat are forwarded to the far-end socat after delayMs; replies go back at once.
import { createSocket, type Socket } from 'node:dgram';

const [delayMs, hostSocatPort, nsSocatPort] = process.argv.slice(2).map(Number);
if (!(delayMs! >= 0) || !hostSocatPort || !nsSocatPort) {
  process.stderr.write('usage: delay-relay.ts <delayMs> <hostSocatPort> <nsSocatPort>\n');
  process.exit(2);
}

const bind = (): Promise<Socket> =>
  new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => resolve(s));
  });

const toHost = await bind();
const toNs = await bind();
toHost.on('message', (msg) => {
  if (delayMs === 0) toNs.send(msg, nsSocatPort, '127.0.0.1');
  else setTimeout(() => toNs.send(msg, nsSocatPort, '127.0.0.1'), delayMs);
});
toNs.on('message', (msg) => toHost.send(msg, hostSocatPort, '127.0.0.1'));
process.on('SIGTERM', () => process.exit(0));
process.stdout.write(`${JSON.stringify({ toHost: toHost.address().port, toNs: toNs.address().port })}\n`);
