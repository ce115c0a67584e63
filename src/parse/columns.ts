// Column scanning shared by the tool formats. Each format is a printf layout: fields separated by one space and
// left-aligned to a minimum width (%-Nd, %-Ns), which a longer value overflows (IPv6 addresses, 7-digit PIDs), plus
// one fixed-width COMM field (%-12.12s, %-10.10s; %-16s of a 15-byte comm) that may hold any bytes, spaces included.
// A line is accepted only when every field starts exactly where printf would have put it given the lengths of the
// fields before it. That is what stops COMM text from forging fields: COMM is read as a fixed slice, never tokenised,
// and the fragment after a newline inside COMM has its fields at the wrong columns.

import { scrub } from '../scrub.ts';
import type { DecodeResult, RejectReason } from './types.ts';

const SPACE = 0x20;

/** A printf layout: the minimum width of each field, and which one is the fixed-width COMM (-1: none). */
export interface ColumnLayout {
  readonly widths: readonly number[];
  readonly comm: number;
  /** COMM's width counts UTF-8 characters, not bytes (Python's %-12.12s of a decoded string: BCC's tools). */
  readonly commChars?: boolean;
}

/** Field boundaries found by scanColumns: field f is line.slice(starts[f], ends[f]). Reused: copy what you keep. */
export interface Columns {
  readonly starts: Int32Array;
  readonly ends: Int32Array;
}

export function makeColumns(): Columns {
  return { starts: new Int32Array(16), ends: new Int32Array(16) };
}

/**
 * Locates the fields of `layout` in line[start, end) (columns count from `start`). false when the line is not that
 * layout: wrong field count, a field not at its printf column, padding that is not spaces, or anything after the last
 * field. The last field has no padding and runs to `end`.
 */
export function scanColumns(line: string, end: number, layout: ColumnLayout, out: Columns, start = 0): boolean {
  const { widths, comm } = layout;
  const { starts, ends } = out;
  const last = widths.length - 1;
  let pos = start;
  for (let f = 0; f <= last; f++) {
    const width = widths[f]!;
    let fieldEnd: number;
    if (f === comm) {
      if (layout.commChars) {
        // `width` characters of UTF-8: each is one byte that is not a continuation byte (10xxxxxx) and those after it
        fieldEnd = pos;
        for (let n = 0; n < width && fieldEnd < end; n++) {
          fieldEnd++;
          while (fieldEnd < end && (line.charCodeAt(fieldEnd) & 0xc0) === 0x80) fieldEnd++;
        }
      } else {
        fieldEnd = pos + width;
      }
      if (fieldEnd >= end) return false;
    } else {
      if (pos >= end || line.charCodeAt(pos) === SPACE) return false;
      fieldEnd = pos + 1;
      while (fieldEnd < end && line.charCodeAt(fieldEnd) !== SPACE) fieldEnd++;
    }
    starts[f] = pos;
    ends[f] = fieldEnd;
    if (f === last) return fieldEnd === end;
    const next = pos + (fieldEnd - pos > width ? fieldEnd - pos : width) + 1;
    if (next >= end) return false;
    // the padding and the separator are spaces: nothing hides between two fields
    while (fieldEnd < next) if (line.charCodeAt(fieldEnd++) !== SPACE) return false;
    pos = next;
  }
  return false;
}

/** Unsigned decimal integer as printf %d prints it (no sign, no leading zeros); -1 when not one or above max. */
export function parseUint(s: string, start: number, end: number, max: number): number {
  const len = end - start;
  if (len === 0 || len > 10 || (len > 1 && s.charCodeAt(start) === 0x30)) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value > max ? -1 : value;
}

/** End of the %.<decimals>f number at s[start, end) (digits, '.', exactly `decimals` digits), or -1 when there is none. */
export function fixedEnd(s: string, start: number, end: number, decimals: number): number {
  let i = start;
  while (i < end && isDigit(s.charCodeAt(i))) i++;
  if (i === start || i + decimals >= end || s.charCodeAt(i) !== 0x2e) return -1;
  for (let k = 1; k <= decimals; k++) if (!isDigit(s.charCodeAt(i + k))) return -1;
  return i + 1 + decimals;
}

/** parseFixed's answer for digits that are not exactly the printf precision: a line cut inside the field. */
export const CUT = -1;

/**
 * Non-negative decimal as printf %.<decimals>f prints it ("47.80" for %.2f, "0.000" for %.3f). NaN when it is not a
 * number printf prints (nan, inf, -1, 1e3); CUT when it is digits without exactly `decimals` of them after the point
 * ("47", "47.", "0.1"): the tools always print every decimal, so that is a line cut short (or run on), not a value.
 */
export function parseFixed(s: string, start: number, end: number, decimals: number): number {
  const checked = checkFixed(s, start, end, decimals);
  return checked === 0 ? Number(s.slice(start, end)) : checked;
}

/** parseFixed without the value (read in place, nothing allocated): 0 when it is a number, else CUT or NaN. */
export function checkFixed(s: string, start: number, end: number, decimals: number): number {
  let i = start;
  while (i < end && isDigit(s.charCodeAt(i))) i++;
  if (i === start) return NaN;
  if (i === end) return CUT;
  if (s.charCodeAt(i) !== 0x2e) return NaN;
  const digits = i - start;
  const fraction = ++i;
  while (i < end && isDigit(s.charCodeAt(i))) i++;
  if (i !== end) return NaN;
  if (i - fraction !== decimals) return CUT;
  // up to 308 integer digits is below Number.MAX_VALUE (1.79e308); more may round to Infinity: not a value
  return digits <= 308 || Number.isFinite(Number(s.slice(start, end))) ? 0 : NaN;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** End of the line without trailing spaces, tabs and CR (a replayed file may have CRLF line ends). */
export function trimmedEnd(line: string): number {
  let end = line.length;
  while (end > 0) {
    const c = line.charCodeAt(end - 1);
    if (c !== SPACE && c !== 0x09 && c !== 0x0d) break;
    end--;
  }
  return end;
}

/** printf("%-Ns", text) */
export function padRight(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

export const SKIP: DecodeResult = Object.freeze({ kind: 'skip' });

export function reject(reason: RejectReason, detail: string): DecodeResult {
  return { kind: 'reject', reason, detail };
}

/** Printable excerpt of untrusted text for a rejection detail (never echo control characters into logs). */
export function excerpt(s: string, start: number, end: number): string {
  return JSON.stringify(scrub(s.slice(start, Math.min(end, start + 48)), { asciiOnly: true }));
}
