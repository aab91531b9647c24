import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ChunkDecodeError,
  decodeChunk,
  defaultZstdBackend,
  deltaBaseOf,
  encodeChunk,
  encodeChunkAgainst,
  MIN_COMPRESS_BYTES,
  nodeZstdBackend,
  wasmZstdBackend,
  zstdFrameContentSize,
  type ZstdBackend,
} from '../../src/storage/chunk-codec.ts';
import { createFossilDelta } from '../../src/storage/fossil-delta-encode.ts';

/** Text that compresses about 5x, like source code or a log. */
function textOf(bytes: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; lines.join('\n').length < bytes; i += 1) {
    lines.push(`${i}\tcustomer ${(i * 7919) % 100_003}\t${(i * 31) % 977} EUR\tnote: order shipped, see ticket #${i % 4096}`);
  }
  return Buffer.from(lines.join('\n')).subarray(0, bytes);
}

const backends: [string, () => Promise<ZstdBackend | null>][] = [
  ['@bokuweb/zstd-wasm', wasmZstdBackend],
  ['node:zlib', () => Promise.resolve(nodeZstdBackend())],
];

describe('chunk codec', () => {
  it('picks node:zlib where the runtime has zstd, else the WebAssembly build', async () => {
    const expected = nodeZstdBackend() ? 'node:zlib' : '@bokuweb/zstd-wasm';
    expect((await defaultZstdBackend()).name).toBe(expected);
  });

  for (const [name, load] of backends) {
    describe(name, () => {
      it('compresses text and reads it back byte for byte', async (ctx) => {
        const zstd = await load();
        if (!zstd) return ctx.skip(`this runtime (${process.version}) has no zstd in node:zlib`);
        const raw = textOf(300_000);
        const encoded = await encodeChunk(raw, zstd);
        expect(encoded.codec).toBe('zstd');
        expect(encoded.stored.length).toBeLessThan(raw.length / 3);
        expect(zstdFrameContentSize(encoded.stored)).toBe(raw.length);
        expect((await decodeChunk('zstd', encoded.stored, raw.length, zstd)).equals(raw)).toBe(true);
      });

      it('stores random bytes raw: compression does not pay', async (ctx) => {
        const zstd = await load();
        if (!zstd) return ctx.skip(`this runtime (${process.version}) has no zstd in node:zlib`);
        const raw = randomBytes(100_000);
        const encoded = await encodeChunk(raw, zstd);
        expect(encoded.codec).toBe('raw');
        expect(encoded.stored).toBe(raw);
        expect((await decodeChunk('raw', encoded.stored, raw.length, zstd)).equals(raw)).toBe(true);
      });

      it('refuses a frame that decodes to more bytes than recorded, even without a declared size', async (ctx) => {
        const zstd = await load();
        if (!zstd) return ctx.skip(`this runtime (${process.version}) has no zstd in node:zlib`);
        const raw = textOf(50_000);
        const frame = await zstd.compress(raw, 3);
        await expect(decodeChunk('zstd', frame, raw.length - 1, zstd)).rejects.toThrow(/declares 50000 bytes, not 49999/);
        // The same frame with its content size removed from the header: the decoder itself must stop.
        await expect(zstd.decompress(withoutContentSize(frame), raw.length - 1)).rejects.toThrow();
        expect((await zstd.decompress(withoutContentSize(frame), raw.length)).equals(raw)).toBe(true);
      });
    });
  }

  it('stores chunks of up to MIN_COMPRESS_BYTES raw without trying, however well they would compress', async () => {
    const zstd = await defaultZstdBackend();
    for (const size of [0, 1, MIN_COMPRESS_BYTES]) {
      const raw = Buffer.alloc(size, 'a');
      expect(await encodeChunk(raw, zstd)).toEqual({ codec: 'raw', stored: raw });
    }
    expect((await encodeChunk(Buffer.alloc(MIN_COMPRESS_BYTES + 1, 'a'), zstd)).codec).toBe('zstd');
  });

  it('keeps zstd only when it saves at least 1/32 of the chunk', async () => {
    const zstd = await defaultZstdBackend();
    // 4000 random bytes and a run of zeros: the frame saves about `zeros` bytes.
    const saving = async (zeros: number) =>
      encodeChunk(Buffer.concat([randomBytes(4000 - zeros), Buffer.alloc(zeros)]), zstd);
    expect((await saving(40)).codec).toBe('raw'); // about 1%
    expect((await saving(400)).codec).toBe('zstd'); // about 10%
  });

  it('throws ChunkDecodeError for damaged stored bytes', async () => {
    const zstd = await defaultZstdBackend();
    const raw = textOf(20_000);
    const { stored } = await encodeChunk(raw, zstd);
    const flipped = Buffer.from(stored);
    flipped[Math.floor(flipped.length / 2)]! ^= 0x40;
    for (const [bad, size] of [
      [Buffer.from('not a zstd frame at all'), raw.length],
      [stored.subarray(0, stored.length - 5), raw.length],
      [flipped, raw.length],
      [stored, raw.length + 1],
    ] as const) {
      const outcome = await decodeChunk('zstd', bad, size, zstd).then(
        (decoded) => (decoded.equals(raw) ? 'same bytes' : 'other bytes'),
        (error: unknown) => error,
      );
      // A flip inside a literal run may still decode (to other bytes): the pack reader's SHA-256 catches those.
      if (outcome !== 'other bytes') expect(outcome).toBeInstanceOf(ChunkDecodeError);
    }
    await expect(decodeChunk('raw', raw, raw.length - 1, zstd)).rejects.toBeInstanceOf(ChunkDecodeError);
  });

  it('stores an edited chunk as a delta against its base, and decodes it only through a resolver that gives that base', async () => {
    const zstd = await defaultZstdBackend();
    const base = textOf(64 * 1024);
    const edited = Buffer.from(base);
    for (let at = 1000; at < edited.length; at += 9000) edited.write('EDITED', at);
    const baseSha = createHash('sha256').update(base).digest('hex');
    const encoded = await encodeChunkAgainst(edited, { sha256: baseSha, raw: base }, zstd);
    expect(encoded.codec).toBe('delta');
    expect(encoded.baseSha256).toBe(baseSha);
    expect(deltaBaseOf(encoded.stored)).toBe(baseSha);
    expect(encoded.stored.length).toBeLessThan((await encodeChunk(edited, zstd)).stored.length / 10);
    const asked: string[] = [];
    const resolver = async (sha: string) => {
      asked.push(sha);
      return base;
    };
    expect((await decodeChunk('delta', encoded.stored, edited.length, zstd, resolver)).equals(edited)).toBe(true);
    expect(asked).toEqual([baseSha]);
    // No resolver, a base with other bytes, a resolver that fails: damage, never wrong bytes.
    await expect(decodeChunk('delta', encoded.stored, edited.length, zstd)).rejects.toBeInstanceOf(ChunkDecodeError);
    await expect(decodeChunk('delta', encoded.stored, edited.length, zstd, async () => textOf(60 * 1024))).rejects.toBeInstanceOf(ChunkDecodeError);
    const failing = async (sha: string): Promise<Buffer> => {
      throw new ChunkDecodeError(`its base chunk ${sha} is damaged`);
    };
    await expect(decodeChunk('delta', encoded.stored, edited.length, zstd, failing)).rejects.toThrow(/is damaged/);
  });

  it('keeps the ordinary encoding when a delta would not save half of it, and never deltas small chunks', async () => {
    const zstd = await defaultZstdBackend();
    const unrelated = { sha256: 'ab'.repeat(32), raw: randomBytes(64 * 1024) };
    expect((await encodeChunkAgainst(randomBytes(64 * 1024), unrelated, zstd)).codec).toBe('raw');
    expect((await encodeChunkAgainst(textOf(64 * 1024), unrelated, zstd)).codec).toBe('zstd');
    const small = textOf(2000);
    expect((await encodeChunkAgainst(small, { sha256: 'cd'.repeat(32), raw: small }, zstd)).codec).not.toBe('delta');
  });

  it('stores a delta only once it decodes back to the chunk: a wrong or malformed one gives the ordinary encoding', async () => {
    const zstd = await defaultZstdBackend();
    const base = textOf(64 * 1024);
    const edited = Buffer.from(base);
    edited.write('EDITED', 30_000);
    const named = { sha256: createHash('sha256').update(base).digest('hex'), raw: base };
    const plain = await encodeChunk(edited, zstd);
    expect((await encodeChunkAgainst(edited, named, zstd)).codec).toBe('delta');
    // An encoder that describes other bytes (here: the base itself), or writes nothing applicable.
    const wrong = await encodeChunkAgainst(edited, named, zstd, undefined, (source) => createFossilDelta(source, source));
    expect(wrong).toEqual(plain);
    const malformed = await encodeChunkAgainst(edited, named, zstd, undefined, () => Buffer.from('not a delta'));
    expect(malformed).toEqual(plain);
  });

  it('reads the content size of every zstd frame header form (RFC 8878)', () => {
    const magic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
    const frame = (...bytes: number[]) => Buffer.concat([magic, Buffer.from(bytes), Buffer.alloc(8)]);
    expect(zstdFrameContentSize(frame(0b0010_0000, 200))).toBe(200); // single segment, 1-byte size
    expect(zstdFrameContentSize(frame(0b0100_0000, 0x58, 0x10, 0x00))).toBe(0x0010 + 256); // window byte, 2-byte size + 256
    expect(zstdFrameContentSize(frame(0b1010_0000, 0xe0, 0x93, 0x04, 0x00))).toBe(300_000); // single segment, 4-byte size
    expect(zstdFrameContentSize(frame(0b0000_0000, 0x58))).toBeNull(); // no size
    expect(zstdFrameContentSize(frame(0b0010_0001, 0x07, 50))).toBe(50); // a 1-byte dictionary id before the size
    expect(zstdFrameContentSize(frame(0b0010_1000))).toBe('malformed'); // reserved bit set
    expect(zstdFrameContentSize(Buffer.from('CAIRNPAK'))).toBe('malformed');
  });
});

/** The frame re-encoded with a header that declares no content size (as a streaming encoder writes). */
function withoutContentSize(frame: Buffer): Buffer {
  const descriptor = frame[4]!;
  const sizeFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const sizeBytes = sizeFlag === 0 ? singleSegment : [0, 2, 4, 8][sizeFlag]!;
  const windowBytes = singleSegment ? 0 : 1;
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3]!;
  const contentSize = zstdFrameContentSize(frame) as number;
  // Without single-segment mode a window descriptor is needed: window = 2^(10 + exponent) >= content size.
  const exponent = Math.max(0, Math.ceil(Math.log2(Math.max(contentSize, 1024))) - 10);
  const rest = frame.subarray(5 + windowBytes + dictionaryBytes + sizeBytes);
  const dictionary = frame.subarray(5 + windowBytes, 5 + windowBytes + dictionaryBytes);
  return Buffer.concat([frame.subarray(0, 4), Buffer.from([descriptor & 0b0000_0111, exponent << 3]), dictionary, rest]);
}
