import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { displayPath, encodePosixPath, fsPath, hasByteEscapes, posixPathBytes } from '../src/posix-names.ts';

const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

describe('byte escapes for POSIX names', () => {
  it.each([
    ['plain ASCII', bytes('/home/u/notes.txt'), '/home/u/notes.txt'],
    ['valid UTF-8', bytes('/ünï cødé/ファイル'), '/ünï cødé/ファイル'],
    ['Latin-1 é', bytes('/r', [0xe9], 'sum', [0xe9], '.txt'), '/r\u{10FFE9}sum\u{10FFE9}.txt'],
    ['lone continuation byte', bytes('/a', [0x80]), '/a\u{10FF80}'],
    ['truncated 3-byte sequence', bytes('/a', [0xe2, 0x82]), '/a\u{10FFE2}\u{10FF82}'],
    ['overlong slash', bytes('/a', [0xc0, 0xaf]), '/a\u{10FFC0}\u{10FFAF}'],
    ['UTF-16 surrogate encoded in UTF-8', bytes('/', [0xed, 0xa0, 0x80]), '/\u{10FFED}\u{10FFA0}\u{10FF80}'],
    ['a real escape-range character is escaped too', bytes('/x\u{10FF80}'), '/x\u{10FFF4}\u{10FF8F}\u{10FFBE}\u{10FF80}'],
  ])('%s', (_name, raw, text) => {
    expect(encodePosixPath(raw)).toBe(text);
    expect(posixPathBytes(text).equals(raw)).toBe(true);
  });

  it('is exact for random byte strings', () => {
    for (let i = 0; i < 2000; i += 1) {
      const raw = randomBytes(1 + (i % 40));
      const text = encodePosixPath(raw);
      expect(posixPathBytes(text).equals(raw)).toBe(true);
      // Always valid Unicode: survives a round trip through UTF-8 (PostgreSQL text, JSON).
      expect(Buffer.from(text, 'utf8').toString('utf8')).toBe(text);
    }
  });

  it('hands node:fs a string for valid names and bytes otherwise', () => {
    expect(fsPath('/srv/a.txt')).toBe('/srv/a.txt');
    expect(fsPath('/r\u{10FFE9}')).toEqual(bytes('/r', [0xe9]));
    expect(hasByteEscapes('/r\u{10FFE9}')).toBe(true);
    expect(hasByteEscapes('/résumé')).toBe(false);
  });

  it('shows escaped bytes as \\xNN for people', () => {
    expect(displayPath('/r\u{10FFE9}sum\u{10FFE9}.txt')).toBe('/r\\xE9sum\\xE9.txt');
    expect(displayPath('/plain')).toBe('/plain');
  });
});
