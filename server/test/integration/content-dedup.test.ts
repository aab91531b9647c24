import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asc, count, desc, eq } from 'drizzle-orm';
import { sha256Hex } from '@cairn/shared';
import { backupRuns, chunks, contents, ownerContents, packs } from '../../src/db/schema.ts';
import { addUser, callApi, download, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

type UploadBody = { results: { sha256: string; size: number; status: string }[] };

describe.each(testDatabaseKinds())('content upload and dedup (%s)', (kind) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(kind);
  });
  afterAll(() => h?.close());

  async function rowCounts(sha256: string) {
    const db = h.ctx.database.db;
    const [c] = await db.select({ n: count() }).from(chunks).where(eq(chunks.sha256, sha256));
    const [t] = await db.select({ n: count() }).from(contents).where(eq(contents.sha256, sha256));
    const [o] = await db.select({ n: count() }).from(ownerContents).where(eq(ownerContents.contentSha256, sha256));
    return { chunks: c?.n ?? 0, contents: t?.n ?? 0, owners: o?.n ?? 0 };
  }

  async function filesUnder(dir: string): Promise<string[]> {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
  }

  it('stores the same bytes from two clients of one user once', async () => {
    const user = await addUser(h, 'one-user');
    const laptop = await registerAgent(h, user, 'laptop');
    const desktop = await registerAgent(h, user, 'desktop');
    const bytes = Buffer.from('the same file on two machines\n'.repeat(100));
    const hash = sha256Hex(bytes);

    const missing = await callApi<{ missing: string[] }>(h, 'POST', '/contents/missing', { token: laptop.token, json: { hashes: [hash] } });
    expect(missing.body.missing).toEqual([hash]);
    const first = await upload<UploadBody>(h, laptop.token, [bytes]);
    expect(first.body.results).toEqual([{ sha256: hash, size: bytes.length, status: 'stored' }]);

    const fromDesktop = await callApi<{ missing: string[] }>(h, 'POST', '/contents/missing', { token: desktop.token, json: { hashes: [hash] } });
    expect(fromDesktop.body.missing).toEqual([]);
    const again = await upload<UploadBody>(h, desktop.token, [bytes]);
    expect(again.body.results[0]?.status).toBe('existing');

    expect(await rowCounts(hash)).toEqual({ chunks: 1, contents: 0, owners: 1 });
    // The chunk stays where the first upload put it; the second copy is dead space for repack (decision 126).
    const [row] = await h.ctx.database.db.select({ packId: chunks.packId }).from(chunks).where(eq(chunks.sha256, hash));
    const [firstPack] = await h.ctx.database.db.select({ id: packs.id }).from(packs).orderBy(asc(packs.id)).limit(1);
    expect(row?.packId).toBe(firstPack?.id);
  });

  it("answers a second user exactly as if nobody held the bytes: missing, then stored, counted as new", async () => {
    const first = await addUser(h, 'first-owner');
    const second = await addUser(h, 'second-owner');
    const a = await registerAgent(h, first, 'a');
    const b = await registerAgent(h, second, 'b');
    const shared = Buffer.from('a file both users happen to have');
    const unique = Buffer.from('a file that only user b has, too'); // the same length as `shared`
    expect(unique.length).toBe(shared.length);
    expect((await upload<UploadBody>(h, a.token, [shared])).body.results[0]?.status).toBe('stored');

    const asked = await callApi<{ missing: string[] }>(h, 'POST', '/contents/missing', {
      token: b.token,
      json: { hashes: [sha256Hex(shared), sha256Hex(unique)] },
    });
    expect(asked.body.missing).toEqual([sha256Hex(shared), sha256Hex(unique)]);
    expect((await download(h, b.token, sha256Hex(shared))).status).toBe(404);

    const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: b.token, json: {} });
    const uploaded = await upload<UploadBody>(h, b.token, [shared, unique], `?runId=${run.body.runId}`);
    expect(uploaded.body.results).toEqual([
      { sha256: sha256Hex(shared), size: shared.length, status: 'stored' },
      { sha256: sha256Hex(unique), size: unique.length, status: 'stored' },
    ]);
    const [runRow] = await h.ctx.database.db.select().from(backupRuns).where(eq(backupRuns.id, run.body.runId));
    expect(runRow?.bytesNew).toBe(shared.length + unique.length);
    // Both parts were written to the request's pack alike: the same work whoever else held them.
    const [pack] = await h.ctx.database.db.select().from(packs).orderBy(desc(packs.id)).limit(1);
    expect(pack?.chunkCount).toBe(2);
    expect(await rowCounts(sha256Hex(shared))).toEqual({ chunks: 1, contents: 0, owners: 2 });

    const now = await callApi<{ missing: string[] }>(h, 'POST', '/contents/missing', { token: b.token, json: { hashes: [sha256Hex(shared)] } });
    expect(now.body.missing).toEqual([]);
    const got = await download(h, b.token, sha256Hex(shared));
    expect(got.status).toBe(200);
    expect(got.bytes.equals(shared)).toBe(true);
    expect(got.contentLength).toBe(String(shared.length));
  });

  it('answers an over-size part with the same 413 whether or not another user holds the bytes', async () => {
    const limit = 100_000;
    const small = await startHarness(kind, { MAX_UPLOAD_PART_BYTES: String(limit) });
    try {
      const owner = await addUser(small, 'big-owner');
      const prober = await addUser(small, 'big-prober');
      const ownerAgent = await registerAgent(small, owner, 'big-o');
      const proberAgent = await registerAgent(small, prober, 'big-p');
      // The owner holds the first `limit` bytes as a content; the prober sends them with one byte more, and fresh bytes alike.
      const held = Buffer.alloc(limit, 7);
      expect((await upload(small, ownerAgent.token, [held])).status).toBe(200);
      const probeHeld = await upload<{ message: string }>(small, proberAgent.token, [Buffer.concat([held, Buffer.from([7])])]);
      const probeFresh = await upload<{ message: string }>(small, proberAgent.token, [Buffer.alloc(limit + 1, 8)]);
      expect(probeHeld.status).toBe(413);
      expect([probeHeld.status, probeHeld.body.message]).toEqual([probeFresh.status, probeFresh.body.message]);
    } finally {
      await small.close();
    }
  });

  it('leaves no object, no row and no temp file after a wrong-hash upload', async () => {
    const user = await addUser(h, 'liar');
    const agent = await registerAgent(h, user, 'liar-box');
    const claimed = sha256Hex(Buffer.from('what I claim to send'));
    const result = await upload<{ message: string }>(h, agent.token, [{ name: claimed, data: Buffer.from('what I really send') }]);
    expect(result.status).toBe(400);
    expect(result.body.message).toMatch(/mismatch/);
    expect(await h.blobs.stat(claimed)).toBeNull();
    expect(await rowCounts(claimed)).toEqual({ chunks: 0, contents: 0, owners: 0 });
    expect((await filesUnder(path.join(h.dataDir, 'blobs'))).filter((f) => !/[a-f0-9]{64}$/.test(f))).toEqual([]);
  });

  it('refuses wrong bytes sent under the hash of content the server already has, and records no holder', async () => {
    const owner = await addUser(h, 'real-owner');
    const thief = await addUser(h, 'guesser');
    const ownerAgent = await registerAgent(h, owner, 'o');
    const thiefAgent = await registerAgent(h, thief, 't');
    const bytes = Buffer.from('private content');
    const hash = sha256Hex(bytes);
    await upload(h, ownerAgent.token, [bytes]);
    const result = await upload(h, thiefAgent.token, [{ name: hash, data: Buffer.from('guess') }]);
    expect(result.status).toBe(400);
    expect(await rowCounts(hash)).toEqual({ chunks: 1, contents: 0, owners: 1 });
    expect((await download(h, thiefAgent.token, hash)).status).toBe(404);
  });

  it('takes many parts in one request and commits the parts before a failing one', async () => {
    const user = await addUser(h, 'batcher');
    const agent = await registerAgent(h, user, 'batch');
    const files = Array.from({ length: 50 }, (_, i) => Buffer.from(`small file number ${i}`));
    const result = await upload<UploadBody>(h, agent.token, files);
    expect(result.status).toBe(200);
    expect(result.body.results.map((r) => r.status)).toEqual(Array(50).fill('stored'));
    const missing = await callApi<{ missing: string[] }>(h, 'POST', '/contents/missing', {
      token: agent.token,
      json: { hashes: files.map((f) => sha256Hex(f)) },
    });
    expect(missing.body.missing).toEqual([]);

    const good = Buffer.from('good part before a bad one');
    const bad = { name: sha256Hex(Buffer.from('declared')), data: Buffer.from('different') };
    const mixed = await upload(h, agent.token, [good, bad]);
    expect(mixed.status).toBe(400);
    expect(await rowCounts(sha256Hex(good))).toEqual({ chunks: 1, contents: 0, owners: 1 });
    expect(await rowCounts(bad.name)).toEqual({ chunks: 0, contents: 0, owners: 0 });
  });

  it('answers a mismatch in the first part with 400 even while many more megabytes follow', async () => {
    const user = await addUser(h, 'early-refusal');
    const agent = await registerAgent(h, user, 'early');
    const declared = sha256Hex(Buffer.from('declared bytes'));
    const rest = Array.from({ length: 8 }, (_, i) => Buffer.alloc(4 * 1024 * 1024, i + 1));
    const result = await upload<{ message: string }>(h, agent.token, [{ name: declared, data: Buffer.alloc(1024 * 1024, 9) }, ...rest]);
    expect(result.status).toBe(400);
    expect(result.body.message).toMatch(/mismatch/);
    expect(await rowCounts(declared)).toEqual({ chunks: 0, contents: 0, owners: 0 });
    expect(await h.blobs.stat(declared)).toBeNull();
    // Parts after the refused one that were already received may be kept, but only whole: a contents row with its holder.
    for (const part of rest) {
      const rows = await rowCounts(sha256Hex(part));
      expect(rows.contents, `rows of part ${part[0]}`).toBe(rows.owners);
    }
  });

  it("counts the bytes new to this user into the run named by runId, whoever else held them", async () => {
    const user = await addUser(h, 'counter');
    const agent = await registerAgent(h, user, 'counted');
    const known = Buffer.from('already on the server before this run');
    const other = await addUser(h, 'counter-other');
    await upload(h, (await registerAgent(h, other, 'first-holder')).token, [known]);
    const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: agent.token, json: {} });
    const fresh = Buffer.alloc(1000, 1);
    await upload(h, agent.token, [fresh, known], `?runId=${run.body.runId}`);
    const [row] = await h.ctx.database.db.select().from(backupRuns).where(eq(backupRuns.id, run.body.runId));
    expect(row?.bytesNew).toBe(1000 + known.length);
    // What this user already held is not counted again.
    const second = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: agent.token, json: {} });
    await upload(h, agent.token, [fresh], `?runId=${second.body.runId}`);
    const [again] = await h.ctx.database.db.select().from(backupRuns).where(eq(backupRuns.id, second.body.runId));
    expect(again?.bytesNew).toBe(0);
  });

  it('downloads an empty content', async () => {
    const user = await addUser(h, 'empty');
    const agent = await registerAgent(h, user, 'empty');
    const empty = Buffer.alloc(0);
    expect((await upload<UploadBody>(h, agent.token, [empty])).body.results[0]).toMatchObject({ size: 0 });
    const got = await download(h, agent.token, sha256Hex(empty));
    expect(got).toMatchObject({ status: 200, contentLength: '0' });
    expect(got.bytes.length).toBe(0);
  });
});
