import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHUNKING_THRESHOLD_BYTES, DEFAULT_CHUNKER_PARAMS, decodeAssembleRecords, encodeAssembleRecord, splitIntoChunks } from '@cairn/shared';
import { assembleBatches } from '../../src/backup/change-detector.ts';
import { ChunkingHasher, ChunkList, assembleRecordBytes, assembleRecordPieces } from '../../src/backup/chunk-list.ts';
import { READ_BYTES, hashFile } from '../../src/backup/file-hasher.ts';

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** What the shared chunker cuts from `data`, each chunk hashed: the reference the agent must match. */
async function referenceChunks(data: Buffer): Promise<{ sha256: string; size: number }[]> {
  const chunks: { sha256: string; size: number }[] = [];
  for await (const chunk of splitIntoChunks([data], DEFAULT_CHUNKER_PARAMS)) chunks.push({ sha256: sha256(chunk), size: chunk.length });
  return chunks;
}

function listed(list: ChunkList): { sha256: string; size: number }[] {
  return [...list.entries()].map(({ sha256: hash, size }) => ({ sha256: hash, size }));
}

/** Dump-like text with a few random bytes, so there are content-defined cuts and no two runs are the same. */
function dumpLike(bytes: number): Buffer {
  const lines: string[] = [];
  let total = 0;
  for (let i = 0; total < bytes; i += 1) {
    const line = `INSERT INTO orders VALUES (${i}, '${randomBytes(6).toString('hex')}', ${(i * 7919) % 100000}, 'note ${i % 97}');\n`;
    lines.push(line);
    total += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

describe('ChunkingHasher', () => {
  it('gives the shared chunker cuts, each chunk hashed, however the bytes are fed', async () => {
    const data = dumpLike(4 * 1024 * 1024);
    const expected = await referenceChunks(data);
    expect(expected.length).toBeGreaterThan(20);
    for (const pieceSize of [1, 777, 8192, 65_536, data.length]) {
      const hasher = new ChunkingHasher();
      // One reused buffer, as the file hasher reads: nothing of a piece may be kept after update().
      const scratch = Buffer.alloc(pieceSize);
      for (let at = 0; at < data.length; at += pieceSize) {
        const n = data.copy(scratch, 0, at, Math.min(at + pieceSize, data.length));
        hasher.update(scratch.subarray(0, n));
        scratch.fill(0xee);
      }
      expect(listed(hasher.final() as ChunkList), `pieces of ${pieceSize}`).toEqual(expected);
    }
  });

  it('gives up past maxChunks (what one assemble record may list): such a file is sent whole', async () => {
    const data = dumpLike(4 * 1024 * 1024);
    const count = (await referenceChunks(data)).length;
    const exact = new ChunkingHasher(count);
    exact.update(data.subarray(0, 2_000_000));
    exact.update(data.subarray(2_000_000));
    expect(exact.final()?.count).toBe(count);
    const under = new ChunkingHasher(count - 1);
    under.update(data.subarray(0, 2_000_000));
    under.update(data.subarray(2_000_000));
    expect(under.final()).toBeNull();
  });

  it('lists offsets that tile the content, and a list grows past its first allocation', async () => {
    const data = randomBytes(24 * 1024 * 1024);
    const hasher = new ChunkingHasher();
    hasher.update(data);
    const list = hasher.final() as ChunkList;
    expect(list.count).toBeGreaterThan(64);
    let offset = 0;
    for (const chunk of list.entries()) {
      expect(chunk.offset).toBe(offset);
      expect(chunk.sha256).toBe(sha256(data.subarray(chunk.offset, chunk.offset + chunk.size)));
      offset += chunk.size;
    }
    expect(offset).toBe(data.length);
    expect(list.hashBytes(1, 3)).toEqual(Buffer.from(list.sha256(1) + list.sha256(2), 'hex'));
  });
});

describe('assemble records', () => {
  it('are the bytes encodeAssembleRecord makes, and decode back to the list', async () => {
    const data = dumpLike(200 * 1024);
    const hasher = new ChunkingHasher();
    hasher.update(data);
    const list = hasher.final() as ChunkList;
    const record = { sha256: sha256(data), size: data.length, chunks: [...list.entries()].map((c) => c.sha256) };
    const pieces = assembleRecordPieces(record.sha256, record.size, list);
    expect(Buffer.concat(pieces)).toEqual(encodeAssembleRecord(record));
    expect(assembleRecordBytes(list)).toBe(encodeAssembleRecord(record).length);
    const decoded = [];
    async function* stream(): AsyncGenerator<Uint8Array> {
      yield* [...pieces, ...pieces];
    }
    for await (const r of decodeAssembleRecords(stream())) decoded.push(r);
    expect(decoded).toEqual([record, record]);
  });

  it('are batched by bytes, in order; a record past the bound travels alone', () => {
    const sizes = [100, 300, 500, 2000, 50, 50];
    expect(assembleBatches(sizes, (s) => s, 1000)).toEqual([[100, 300, 500], [2000], [50, 50]]);
    expect(assembleBatches([], (s: number) => s, 1000)).toEqual([]);
  });
});

describe('hashFile and chunks', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-chunk-hash-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(`a file of ${CHUNKING_THRESHOLD_BYTES} bytes is one chunk (no list); one byte more is cut`, async () => {
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    const small = path.join(dir, 'small');
    const data = randomBytes(CHUNKING_THRESHOLD_BYTES + 1);
    await writeFile(small, data.subarray(0, CHUNKING_THRESHOLD_BYTES));
    expect((await hashFile(small, buffer)).chunks).toBeUndefined();
    const large = path.join(dir, 'large');
    await writeFile(large, data);
    const hashed = await hashFile(large, buffer);
    expect(hashed.sha256).toBe(sha256(data));
    expect(listed(hashed.chunks as ChunkList)).toEqual(await referenceChunks(data));
  });

  it('a large file read in 1 MiB pieces has the chunks of its whole bytes; an append shares all but the last chunks', async () => {
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    const file = path.join(dir, 'dump.sql');
    const data = dumpLike(5 * 1024 * 1024 + 123);
    await writeFile(file, data);
    const first = await hashFile(file, buffer);
    expect(listed(first.chunks as ChunkList)).toEqual(await referenceChunks(data));
    await appendFile(file, 'INSERT INTO orders VALUES (-1, \'appended\', 0, \'x\');\n');
    const second = await hashFile(file, buffer);
    const before = new Set(listed(first.chunks as ChunkList).map((c) => c.sha256));
    const fresh = listed(second.chunks as ChunkList).filter((c) => !before.has(c.sha256));
    expect(fresh.length).toBeGreaterThan(0);
    expect(fresh.length).toBeLessThanOrEqual(2);
  });
});
