// Child process for tracefs.test.ts, run in a private mount namespace where tracefs was unmounted.
// Mode "ensure": ensureTracefs() twice. Mode "tcpstates": ToolSource on the real tcpstates until it is ready.
import { ensureTracefs, tracefsMountPoint } from '../../src/sources/tracefs.ts';
import { ToolSource } from '../../src/sources/tool.ts';

const mode = process.argv[2];
const before = (await tracefsMountPoint()) ?? null;
if (mode === 'ensure') {
  const first = await ensureTracefs();
  const second = await ensureTracefs();
  process.stdout.write(JSON.stringify({ before, first, second, after: (await tracefsMountPoint()) ?? null }));
} else {
  const diagnostics: string[] = [];
  const restarts: string[] = [];
  const src = new ToolSource({ tool: 'tcpstates', path: '/usr/sbin/tcpstates', backoff: { initialMs: 100, maxMs: 500, resetAfterMs: 60_000 } });
  const done = src.run({
    line: () => {},
    lostEvents: () => {},
    restart: (d) => void restarts.push(d),
    diagnostic: (m) => void diagnostics.push(m),
    toolSelected: () => {},
  });
  const deadline = Date.now() + 10_000;
  while (!src.ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const ready = src.ready();
  await src.stop();
  await done;
  process.stdout.write(JSON.stringify({ before, ready, diagnostics, restarts, after: (await tracefsMountPoint()) ?? null }));
}
