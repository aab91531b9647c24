/**
 * Delta chunks (decision 171) through the real agent API, on both database
 * kinds: a new version uploaded with the hint naming its file's previous
 * version is stored as deltas against that version's chunks, reads back
 * byte-identical (download, verify job), takes a fraction of the pack bytes,
 * and keeps its bases from GC; a hint naming content the uploader does not
 * hold is ignored; a damaged base makes the delta read as damaged, and the
 * next upload of the bytes heals it.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq, inArray, sql } from 'drizzle-orm';
import { chunkLengths, DEFAULT_CHUNKER_PARAMS, encodeAssembleRecord, partFilename, sha256Hex } from '@cairn/shared';
import { chunks, contentChunks, packs } from '../../src/db/schema.ts';
import type { DiskBlobStore } from '../../src/blob/disk-blob-store.ts';
import { rowsOf } from '../../src/db/database.ts';
import { collectGarbage } from '../../src/services/garbage-collector.ts';
import { runVerify } from '../../src/storage/verify-job.ts';
import { CHUNK_CODECS } from '../../src/storage/chunk-codec.ts';
import { addUser, callApi, download, fileUpsert, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { startS3rver, type RunningS3rver } from '../helpers/s3rver.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

/** A dump-like text of `rows` rows; `edited` rows get other values (same place, other bytes). */
function dump(rows: number, edited: ReadonlySet<number> = new Set(), tag = 'v2'): Buffer {
  const lines: string[] = [];
  for (let i = 0; i < rows; i += 1) {
    const value = edited.has(i) ? `${tag}-${(i * 104_729) % 1_000_003}-changed` : `${(i * 7919) % 100_003}`;
    lines.push(`${i}\tcustomer-${(i * 31) % 977}\t${value}\t2026-12-01 10:${String(i % 60).padStart(2, '0')}:00+00\n`);
  }
  return Buffer.from(lines.join(''));
}

/** `file` cut as the agent cuts it, each chunk with its offset. */
function chunksOf(file: Buffer): { offset: number; bytes: Buffer }[] {
  const out: { offset: number; bytes: Buffer }[] = [];
  let offset = 0;
  for (const length of chunkLengths(file, DEFAULT_CHUNKER_PARAMS)) {
    out.push({ offset, bytes: file.subarray(offset, offset + length) });
    offset += length;
  }
  return out;
}

/** Every 100th row edited: 1% scattered, as S6 does in a day. */
const scattered = (rows: number) => new Set(Array.from({ length: Math.floor(rows / 100) }, (_, k) => k * 100 + 37));

/** Uploads `data` as one part whose filename names `previous` as the content it resembles, at offset 0 (the agent's hint). */
function uploadHinted(h: Harness, token: string, data: Buffer, previous: Buffer) {
  return upload(h, token, [{ name: sha256Hex(data), data, filename: partFilename(sha256Hex(data), { sha256: sha256Hex(previous), offset: 0 }) }]);
}

let s3: RunningS3rver | undefined;
beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(async () => {
  await s3?.close();
});

describe.each(testDatabaseKinds())('delta chunks (%s)', (kind) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(kind);
  });
  afterAll(() => h?.close());

  const db = () => h.ctx.database.db;
  const packBytes = async () => Number((await db().select({ n: sql<string>`coalesce(sum(${packs.bytes}), 0)` }).from(packs))[0]!.n);
  const chunksOfContent = async (sha256: string) =>
    (await db().select({ sha: contentChunks.chunkSha256 }).from(contentChunks).where(eq(contentChunks.contentSha256, sha256))).map((r) => r.sha);
  const chunkRows = async (hashes: string[]) => db().select().from(chunks).where(inArray(chunks.sha256, hashes));

  it('stores an edited version as deltas against the previous one, reads it back whole, and verifies it', async () => {
    const user = await addUser(h, 'delta-owner');
    const agent = await registerAgent(h, user, 'delta-box');
    const v1 = dump(40_000);
    const v2 = dump(40_000, scattered(40_000));
    expect((await upload(h, agent.token, [v1])).status).toBe(200);
    const afterV1 = await packBytes();

    const hinted = await uploadHinted(h, agent.token, v2, v1);
    expect(hinted.status).toBe(200);
    expect(hinted.body.results).toEqual([{ sha256: sha256Hex(v2), size: v2.length, status: 'stored' }]);
    const v2Bytes = (await packBytes()) - afterV1;

    const v2Chunks = await chunksOfContent(sha256Hex(v2));
    const v1Chunks = new Set(await chunksOfContent(sha256Hex(v1)));
    const rows = await chunkRows(v2Chunks.filter((c) => !v1Chunks.has(c)));
    const deltas = rows.filter((r) => r.codec === CHUNK_CODECS.delta);
    expect(rows.length).toBeGreaterThan(0);
    // Nearly every changed chunk is a delta against a chunk of v1, stored whole.
    expect(deltas.length).toBeGreaterThanOrEqual(rows.length * 0.8);
    for (const row of deltas) expect(v1Chunks.has(row.baseSha256!)).toBe(true);
    // v1's first pack held the whole (compressed) file; v2's deltas a small part of that.
    expect(v2Bytes).toBeLessThan(afterV1 / 4);

    const got = await download(h, agent.token, sha256Hex(v2));
    expect(got.status).toBe(200);
    expect(got.bytes.equals(v2)).toBe(true);
    const verified = await runVerify(h.ctx, 'manual');
    expect(verified.damagedChunks).toBe(0);
    expect(verified.chunksChecked).toBeGreaterThanOrEqual(v2Chunks.length);
  });

  it('finds the right base when rows removed early in the file shift every later chunk by most of a chunk', async () => {
    // Decision 197: the old chunk at the same offset is the wrong one once the file shifted by more than half a
    // chunk; a probe of the new chunk's bytes in the old chunks around that place finds the one it came from.
    const user = await addUser(h, 'delta-shifted');
    const agent = await registerAgent(h, user, 'shifted-box');
    const rows = 80_000;
    const v1 = dump(rows, new Set(), 'sh1');
    const edited = dump(rows, scattered(rows), 'sh2');
    const cutFrom = edited.indexOf('\n3000\t') + 1;
    const cutTo = edited.indexOf('\n4000\t') + 1;
    const v2 = Buffer.concat([edited.subarray(0, cutFrom), edited.subarray(cutTo)]);
    expect(cutTo - cutFrom).toBeGreaterThan(40_000);
    expect((await upload(h, agent.token, [v1])).status).toBe(200);
    expect((await uploadHinted(h, agent.token, v2, v1)).status).toBe(200);

    const v1Chunks = new Set(await chunksOfContent(sha256Hex(v1)));
    const v2Chunks = await chunksOfContent(sha256Hex(v2));
    const changed = await chunkRows(v2Chunks.filter((c) => !v1Chunks.has(c)));
    const deltas = changed.filter((r) => r.codec === CHUNK_CODECS.delta);
    expect(changed.length).toBeGreaterThan(40);
    expect(deltas.length).toBeGreaterThanOrEqual(changed.length * 0.8);
    const got = await download(h, agent.token, sha256Hex(v2));
    expect(got.bytes.equals(v2)).toBe(true);
  });

  it('finds the bases again after a block removed in the middle shifts the rest by several chunks, across the agent’s requests', async () => {
    // A shift larger than the near search (two chunks each side) is found by the wide search after a miss, and
    // the next request for the same file starts from the shift the previous one noted (decision 197).
    const user = await addUser(h, 'delta-jump');
    const agent = await registerAgent(h, user, 'jump-box');
    const rows = 120_000;
    const v1 = dump(rows, new Set(), 'jp1');
    const edited = dump(rows, scattered(rows), 'jp2');
    const cutFrom = edited.indexOf('\n20000\t') + 1;
    const cutTo = edited.indexOf('\n25000\t') + 1;
    const v2 = Buffer.concat([edited.subarray(0, cutFrom), edited.subarray(cutTo)]);
    expect(cutTo - cutFrom).toBeGreaterThan(3 * 64 * 1024);
    expect((await upload(h, agent.token, [v1])).status).toBe(200);
    const v1Hashes = new Set(chunksOf(v1).map((c) => sha256Hex(c.bytes)));
    const parts = chunksOf(v2)
      .filter((c) => !v1Hashes.has(sha256Hex(c.bytes)))
      .map((c) => ({ name: sha256Hex(c.bytes), data: c.bytes, offset: c.offset, filename: partFilename(sha256Hex(c.bytes), { sha256: sha256Hex(v1), offset: c.offset }) }));
    const split = parts.findIndex((p) => p.offset > v2.length / 2);
    expect((await upload(h, agent.token, parts.slice(0, split))).status).toBe(200);
    expect((await upload(h, agent.token, parts.slice(split))).status).toBe(200);

    const rowsOfParts = await chunkRows(parts.map((p) => p.name));
    const deltas = rowsOfParts.filter((r) => r.codec === CHUNK_CODECS.delta);
    expect(parts.length).toBeGreaterThan(60);
    expect(deltas.length).toBeGreaterThanOrEqual(parts.length * 0.85);
  });

  it('the agent’s way (each chunk a hinted part, then assemble): a constant number of queries and runs of reads for the bases, not one each per chunk', async () => {
    const user = await addUser(h, 'delta-assembler');
    const agent = await registerAgent(h, user, 'assembler-box');
    const v1 = dump(60_000, new Set(), 'as1');
    const v2 = dump(60_000, scattered(60_000), 'as2');
    const assemble = (file: Buffer) =>
      callApi<{ results: unknown[] }>(h, 'POST', '/contents/assemble', {
        token: agent.token,
        body: encodeAssembleRecord({ sha256: sha256Hex(file), size: file.length, chunks: chunksOf(file).map((c) => sha256Hex(c.bytes)) }),
        headers: { 'content-type': 'application/octet-stream' },
      });
    expect((await upload(h, agent.token, chunksOf(v1).map((c) => c.bytes))).status).toBe(200);
    expect((await assemble(v1)).status).toBe(200);

    // Every statement the server sends through the pool's `execute` while v2 goes in is counted.
    const database = db();
    const original = database.execute.bind(database);
    let statements = 0;
    database.execute = ((query: Parameters<typeof original>[0]) => {
      statements += 1;
      return original(query);
    }) as typeof database.execute;
    // And every read of the store.
    const blobs = h.ctx.blobs;
    const get = blobs.get.bind(blobs);
    let reads = 0;
    blobs.get = ((...args: Parameters<typeof get>) => {
      reads += 1;
      return get(...args);
    }) as typeof blobs.get;
    const v1Hashes = new Set(chunksOf(v1).map((c) => sha256Hex(c.bytes)));
    const changed = chunksOf(v2).filter((c) => !v1Hashes.has(sha256Hex(c.bytes)));
    let uploadStatements: number;
    let assembleStatements: number;
    let uploadReads: number;
    let assembleReads: number;
    let downloadStatements: number;
    let downloadReads: number;
    try {
      const parts = changed.map((c) => ({
        name: sha256Hex(c.bytes),
        data: c.bytes,
        filename: partFilename(sha256Hex(c.bytes), { sha256: sha256Hex(v1), offset: c.offset }),
      }));
      expect((await upload(h, agent.token, parts)).status).toBe(200);
      uploadStatements = statements;
      uploadReads = reads;
      statements = 0;
      reads = 0;
      expect((await assemble(v2)).status).toBe(200);
      assembleStatements = statements;
      assembleReads = reads;
      statements = 0;
      reads = 0;
      const got = await download(h, agent.token, sha256Hex(v2));
      expect(got.bytes.equals(v2)).toBe(true);
      downloadStatements = statements;
      downloadReads = reads;
    } finally {
      database.execute = original;
      blobs.get = get;
    }
    const deltas = (await chunkRows(changed.map((c) => sha256Hex(c.bytes)))).filter((r) => r.codec === CHUNK_CODECS.delta);
    expect(deltas.length).toBeGreaterThanOrEqual(20);
    // Before decision 187: two statements per delta on upload (the candidate's row, the base's location) and
    // one per delta in assemble's read-back (the base's location).
    expect(uploadStatements).toBeLessThan(10);
    expect(assembleStatements).toBeLessThan(10);
    // And a read of the store per base: now bases lying together in a pack are read ahead in runs.
    expect(uploadReads).toBeLessThan(deltas.length / 3);
    expect(assembleReads).toBeLessThan(deltas.length / 3);
    // A download reads the same way.
    expect(downloadStatements).toBeLessThan(10);
    expect(downloadReads).toBeLessThan(deltas.length / 3);
  });

  it('ignores a hint naming content the uploader does not hold, and answers exactly as without one', async () => {
    const owner = await addUser(h, 'delta-holder');
    const other = await addUser(h, 'delta-stranger');
    const a = await registerAgent(h, owner, 'holder-box');
    const b = await registerAgent(h, other, 'stranger-box');
    const base = dump(30_000, new Set(), 'holder');
    const edited = dump(30_000, scattered(30_000), 'stranger');
    expect((await upload(h, a.token, [base])).status).toBe(200);
    const answer = await uploadHinted(h, b.token, edited, base);
    expect(answer.status).toBe(200);
    expect(answer.body.results).toEqual([{ sha256: sha256Hex(edited), size: edited.length, status: 'stored' }]);
    const rows = await chunkRows(await chunksOfContent(sha256Hex(edited)));
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.filter((r) => r.codec === CHUNK_CODECS.delta)).toEqual([]);
    // A malformed hint is no hint either.
    const third = dump(1000, new Set([1]), 'malformed');
    const odd = await upload(h, b.token, [{ name: sha256Hex(third), data: third, filename: `${sha256Hex(third)}.similar.nothex.12` }]);
    expect(odd.status).toBe(200);
  });

  it('GC keeps a base while a delta names it, and a damaged base shows as the delta’s damage until the bytes are sent again', async () => {
    const user = await addUser(h, 'delta-gc');
    const agent = await registerAgent(h, user, 'gc-box');
    const v1 = dump(20_000, new Set(), 'gc1');
    const v2 = dump(20_000, scattered(20_000), 'gc2');
    expect((await upload(h, agent.token, [v1])).status).toBe(200);
    expect((await uploadHinted(h, agent.token, v2, v1)).status).toBe(200);
    // Only v2 is backed up as a file: v1's content goes, its chunks that v2's deltas need stay.
    const post = <T>(path: string, json: unknown) => callApi<T>(h, 'POST', path, { token: agent.token, json });
    const run = (await post<{ runId: string }>('/runs', {})).body.runId;
    expect((await post(`/runs/${run}/changes`, { upserts: [fileUpsert('/dump.sql', v2)], deletes: [] })).status).toBe(200);
    const v2Chunks = await chunksOfContent(sha256Hex(v2));
    const bases = [...new Set((await chunkRows(v2Chunks)).flatMap((r) => (r.baseSha256 ? [r.baseSha256] : [])))];
    expect(bases.length).toBeGreaterThan(0);
    await collectGarbage(h.ctx, { graceSeconds: 0 });
    await collectGarbage(h.ctx, { graceSeconds: 0 });
    expect((await chunkRows(bases)).length).toBe(bases.length);
    const got = await download(h, agent.token, sha256Hex(v2));
    expect(got.bytes.equals(v2)).toBe(true);

    // Damage one base's stored bytes in its pack: the verify job finds the deltas against it damaged too.
    const [victim] = rowsOf<{ sha256: string; key: string; offset: number; length: number }>(
      await db().execute(sql`
        select encode(c.sha256, 'hex') as sha256, 'packs/' || encode(p.sha256, 'hex') as key, c.pack_offset as offset, c.stored_length as length
        from chunks c join packs p on p.id = c.pack_id where c.sha256 = decode(${bases[0]}, 'hex')`),
    );
    const file = (h.ctx.blobs as DiskBlobStore).pathOf(victim!.key);
    const bytes = await readFile(file);
    bytes[Number(victim!.offset) + 3]! ^= 0xff;
    await writeFile(file, bytes);
    const verified = await runVerify(h.ctx, 'manual');
    expect(verified.damagedChunks).toBeGreaterThanOrEqual(2);
    const missing = await post<{ missing: string[] }>('/contents/missing', { hashes: [sha256Hex(v2)] });
    expect(missing.body.missing).toEqual([sha256Hex(v2)]);

    // The agent sends v2 again (its hint now leads to a damaged base): stored whole, and it reads back.
    const again = await uploadHinted(h, agent.token, v2, v1);
    expect(again.status).toBe(200);
    expect((await post<{ missing: string[] }>('/contents/missing', { hashes: [sha256Hex(v2)] })).body.missing).toEqual([]);
    expect((await download(h, agent.token, sha256Hex(v2))).bytes.equals(v2)).toBe(true);
  });
});

describe('delta chunks on the S3 store (s3rver, embedded)', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('embedded', s3!.env);
  });
  afterAll(() => h?.close());

  it('stores the edited version as deltas in packs on S3 and reads it back byte-identical, verified', async () => {
    const user = await addUser(h, 'delta-s3');
    const agent = await registerAgent(h, user, 'delta-s3-box');
    const v1 = dump(30_000, new Set(), 's3a');
    const v2 = dump(30_000, scattered(30_000), 's3b');
    expect((await upload(h, agent.token, [v1])).status).toBe(200);
    expect((await uploadHinted(h, agent.token, v2, v1)).status).toBe(200);
    const rows = rowsOf<{ n: string }>(await h.ctx.database.db.execute(sql`select count(*)::text as n from chunks where codec = ${CHUNK_CODECS.delta}`));
    expect(Number(rows[0]?.n)).toBeGreaterThan(0);
    const got = await download(h, agent.token, sha256Hex(v2));
    expect(got.status).toBe(200);
    expect(got.bytes.equals(v2)).toBe(true);
    expect((await runVerify(h.ctx, 'manual')).damagedChunks).toBe(0);
  });
});
