import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '@cairn/shared';
import { packKeyOf, type BlobInfo, type BlobStore } from '../../src/blob/blob-store.ts';
import { HashMismatchError, PayloadTooLargeError } from '../../src/errors.ts';

/** One store under test, plus the backend-specific views the contract needs to prove "nothing left behind". */
export interface BlobStoreHarness {
  store: BlobStore;
  /** Everything the backend physically holds (objects and temp leftovers; not empty directories). */
  rawEntries(): Promise<string[]>;
  /**
   * Plants what a put interrupted by a crash leaves behind, so `sweepTemp`
   * has something to remove. A string instead says why this backend cannot
   * be tested that way; the case is then skipped with that reason.
   */
  plantTempLeftover: (() => Promise<void>) | string;
  /** Set to the reason when the backend's test server cannot answer a ranged get of an empty object; that case is then skipped. */
  rangedEmptyObjectGap?: string;
  close(): Promise<void>;
}

/** Larger than S3BlobStore's single-PutObject threshold (8 MiB), with a partial last part. */
const LARGE_BYTES = 20 * 1024 * 1024 + 12_345;
/** Network-sized pieces, as an HTTP upload delivers them. */
const PIECE_BYTES = 64 * 1024;

function pieces(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += PIECE_BYTES) out.push(data.subarray(offset, offset + PIECE_BYTES));
  return out;
}

function sourceOf(data: Buffer): Readable {
  return Readable.from(pieces(data), { objectMode: false });
}

/** Yields `data`, then fails with `error`: a client that disconnects mid-upload. */
function failingSource(data: Buffer, error: Error): Readable {
  return Readable.from(
    (async function* () {
      yield* pieces(data);
      throw error;
    })(),
    { objectMode: false },
  );
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function listAll(store: BlobStore): Promise<BlobInfo[]> {
  const out: BlobInfo[] = [];
  for await (const info of store.list()) out.push(info);
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

function blob(size: number): { data: Buffer; key: string } {
  const data = randomBytes(size);
  return { data, key: sha256Hex(data) };
}

/**
 * The BlobStore contract (see blob-store.ts), run against every store.
 * A store that passes this suite is done.
 */
export function describeBlobStoreContract(name: string, makeHarness: () => Promise<BlobStoreHarness>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let harness: BlobStoreHarness;
    let store: BlobStore;

    beforeEach(async () => {
      harness = await makeHarness();
      store = harness.store;
    });

    afterEach(async () => {
      await harness.close();
    });

    async function expectNothingStored(key: string): Promise<void> {
      expect(await store.stat(key)).toBeNull();
      expect(await store.get(key)).toBeNull();
      expect(await listAll(store)).toEqual([]);
      expect(await harness.rawEntries()).toEqual([]);
    }

    it('check passes on a fresh store', async () => {
      await expect(store.check()).resolves.toBeUndefined();
    });

    for (const [label, size] of [
      ['an empty object', 0],
      ['a small object', 1000],
      ['a multi-MiB object above the S3 buffering threshold', LARGE_BYTES],
    ] as const) {
      it(`round-trips ${label} byte for byte`, async () => {
        const { data, key } = blob(size);
        expect(await store.put(key, sourceOf(data), key)).toEqual({ key, size });
        expect(await store.stat(key)).toEqual({ key, size });
        const stream = await store.get(key);
        expect(stream).not.toBeNull();
        const read = await readAll(stream as Readable);
        expect(read.length).toBe(size);
        expect(createHash('sha256').update(read).digest('hex')).toBe(key);
      });
    }

    for (const [label, size] of [
      ['small', 1000],
      ['large', LARGE_BYTES],
    ] as const) {
      it(`rejects a ${label} put whose bytes do not match the hash, leaving nothing`, async () => {
        const { data, key } = blob(size);
        const tampered = Buffer.from(data);
        tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 0xff;
        const error = await store.put(key, sourceOf(tampered), key).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(HashMismatchError);
        expect((error as HashMismatchError).expected).toBe(key);
        expect((error as HashMismatchError).actual).toBe(sha256Hex(tampered));
        await expectNothingStored(key);
      });

      it(`refuses a ${label} put over maxBytes with PayloadTooLargeError, leaving nothing`, async () => {
        const { data, key } = blob(size);
        await expect(store.put(key, sourceOf(data), key, { maxBytes: size - 1 })).rejects.toBeInstanceOf(
          PayloadTooLargeError,
        );
        await expectNothingStored(key);
      });

      it(`rethrows a ${label} source's error and stores nothing`, async () => {
        const { data, key } = blob(size);
        const failure = new Error('client went away');
        await expect(store.put(key, failingSource(data, failure), key)).rejects.toBe(failure);
        await expectNothingStored(key);
      });
    }

    it('shows every piece of a put to `observe`, in order, unchanged', async () => {
      const { data, key } = blob(3 * 1024 * 1024 + 17);
      const seen: Buffer[] = [];
      await store.put(key, sourceOf(data), key, { observe: (chunk) => seen.push(Buffer.from(chunk)) });
      expect(seen.length).toBeGreaterThan(1);
      expect(Buffer.concat(seen).equals(data)).toBe(true);
    });

    it('accepts a put of exactly maxBytes', async () => {
      const { data, key } = blob(1000);
      expect(await store.put(key, sourceOf(data), key, { maxBytes: 1000 })).toEqual({ key, size: 1000 });
    });

    it('returns null from get and stat for an absent key, and deletes an absent key without error', async () => {
      const { key } = blob(10);
      expect(await store.get(key)).toBeNull();
      expect(await store.stat(key)).toBeNull();
      await expect(store.delete(key)).resolves.toBeUndefined();
    });

    it('deletes a stored object', async () => {
      const { data, key } = blob(1000);
      await store.put(key, sourceOf(data), key);
      await store.delete(key);
      await expectNothingStored(key);
    });

    it('accepts putting the same key twice and keeps one intact object', async () => {
      const { data, key } = blob(1000);
      await store.put(key, sourceOf(data), key);
      await store.put(key, sourceOf(data), key);
      expect(await listAll(store)).toEqual([{ key, size: 1000 }]);
      expect((await readAll((await store.get(key)) as Readable)).equals(data)).toBe(true);
    });

    it('lets concurrent puts of the same key both succeed, leaving one intact object', async () => {
      const { data, key } = blob(LARGE_BYTES);
      const results = await Promise.all([store.put(key, sourceOf(data), key), store.put(key, sourceOf(data), key)]);
      expect(results).toEqual([
        { key, size: LARGE_BYTES },
        { key, size: LARGE_BYTES },
      ]);
      expect(await listAll(store)).toEqual([{ key, size: LARGE_BYTES }]);
      expect((await readAll((await store.get(key)) as Readable)).equals(data)).toBe(true);
    });

    it('lists exactly what is stored', async () => {
      const blobs = [blob(0), blob(1), blob(5000), blob(70_000)];
      for (const { data, key } of blobs) await store.put(key, sourceOf(data), key);
      const [deleted] = blobs;
      await store.delete(deleted!.key);
      const expected = blobs
        .slice(1)
        .map(({ data, key }) => ({ key, size: data.length }))
        .sort((a, b) => a.key.localeCompare(b.key));
      expect(await listAll(store)).toEqual(expected);
    });

    it('rejects a key that is not a lower-case hex SHA-256', async () => {
      const data = Buffer.from('x');
      await expect(store.put('../../etc/passwd', sourceOf(data), sha256Hex(data))).rejects.toThrow(/SHA-256/);
      await expect(store.get('ABC')).rejects.toThrow(/SHA-256/);
    });

    describe('ranged get', () => {
      const size = 5000;
      let data: Buffer;
      let key: string;

      beforeEach(async () => {
        ({ data, key } = blob(size));
        await store.put(key, sourceOf(data), key);
      });

      async function readRange(start: number, end: number): Promise<Buffer | null> {
        const stream = await store.get(key, { start, end });
        return stream === null ? null : readAll(stream);
      }

      for (const [label, start, end] of [
        ['at the start', 0, 100],
        ['in the middle', 1234, 4321],
        ['at the end', size - 77, size],
        ['of one byte', 4999, 5000],
        ['of the whole object', 0, size],
      ] as const) {
        it(`returns exactly the bytes of a range ${label}`, async () => {
          const read = await readRange(start, end);
          expect(read?.equals(data.subarray(start, end))).toBe(true);
        });
      }

      it('cuts a range that reaches past the end at the end', async () => {
        expect((await readRange(4900, 9000))?.equals(data.subarray(4900))).toBe(true);
      });

      it('returns no bytes for a range that starts at or past the end', async () => {
        expect(await readRange(size, size + 10)).toEqual(Buffer.alloc(0));
        expect(await readRange(size + 100, size + 200)).toEqual(Buffer.alloc(0));
      });

      it('returns no bytes for a zero-length range', async () => {
        expect(await readRange(0, 0)).toEqual(Buffer.alloc(0));
        expect(await readRange(2500, 2500)).toEqual(Buffer.alloc(0));
      });

      it('returns no bytes for any range of an empty object', async (ctx) => {
        const gap = harness.rangedEmptyObjectGap;
        if (gap !== undefined) {
          console.info(`[${name}] ranged get of an empty object skipped: ${gap}`);
          ctx.skip(gap);
          return;
        }
        const empty = blob(0);
        await store.put(empty.key, sourceOf(empty.data), empty.key);
        const stream = await store.get(empty.key, { start: 0, end: 10 });
        expect(stream).not.toBeNull();
        expect(await readAll(stream as Readable)).toEqual(Buffer.alloc(0));
      });

      it('returns null for any range of an absent key, zero-length included', async () => {
        const absent = blob(10).key;
        expect(await store.get(absent, { start: 0, end: 10 })).toBeNull();
        expect(await store.get(absent, { start: 5, end: 5 })).toBeNull();
      });

      it('throws RangeError for a range that is not 0 <= start <= end', async () => {
        for (const range of [
          { start: 10, end: 5 },
          { start: -1, end: 5 },
          { start: 0.5, end: 5 },
        ]) {
          await expect(store.get(key, range)).rejects.toBeInstanceOf(RangeError);
        }
      });
    });

    describe('pack keys', () => {
      it('stores, reads by range, lists and deletes a pack under packs/<sha256>, beside whole-content objects', async () => {
        const plain = blob(1000);
        const pack = blob(70_000);
        const packKey = packKeyOf(pack.key);
        await store.put(plain.key, sourceOf(plain.data), plain.key);
        expect(await store.put(packKey, sourceOf(pack.data), pack.key)).toEqual({ key: packKey, size: 70_000 });
        expect(await store.stat(packKey)).toEqual({ key: packKey, size: 70_000 });
        // A pack and a whole-content object are different objects even when named by the same hash.
        expect(await store.stat(pack.key)).toBeNull();
        const range = await store.get(packKey, { start: 60_000, end: 60_100 });
        expect((await readAll(range as Readable)).equals(pack.data.subarray(60_000, 60_100))).toBe(true);
        expect(await listAll(store)).toEqual(
          [
            { key: plain.key, size: 1000 },
            { key: packKey, size: 70_000 },
          ].sort((a, b) => a.key.localeCompare(b.key)),
        );
        await store.delete(packKey);
        expect(await store.get(packKey)).toBeNull();
        expect(await listAll(store)).toEqual([{ key: plain.key, size: 1000 }]);
      });

      it('rejects a pack whose bytes do not hash to its name, leaving nothing', async () => {
        const pack = blob(1000);
        const tampered = Buffer.from(pack.data);
        tampered[0] = (tampered[0] ?? 0) ^ 1;
        await expect(store.put(packKeyOf(pack.key), sourceOf(tampered), pack.key)).rejects.toBeInstanceOf(
          HashMismatchError,
        );
        await expectNothingStored(packKeyOf(pack.key));
      });

      it('rejects keys that only look like pack keys', async () => {
        const { key } = blob(10);
        for (const bad of [`packs/${key.toUpperCase()}`, `packs/../${key}`, `packs/${key}/x`, `pack/${key}`]) {
          await expect(store.get(bad)).rejects.toThrow(/SHA-256/);
        }
      });
    });

    for (const [label, size] of [
      ['small', 1000],
      ['large', LARGE_BYTES],
    ] as const) {
      it(`never shows a reader a partial ${label} object while its put is in progress`, async () => {
        const { data, key } = blob(size);
        const half = Math.floor(size / 2);
        const seenMidway: unknown[] = [];
        // The store pulls the second half only after these reads ran: no timing involved.
        const source = Readable.from(
          (async function* () {
            yield* pieces(data.subarray(0, half));
            seenMidway.push(await store.stat(key), await store.get(key), await listAll(store));
            yield* pieces(data.subarray(half));
          })(),
          { objectMode: false },
        );
        await store.put(key, source, key);
        expect(seenMidway).toEqual([null, null, []]);
        expect((await readAll((await store.get(key)) as Readable)).equals(data)).toBe(true);
      });
    }

    it('sweepTemp removes leftovers of interrupted puts and keeps stored objects', async (ctx) => {
      const plant = harness.plantTempLeftover;
      if (typeof plant === 'string') {
        console.info(`[${name}] sweepTemp case skipped: ${plant}`);
        ctx.skip(plant);
        return;
      }
      const { data, key } = blob(1000);
      await store.put(key, sourceOf(data), key);
      await plant();
      expect((await harness.rawEntries()).length).toBe(2);
      expect(await listAll(store)).toEqual([{ key, size: 1000 }]);
      expect(await store.sweepTemp(0)).toBe(1);
      expect((await harness.rawEntries()).length).toBe(1);
      expect(await listAll(store)).toEqual([{ key, size: 1000 }]);
      expect(await store.sweepTemp(0)).toBe(0);
    });
  });
}
