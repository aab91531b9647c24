import { isUtf8 } from 'node:buffer';

/**
 * POSIX file names are bytes, not text: any byte but `/` and NUL. The
 * protocol, PostgreSQL and the dashboard all carry paths as Unicode text, so
 * a name that is not valid UTF-8 (a Latin-1 `r\xe9sum\xe9.txt`) needs a
 * lossless spelling in text. This is it ("byte escapes"):
 *
 * - Valid UTF-8 is spelled as itself.
 * - Every byte that is not part of a well-formed UTF-8 sequence is spelled
 *   as the code point U+10FF00 + byte (U+10FF80..U+10FFFF, at the end of
 *   Supplementary Private Use Area-B; only bytes >= 0x80 can be invalid).
 * - A name that really contains one of those 128 code points has that
 *   character's four UTF-8 bytes escaped the same way, so decoding is
 *   always exact and the spelling is one-to-one.
 *
 * Like Python's "surrogateescape", but with real code points instead of lone
 * surrogates, which PostgreSQL text, JSON and UTF-8 cannot hold.
 * `posixPathBytes(encodePosixPath(bytes))` equals `bytes` for every input.
 */
const ESCAPE_BASE = 0x10ff00;
const ESCAPE_FIRST = ESCAPE_BASE + 0x80;
const ESCAPED = /[\u{10FF80}-\u{10FFFF}]/u;
const ESCAPED_ALL = /[\u{10FF80}-\u{10FFFF}]/gu;

/** The text spelling of a path (or name) read from the file system as bytes. */
export function encodePosixPath(bytes: Buffer): string {
  if (isUtf8(bytes)) {
    const text = bytes.toString('utf8');
    if (!ESCAPED.test(text)) return text;
  }
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const length = wellFormedLength(bytes, i);
    if (length === 0) {
      out += String.fromCodePoint(ESCAPE_BASE + (bytes[i] as number));
      i += 1;
      continue;
    }
    const char = bytes.toString('utf8', i, i + length);
    if ((char.codePointAt(0) as number) >= ESCAPE_FIRST) {
      for (let j = i; j < i + length; j += 1) out += String.fromCodePoint(ESCAPE_BASE + (bytes[j] as number));
    } else out += char;
    i += length;
  }
  return out;
}

/** The exact bytes a path's text spelling stands for. */
export function posixPathBytes(text: string): Buffer {
  if (!ESCAPED.test(text)) return Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  let plain = '';
  for (const char of text) {
    const code = char.codePointAt(0) as number;
    if (code >= ESCAPE_FIRST) {
      if (plain) parts.push(Buffer.from(plain, 'utf8'));
      plain = '';
      parts.push(Buffer.of(code - ESCAPE_BASE));
    } else plain += char;
  }
  if (plain) parts.push(Buffer.from(plain, 'utf8'));
  return Buffer.concat(parts);
}

/** What to hand to `node:fs` for a path's spelling: the string itself, or its bytes when it holds escapes. */
export function fsPath(text: string): string | Buffer {
  return ESCAPED.test(text) ? posixPathBytes(text) : text;
}

/** True when the spelling stands for bytes that are not valid UTF-8 (or for an escape code point). */
export function hasByteEscapes(text: string): boolean {
  return ESCAPED.test(text);
}

/** A path for people to read: each escaped byte shown as `\xNN`. Not reversible; never use it as a key. */
export function displayPath(text: string): string {
  return text.replace(ESCAPED_ALL, (char) => `\\x${((char.codePointAt(0) as number) - ESCAPE_BASE).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** Length of the well-formed UTF-8 sequence at `i` (Unicode Table 3-7), or 0 when there is none. */
function wellFormedLength(bytes: Buffer, i: number): number {
  const b0 = bytes[i] as number;
  if (b0 < 0x80) return 1;
  const inRange = (offset: number, low: number, high: number) => {
    const b = bytes[i + offset];
    return b !== undefined && b >= low && b <= high;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) return inRange(1, 0x80, 0xbf) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const low = b0 === 0xe0 ? 0xa0 : 0x80;
    const high = b0 === 0xed ? 0x9f : 0xbf;
    return inRange(1, low, high) && inRange(2, 0x80, 0xbf) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const low = b0 === 0xf0 ? 0x90 : 0x80;
    const high = b0 === 0xf4 ? 0x8f : 0xbf;
    return inRange(1, low, high) && inRange(2, 0x80, 0xbf) && inRange(3, 0x80, 0xbf) ? 4 : 0;
  }
  return 0;
}
