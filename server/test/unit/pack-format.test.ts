import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PackDamagedError } from '../../src/errors.ts';
import { encodePackHeader, encodePackTrailer, parsePack, type PackEntry } from '../../src/storage/pack-format.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** A two-chunk pack built by hand: "hello" raw, then 3 stored bytes said to be zstd of 1000 raw bytes. */
function tinyPack(): { pack: Buffer; entries: PackEntry[] } {
  const entries: PackEntry[] = [
    { sha256: sha256('hello'), codec: 'raw', rawSize: 5, offset: 16, length: 5 },
    { sha256: sha256('x'.repeat(1000)), codec: 'zstd', rawSize: 1000, offset: 21, length: 3 },
  ];
  const pack = Buffer.concat([encodePackHeader(), Buffer.from('hello'), Buffer.from([1, 2, 3]), encodePackTrailer(entries, 24)]);
  return { pack, entries };
}

describe('pack format v1', () => {
  it('lays out header, data, index and footer byte for byte as docs/storage.md describes', () => {
    const { pack, entries } = tinyPack();
    expect(pack.length).toBe(16 + 8 + 2 * 48 + 48);
    expect(pack.subarray(0, 16).toString('hex')).toBe('434149524e50414b' + '0001' + '000000000000'); // "CAIRNPAK", v1
    expect(pack.subarray(16, 24).toString('hex')).toBe('68656c6c6f' + '010203');
    const entry1 = pack.subarray(72, 120);
    expect(entry1.subarray(0, 32).toString('hex')).toBe(entries[1]!.sha256);
    expect(entry1.subarray(32).toString('hex')).toBe('00000015' + '00000003' + '000003e8' + '01' + '000000');
    const footer = pack.subarray(120);
    expect(footer.subarray(0, 8).toString('hex')).toBe('00000002' + '00000018'); // 2 entries, index at 24
    const checksum = createHash('sha256').update(pack.subarray(0, 16)).update(pack.subarray(24, 128)).digest('hex');
    expect(footer.subarray(8, 40).toString('hex')).toBe(checksum);
    expect(footer.subarray(40).toString('ascii')).toBe('CAIRNPAK');
    // Frozen: a change to any byte of the layout is a new format version.
    expect(createHash('sha256').update(pack).digest('hex')).toBe(GOLDEN_TINY_PACK_SHA256);
  });

  it('parses what it encodes', () => {
    const { pack, entries } = tinyPack();
    expect(parsePack('packs/x', pack)).toEqual({ entries, indexOffset: 24, packBytes: pack.length });
  });

  for (const [label, damage, detail] of [
    ['a pack cut short', (p: Buffer) => p.subarray(0, p.length - 1), /no pack magic at the end/],
    ['a pack of a few bytes', (p: Buffer) => p.subarray(0, 20), /too short/],
    ['a wrong version', (p: Buffer) => (p.writeUInt16BE(2, 8), p), /version 2 is not supported/],
    ['a flipped index byte', (p: Buffer) => ((p[100]! ^= 1), p), /index checksum mismatch/],
    ['a flipped checksum byte', (p: Buffer) => ((p[130]! ^= 1), p), /index checksum mismatch/],
    ['an entry count that does not add up', (p: Buffer) => (p.writeUInt32BE(3, 120), p), /does not add up/],
    ['a header that is not a pack', (p: Buffer) => (p.write('NOTAPACK', 0, 'ascii'), p), /no pack magic at the start/],
  ] as const) {
    it(`refuses ${label} with PackDamagedError naming the pack`, () => {
      const damaged = damage(Buffer.from(tinyPack().pack));
      const error = (() => {
        try {
          parsePack('packs/abc', damaged);
        } catch (caught) {
          return caught;
        }
        return undefined;
      })();
      expect(error).toBeInstanceOf(PackDamagedError);
      expect(error).toMatchObject({ packKey: 'packs/abc', detail: expect.stringMatching(detail), statusCode: 500 });
    });
  }

  it('refuses entries that do not tile the data, even under a valid checksum', () => {
    const entries: PackEntry[] = [{ sha256: sha256('hello'), codec: 'raw', rawSize: 5, offset: 17, length: 4 }];
    const pack = Buffer.concat([encodePackHeader(), Buffer.from('hello'), encodePackTrailer(entries, 21)]);
    expect(() => parsePack('packs/abc', pack)).toThrow(PackDamagedError);
    expect(() => parsePack('packs/abc', pack)).toThrow(expect.objectContaining({ detail: 'entry 0 starts at 17, not 16' }));
  });
});

const GOLDEN_TINY_PACK_SHA256 = '66b1caf0e7eee63d96cad3d251fa2a26d017fe9ca597a6c62346de693458e8c1';
