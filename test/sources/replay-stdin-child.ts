// Child process for replay.test.ts: replays its real stdin with createSource('-') and prints what it got as JSON.
import { createSource } from '../../src/sources/index.ts';

const lines: string[] = [];
const src = createSource('-');
await src.run({
  line: (text) => void lines.push(text),
  lostEvents: () => {},
  restart: () => {},
  diagnostic: () => {},
  toolSelected: () => {},
});
process.stdout.write(JSON.stringify({ description: src.description, format: src.format(), lines }));
