// COMM is whatever name the connecting process gave itself (prctl PR_SET_NAME): attacker-controlled bytes. Sources
// decode tool stdout as latin1 (one char per byte), so here the bytes are re-read as UTF-8 for display, and every
// character that could move a cursor, start a terminal escape, break a log line or reorder text is replaced by '?'
// (src/scrub.ts).
import { scrub } from '../scrub.ts';

const SPACE = 0x20;

/** Display text for the COMM column s[start, end): printf padding trimmed, UTF-8 decoded, unsafe chars -> '?'. */
export function displayComm(s: string, start: number, end: number): string {
  while (end > start && s.charCodeAt(end - 1) === SPACE) end--;
  let plain = true;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) return s.slice(start, end); // fast path: printable ASCII
  let text = s.slice(start, end);
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) >= 0x80) {
      text = Buffer.from(text, 'latin1').toString('utf8');
      break;
    }
  }
  return scrub(text);
}
