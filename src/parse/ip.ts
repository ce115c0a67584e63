// Address validation for the text inet_ntop(3) prints. Hand-written scanners (no regex) because they run twice per
// line on the hot path; test/parse/ip.test.ts checks them against node:net isIP. Zone ids ("%eth0") are rejected:
// inet_ntop never prints them.

const DOT = 0x2e;
const COLON = 0x3a;

/** true when s[start, end) is a dotted quad with octets 0-255 and no leading zeros (inet_ntop's form). */
export function isIPv4At(s: string, start: number, end: number): boolean {
  if (end - start < 7 || end - start > 15) return false;
  let octets = 0;
  let i = start;
  for (;;) {
    const first = i;
    let value = 0;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      value = value * 10 + (c - 0x30);
      i++;
    }
    const len = i - first;
    if (len === 0 || len > 3 || value > 255 || (len > 1 && s.charCodeAt(first) === 0x30)) return false;
    octets++;
    if (i === end) return octets === 4;
    if (octets === 4 || s.charCodeAt(i) !== DOT) return false;
    i++;
  }
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/** true when s[start, end) is an IPv6 address: 1-4 hex digit groups, at most one "::", optional trailing IPv4. */
export function isIPv6At(s: string, start: number, end: number): boolean {
  if (end - start < 2 || end - start > 45) return false;
  let groups = 0;
  let compressed = false;
  let i = start;
  if (s.charCodeAt(i) === COLON) {
    if (s.charCodeAt(i + 1) !== COLON) return false;
    compressed = true;
    i += 2;
    if (i === end) return true; // "::"
  }
  for (;;) {
    const first = i;
    while (i < end && i - first < 5 && isHex(s.charCodeAt(i))) i++;
    if (i < end && s.charCodeAt(i) === DOT) {
      // embedded IPv4 (::ffff:1.2.3.4) takes the last two groups
      if (!isIPv4At(s, first, end)) return false;
      groups += 2;
      break;
    }
    const len = i - first;
    if (len === 0 || len > 4) return false;
    groups++;
    if (i === end) break;
    if (s.charCodeAt(i) !== COLON || groups >= 8) return false;
    i++;
    if (i < end && s.charCodeAt(i) === COLON) {
      if (compressed) return false;
      compressed = true;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return false; // trailing single colon
    }
  }
  return compressed ? groups <= 7 : groups === 8;
}

/** 4 or 6 for an address as inet_ntop prints it, 0 for anything else. */
export function ipVersionOf(s: string): 0 | 4 | 6 {
  return ipVersionAt(s, 0, s.length);
}

/** ipVersionOf of s[start, end), read in place (no slice). */
export function ipVersionAt(s: string, start: number, end: number): 0 | 4 | 6 {
  // one char decides which scanner can match: IPv4 has a '.' before any ':' and IPv6 has a ':' early on
  for (let i = start; i < end && i < start + 5; i++) {
    const c = s.charCodeAt(i);
    if (c === COLON) return isIPv6At(s, start, end) ? 6 : 0;
    if (c === DOT) return isIPv4At(s, start, end) ? 4 : 0;
  }
  return isIPv6At(s, start, end) ? 6 : 0;
}
