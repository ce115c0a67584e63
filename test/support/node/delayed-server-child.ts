// Child process of delayed-server.ts, run inside the network namespace it should serve from (nsenter --net): makes a
// delayed link there (test/support/netns), a listener behind it, and a default route back through the link so
// replies reach any source (pods, not only the link's own address). Prints {"addr","port","method"} once serving;
// tears everything down on SIGTERM and exits 0.
// Usage: node delayed-server-child.ts <delayMs> <port>
import { createDelayedLink } from '../netns/netns.ts';

const [delayMs, port] = process.argv.slice(2).map(Number);
if (!(delayMs! > 0) || !(port! > 0)) {
  process.stderr.write('usage: delayed-server-child.ts <delayMs> <port>\n');
  process.exit(2);
}
const link = await createDelayedLink({ delayMs: delayMs! });
const stop = async (code: number) => {
  await link.teardown().catch((err: Error) => process.stderr.write(`teardown: ${err.message}\n`));
  process.exit(code);
};
process.on('SIGTERM', () => void stop(0));
try {
  await link.exec('ip', ['route', 'add', 'default', 'via', link.hostAddr]);
  await link.listen(port!);
  process.stdout.write(`${JSON.stringify({ addr: link.nsAddr, port, method: link.method, ns: link.ns, devices: link.devices })}\n`);
} catch (err) {
  process.stderr.write(`delayed server: ${(err as Error).message}\n`);
  await stop(1);
}
