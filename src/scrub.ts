// The one scrubber of untrusted text: process names (COMM, set by any process with prctl), the tools' stderr, lines
// a parser rejects, error messages that quote them. Every character that could move a cursor, start a terminal
// escape, break a log line or reorder text is replaced, so such text can be logged, shown in the live view or put in
// a telemetry attribute as one line.

/** C0 controls (ESC, CR, LF, TAB ...), DEL, C1 controls (0x9b is a one-byte CSI on some terminals), the Unicode line
 * and paragraph separators (newlines to some log viewers) and the bidi controls. */
export function isUnsafeChar(c: number): boolean {
  return (
    c < 0x20 ||
    (c >= 0x7f && c <= 0x9f) ||
    c === 0x2028 || c === 0x2029 ||
    c === 0x200e || c === 0x200f || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)
  );
}

export interface ScrubOptions {
  /** Longer text is cut to max characters and '...' appended. */
  max?: number;
  /** What an unsafe character becomes (default '?'). */
  replacement?: string;
  /** Replace every character outside printable ASCII too (raw latin1 bytes not decoded yet). */
  asciiOnly?: boolean;
}

/** text with every unsafe character replaced (see isUnsafeChar), cut to opts.max. */
export function scrub(text: string, opts: ScrubOptions = {}): string {
  const { max, replacement = '?', asciiOnly = false } = opts;
  const cut = max !== undefined && text.length > max;
  const end = cut ? max : text.length;
  let out = '';
  let from = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (isUnsafeChar(c) || (asciiOnly && c >= 0x7f)) {
      out += text.slice(from, i) + replacement;
      from = i + 1;
    }
  }
  out = from === 0 && end === text.length ? text : out + text.slice(from, end);
  return cut ? `${out}...` : out;
}
