import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/blob/blob-store.ts';
import { DiskBlobStore } from '../../src/blob/disk-blob-store.ts';
import { S3BlobStore } from '../../src/blob/s3-blob-store.ts';
import { HashMismatchError, PackChunkDamagedError, PackDamagedError } from '../../src/errors.ts';
import { PACK_FOOTER_BYTES, PACK_HEADER_BYTES, parsePack, parsePackStream, type ChunkLocation } from '../../src/storage/pack-format.ts';
import { readChunk, readPackIndex, verifyPack } from '../../src/storage/pack-reader.ts';
import { PackWriter } from '../../src/storage/pack-writer.ts';
import { startS3rver, type RunningS3rver } from '../helpers/s3rver.ts';

/** A store plus raw access to its objects, to damage them behind the store's back. */
interface PackStoreHarness {
  store: BlobStore;
  readRaw(key: string): Promise<Buffer>;
  /** Replaces an object's bytes without the store's hash check, as a disk fault or a bucket mishap would. */
  writeRaw(key: string, bytes: Buffer): Promise<void>;
  close(): Promise<void>;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Text rows like a database dump: compress well. */
function textChunk(seed: number, bytes: number): Buffer {
  let text = '';
  for (let i = 0; text.length < bytes; i += 1) text += `${seed}\t${i}\t${(seed * 7919 + i * 104_729) % 1_000_003}\tfiller text for row ${i}\n`;
  return Buffer.from(text.slice(0, bytes));
}

interface Chunk {
  sha256: string;
  raw: Buffer;
}

function chunkOf(raw: Buffer): Chunk {
  return { sha256: sha256(raw), raw };
}

/** Half text, half random, 1 KiB to 40 KiB. */
function mixedChunks(count: number): Chunk[] {
  return Array.from({ length: count }, (_, i) => {
    const size = 1024 + ((i * 9973) % (40 * 1024));
    return chunkOf(i % 2 === 0 ? textChunk(i, size) : randomBytes(size));
  });
}

async function writeAll(writer: PackWriter, chunks: Chunk[]): Promise<ChunkLocation[]> {
  const locations: ChunkLocation[] = [];
  for (const chunk of chunks) locations.push(...(await writer.add(chunk.sha256, chunk.raw)));
  locations.push(...(await writer.flush()));
  return locations;
}

function describePackStore(name: string, makeHarness: () => Promise<PackStoreHarness>): void {
  describe(`packs on ${name}`, () => {
    let harness: PackStoreHarness;
    let store: BlobStore;

    beforeEach(async () => {
      harness = await makeHarness();
      store = harness.store;
    });

    afterEach(async () => {
      await harness.close();
    });

    it('round-trips many chunks through several packs, each at most the target size, one put each', async () => {
      const targetBytes = 256 * 1024;
      const chunks = mixedChunks(120);
      const locations = await writeAll(new PackWriter(store, { targetBytes }), chunks);
      expect(locations.map((l) => l.sha256)).toEqual(chunks.map((c) => c.sha256));

      const packKeys = [...new Set(locations.map((l) => l.packKey))];
      expect(packKeys.length).toBeGreaterThan(3);
      const stored: string[] = [];
      for await (const info of store.list()) {
        stored.push(info.key);
        expect(info.size).toBeLessThanOrEqual(targetBytes);
      }
      expect(stored.sort()).toEqual([...packKeys].sort());

      for (const [i, location] of locations.entries()) {
        expect((await readChunk(store, location)).equals(chunks[i]!.raw)).toBe(true);
      }
      for (const packKey of packKeys) {
        const own = locations.filter((l) => l.packKey === packKey).map(({ packKey: _, ...entry }) => entry);
        expect((await readPackIndex(store, packKey))?.entries).toEqual(own);
        expect(parsePack(packKey, await harness.readRaw(packKey)).entries).toEqual(own);
        expect((await parsePackStream(packKey, (await store.get(packKey))!)).entries).toEqual(own);
        expect(await verifyPack(store, packKey)).toMatchObject({ packHashMatches: true, indexProblem: null, damaged: [] });
      }
    });

    it('stores text compressed and random bytes raw', async () => {
      const text = chunkOf(textChunk(1, 100_000));
      const noise = chunkOf(randomBytes(100_000));
      const [textAt, noiseAt] = await writeAll(new PackWriter(store), [text, noise]);
      expect(textAt).toMatchObject({ codec: 'zstd', rawSize: 100_000 });
      expect(textAt!.length).toBeLessThan(100_000 / 3);
      expect(noiseAt).toMatchObject({ codec: 'raw', rawSize: 100_000, length: 100_000 });
      expect((await readChunk(store, textAt!)).equals(text.raw)).toBe(true);
      expect((await readChunk(store, noiseAt!)).equals(noise.raw)).toBe(true);
    });

    for (const codec of ['zstd', 'raw'] as const) {
      it(`names only the chunk whose ${codec} bytes were flipped; the pack's other chunks still read`, async () => {
        const chunks = mixedChunks(12);
        const locations = await writeAll(new PackWriter(store), chunks);
        const victim = locations.find((l, i) => l.codec === codec && i > 0 && i < 11)!;
        const pack = await harness.readRaw(victim.packKey);
        pack[victim.offset + Math.floor(victim.length / 2)]! ^= 0x01;
        await harness.writeRaw(victim.packKey, pack);

        const error = await readChunk(store, victim).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(PackChunkDamagedError);
        expect(error).toMatchObject({ chunkSha256: victim.sha256, sha256: victim.sha256, packKey: victim.packKey, statusCode: 500 });
        expect((error as Error).message).toBe('stored content is damaged or missing');
        for (const [i, location] of locations.entries()) {
          if (location !== victim) expect((await readChunk(store, location)).equals(chunks[i]!.raw)).toBe(true);
        }
        expect(await verifyPack(store, victim.packKey)).toMatchObject({
          packHashMatches: false,
          indexProblem: null,
          damaged: [{ sha256: victim.sha256 }],
        });
      });
    }

    it('reads the chunks before the cut of a truncated pack, and calls the rest and the index damaged', async () => {
      const chunks = mixedChunks(6);
      const locations = await writeAll(new PackWriter(store), chunks);
      const last = locations.at(-1)!;
      const pack = await harness.readRaw(last.packKey);
      await harness.writeRaw(last.packKey, pack.subarray(0, last.offset + 10));

      for (const [i, location] of locations.slice(0, -1).entries()) {
        expect((await readChunk(store, location)).equals(chunks[i]!.raw)).toBe(true);
      }
      await expect(readChunk(store, last)).rejects.toThrow(PackChunkDamagedError);
      await expect(readChunk(store, last)).rejects.toMatchObject({ problem: expect.stringMatching(/ends \d+ bytes short/) });
      await expect(readPackIndex(store, last.packKey)).rejects.toMatchObject({
        constructor: PackDamagedError,
        detail: expect.stringMatching(/no pack magic at the end/),
      });
      expect(await verifyPack(store, last.packKey)).toMatchObject({
        packHashMatches: false,
        entries: null,
        indexProblem: expect.stringMatching(/truncated/),
      });
    });

    it('refuses an index whose checksum does not match, and a pack whose footer does not add up', async () => {
      const locations = await writeAll(new PackWriter(store), mixedChunks(4));
      const { packKey } = locations[0]!;
      const pack = await harness.readRaw(packKey);
      const indexOffset = pack.length - PACK_FOOTER_BYTES - 4 * 48;
      const editedSize = Buffer.from(pack);
      editedSize.writeUInt32BE(editedSize.readUInt32BE(indexOffset + 40) + 1, indexOffset + 40); // entry 0's raw size
      await harness.writeRaw(packKey, editedSize);
      await expect(readPackIndex(store, packKey)).rejects.toMatchObject({ detail: 'index checksum mismatch' });
      expect(() => parsePack(packKey, editedSize)).toThrow(PackDamagedError);

      const editedCount = Buffer.from(pack);
      editedCount.writeUInt32BE(5, pack.length - PACK_FOOTER_BYTES);
      await harness.writeRaw(packKey, editedCount);
      await expect(readPackIndex(store, packKey)).rejects.toMatchObject({ detail: expect.stringMatching(/does not add up/) });
    });

    it('calls every chunk of a missing pack damaged, and has no index or verification for it', async () => {
      const [location] = await writeAll(new PackWriter(store), mixedChunks(1));
      await store.delete(location!.packKey);
      await expect(readChunk(store, location!)).rejects.toMatchObject({
        constructor: PackChunkDamagedError,
        problem: 'the pack is missing',
      });
      expect(await readPackIndex(store, location!.packKey)).toBeNull();
      expect(await verifyPack(store, location!.packKey)).toBeNull();
    });

    it('refuses a location asked for under another chunk hash', async () => {
      const [first, second] = await writeAll(new PackWriter(store), mixedChunks(2));
      await expect(readChunk(store, first!, second!.sha256)).rejects.toBeInstanceOf(PackChunkDamagedError);
    });
  });
}

describePackStore('disk', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-packs-'));
  const store = new DiskBlobStore(path.join(dir, 'blobs'));
  return {
    store,
    readRaw: (key) => readFile(store.pathOf(key)),
    writeRaw: (key, bytes) => writeFile(store.pathOf(key), bytes),
    async close() {
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('S3 packs on s3rver', () => {
  let s3: RunningS3rver;
  let admin: S3Client;

  beforeAll(async () => {
    s3 = await startS3rver();
    admin = new S3Client({
      region: s3.s3Config.region,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
  });

  afterAll(async () => {
    admin?.destroy();
    await s3?.close();
  });

  describePackStore('s3', async () => {
    const bucket = `cairn-${randomUUID()}`;
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    const store = new S3BlobStore({ ...s3.s3Config, bucket });
    return {
      store,
      async readRaw(key) {
        const response = await admin.send(new GetObjectCommand({ Bucket: bucket, Key: store.objectKeyOf(key) }));
        return Buffer.from(await response.Body!.transformToByteArray());
      },
      async writeRaw(key, bytes) {
        await admin.send(new PutObjectCommand({ Bucket: bucket, Key: store.objectKeyOf(key), Body: bytes }));
      },
      async close() {
        await store.close();
      },
    };
  });
});

describe('PackWriter', () => {
  let dir: string;
  let store: DiskBlobStore;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-pack-writer-'));
    store = new DiskBlobStore(path.join(dir, 'blobs'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps chunks in memory until a pack is stored, and a chunk added twice once', async () => {
    const writer = new PackWriter(store);
    const [a, b] = mixedChunks(2);
    expect(await writer.add(a!.sha256, a!.raw)).toEqual([]);
    expect(await writer.add(b!.sha256, b!.raw)).toEqual([]);
    expect(await writer.add(a!.sha256, a!.raw)).toEqual([]);
    expect(writer.has(a!.sha256)).toBe(true);
    expect(writer.openPackBytes).toBeGreaterThan(PACK_HEADER_BYTES + 2 * 48 + PACK_FOOTER_BYTES);
    const locations = await writer.flush();
    expect(locations.map((l) => l.sha256)).toEqual([a!.sha256, b!.sha256]);
    expect(writer.has(a!.sha256)).toBe(false);
    expect(writer.openPackBytes).toBe(0);
    expect(await writer.flush()).toEqual([]);
  });

  it('refuses a chunk whose bytes do not hash to its name, and adds nothing', async () => {
    const writer = new PackWriter(store);
    const [a, b] = mixedChunks(2);
    await expect(writer.add(a!.sha256, b!.raw)).rejects.toBeInstanceOf(HashMismatchError);
    expect(writer.has(a!.sha256)).toBe(false);
    expect(await writer.flush()).toEqual([]);
  });

  it('flushes before the target would be passed, and gives a chunk larger than the target a pack of its own', async () => {
    const writer = new PackWriter(store, { targetBytes: 64 * 1024 });
    const small = chunkOf(randomBytes(40 * 1024));
    const large = chunkOf(randomBytes(100 * 1024));
    expect(await writer.add(small.sha256, small.raw)).toEqual([]);
    // The small chunk's pack goes out before the large chunk would take it past the target...
    expect((await writer.add(large.sha256, large.raw)).map((l) => l.sha256)).toEqual([small.sha256]);
    // ...and the large one, alone in the open pack, goes out with the next chunk or the next flush.
    expect(writer.openPackBytes).toBeGreaterThan(64 * 1024);
    const [alone] = await writer.flush();
    expect(alone).toMatchObject({ sha256: large.sha256, offset: PACK_HEADER_BYTES });
    expect((await store.stat(alone!.packKey))?.size).toBe(PACK_HEADER_BYTES + 100 * 1024 + 48 + PACK_FOOTER_BYTES);
  });

  it('runs concurrent adds one at a time: every chunk is placed once', async () => {
    const writer = new PackWriter(store, { targetBytes: 128 * 1024 });
    const chunks = mixedChunks(40);
    const results = await Promise.all(chunks.map((chunk) => writer.add(chunk.sha256, chunk.raw)));
    const locations = [...results.flat(), ...(await writer.flush())];
    expect(locations.map((l) => l.sha256).sort()).toEqual(chunks.map((c) => c.sha256).sort());
    for (const location of locations) {
      const chunk = chunks.find((c) => c.sha256 === location.sha256)!;
      expect((await readChunk(store, location)).equals(chunk.raw)).toBe(true);
    }
  });

  it('keeps the open pack and refuses the new chunk when the put before it fails; a retry stores both', async () => {
    const root = path.join(dir, 'blocked');
    const blocked = new DiskBlobStore(root);
    const writer = new PackWriter(blocked, { targetBytes: 64 * 1024 });
    const [a, b] = [chunkOf(randomBytes(40 * 1024)), chunkOf(randomBytes(40 * 1024))];
    await writer.add(a.sha256, a.raw);
    await writeFile(root, 'not a directory');
    await expect(writer.add(b.sha256, b.raw)).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect([writer.has(a.sha256), writer.has(b.sha256)]).toEqual([true, false]);
    await rm(root);
    const [first] = await writer.add(b.sha256, b.raw);
    const [second] = await writer.flush();
    expect([first?.sha256, second?.sha256]).toEqual([a.sha256, b.sha256]);
    expect((await readChunk(blocked, first!)).equals(a.raw)).toBe(true);
    expect((await readChunk(blocked, second!)).equals(b.raw)).toBe(true);
  });

  it('keeps the open pack when its put fails, so a later flush stores it', async () => {
    // A file where the store wants its directories: every put fails with ENOTDIR until it is gone.
    const root = path.join(dir, 'blocked');
    await writeFile(root, 'not a directory');
    const blocked = new DiskBlobStore(root);
    const writer = new PackWriter(blocked);
    const [a] = mixedChunks(1);
    await writer.add(a!.sha256, a!.raw);
    await expect(writer.flush()).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect(writer.has(a!.sha256)).toBe(true);
    await rm(root);
    const [location] = await writer.flush();
    expect((await readChunk(blocked, location!)).equals(a!.raw)).toBe(true);
  });

  it('writes a pack that a put of the same bytes from a stream reproduces (the pack is named by its hash)', async () => {
    const [location] = await writeAll(new PackWriter(store), mixedChunks(1));
    const bytes = await readFile(store.pathOf(location!.packKey));
    expect(location!.packKey).toBe(`packs/${sha256(bytes)}`);
    await expect(store.put(location!.packKey, Readable.from([bytes]), sha256(bytes))).resolves.toEqual({
      key: location!.packKey,
      size: bytes.length,
    });
  });
});
