/**
 * v1 whole-content objects move into packs (decision 133), through the real
 * server, PostgreSQL and disk store: data written the way v1 wrote it (an
 * object keyed by its hash, a chunk row without a pack, the owner, a
 * version) stays readable, then the job moves it (small objects as one
 * chunk, large ones cut into chunks with a contents row), stopping part way
 * and resuming loses nothing, every version still restores byte-identical,
 * and GC deletes the old objects only once they are unnamed for its grace.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq, isNull, sql } from 'drizzle-orm';
import { sha256Hex } from '@cairn/shared';
import { chunks, contents, ownerContents } from '../../src/db/schema.ts';
import { collectGarbage } from '../../src/services/garbage-collector.ts';
import { migrateV1Objects } from '../../src/storage/v1-migration-job.ts';
import { addUser, callApi, download, fileUpsert, registerAgent, startHarness, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

describe.each(testDatabaseKinds())('v1 objects into packs (%s)', (kind) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(kind);
  });
  afterAll(() => h?.close());

  it('moves small and large v1 objects into packs; every version reads the same before, during and after; GC then frees the old objects', async () => {
    const user = await addUser(h, 'v1-user');
    const agent = await registerAgent(h, user, 'v1-box');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 12; i++) files[`/v1/small-${i}.txt`] = Buffer.from(`a small v1 file number ${i}\n`.repeat(i + 1));
    files['/v1/large.bin'] = randomBytes(1_200_000);
    files['/v1/dump.sql'] = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `insert into t values (${i}, 'row ${i}');\n`).join(''));
    // As v1 wrote them: one object per content under its hash, a chunk row with no pack, the uploader as holder.
    for (const bytes of Object.values(files)) {
      const sha = sha256Hex(bytes);
      await h.blobs.put(sha, Readable.from([bytes]), sha);
      await h.ctx.database.db.insert(chunks).values({ sha256: sha, size: bytes.length }).onConflictDoNothing();
      await h.ctx.database.db.insert(ownerContents).values({ contentSha256: sha, userId: user.id }).onConflictDoNothing();
    }
    const post = <T = Record<string, unknown>>(route: string, json: unknown) => callApi<T>(h, 'POST', route, { token: agent.token, json });
    const run = (await post<{ runId: string }>('/runs', {})).body.runId;
    expect((await post(`/runs/${run}/changes`, { upserts: Object.entries(files).map(([p, data]) => fileUpsert(p, data)), deletes: [] })).status).toBe(200);
    const readAll = async () => {
      for (const [p, bytes] of Object.entries(files)) {
        const got = await download(h, agent.token, sha256Hex(bytes));
        expect(got.status, p).toBe(200);
        expect(got.bytes.equals(bytes), p).toBe(true);
      }
    };
    await readAll();

    // Stopped after five objects (as a killed job would be), then resumed.
    const first = await migrateV1Objects(h.ctx, { limit: 5 });
    expect(first).toMatchObject({ ran: true, moved: 5, damaged: 0, remaining: 9 });
    await readAll();
    const rest = await migrateV1Objects(h.ctx);
    expect(rest).toMatchObject({ moved: 9, remaining: 0 });
    expect(await h.ctx.database.db.select().from(chunks).where(isNull(chunks.packId))).toEqual([]);
    // The large ones are contents of several chunks now; the small ones are one chunk each, same hash.
    const [large] = await h.ctx.database.db.select().from(contents).where(eq(contents.sha256, sha256Hex(files['/v1/large.bin']!)));
    expect(large!.chunkCount).toBeGreaterThan(1);
    const [dump] = await h.ctx.database.db.select().from(contents).where(eq(contents.sha256, sha256Hex(files['/v1/dump.sql']!)));
    expect(dump!.chunkCount).toBeGreaterThan(1);
    await readAll();
    // The old objects stay until GC has seen them unnamed for its grace period (here 0, but two runs).
    expect(await h.blobs.stat(sha256Hex(files['/v1/small-0.txt']!))).not.toBeNull();
    await collectGarbage(h.ctx, { graceSeconds: 0 });
    expect(await h.blobs.stat(sha256Hex(files['/v1/small-0.txt']!))).not.toBeNull();
    await collectGarbage(h.ctx, { graceSeconds: 0 });
    for (const bytes of Object.values(files)) expect(await h.blobs.stat(sha256Hex(bytes))).toBeNull();
    await readAll();
    // Nothing is left to do: a further run moves nothing.
    expect(await migrateV1Objects(h.ctx)).toMatchObject({ moved: 0, remaining: 0 });
  });

  it('a missing v1 object is marked damaged and left for the next upload to heal', async () => {
    const user = await addUser(h, 'v1-gone');
    const bytes = Buffer.from('a v1 object that went missing');
    const sha = sha256Hex(bytes);
    await h.ctx.database.db.insert(chunks).values({ sha256: sha, size: bytes.length });
    await h.ctx.database.db.insert(ownerContents).values({ contentSha256: sha, userId: user.id });
    const result = await migrateV1Objects(h.ctx);
    expect(result.damaged).toBe(1);
    const [row] = await h.ctx.database.db.select().from(chunks).where(eq(chunks.sha256, sha));
    expect(row?.damagedAt).not.toBeNull();
    expect(row?.packId).toBeNull();
    await h.ctx.database.db.execute(sql`delete from chunks where sha256 = decode(${sha}, 'hex')`);
  });
});
