// Shared by the source tests: a SourceHooks that records everything, and small waiting helpers.
import { fileURLToPath } from 'node:url';
import type { ToolName } from '../../src/event.ts';
import type { SourceHooks } from '../../src/sources/types.ts';

export const FAKE_TOOLS = fileURLToPath(new URL('../fixtures/fake-tools/', import.meta.url));

export interface Recorded extends SourceHooks {
  lines: { text: string; atMs: number }[];
  lost: number;
  restarts: { desc: string; atMs: number }[];
  diagnostics: string[];
  selected: { tool: ToolName; reason: string }[];
}

export function recorder(): Recorded {
  const r: Recorded = {
    lines: [],
    lost: 0,
    restarts: [],
    diagnostics: [],
    selected: [],
    line: (text, atMs) => void r.lines.push({ text, atMs }),
    lostEvents: (n) => void (r.lost += n),
    restart: (desc) => void r.restarts.push({ desc, atMs: Date.now() }),
    diagnostic: (m) => void r.diagnostics.push(m),
    toolSelected: (tool, reason) => void r.selected.push({ tool, reason }),
  };
  return r;
}

/** Polls until cond() is true; throws with `what` after timeoutMs. */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
