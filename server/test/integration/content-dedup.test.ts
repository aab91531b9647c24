import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { count, eq } from 'drizzle-orm';
import { sha256Hex } from '@cairn/shared';
import { backupRuns, chunks, contents, ownerContents } from '../../src/db/schema.ts';
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
    const objects = (await filesUnder(path.join(h.dataDir, 'blobs'))).filter((f) => f.endsWith(hash));
    expect(objects).toHaveLength(1);
  });

  it("tells a second user 'missing' until it uploads, then hashes and discards its bytes", async () => {
    const first = await addUser(h, 'first-owner');
    const second = await addUser(h, 'second-owner');
    const a = await registerAgent(h, first, 'a');
    const b = await registerAgent(h, second, 'b');
    const bytes = Buffer.from('a file both users happen to have');
    const hash = sha256Hex(bytes);
    expect((await upload<UploadBody>(h, a.token, [bytes])).body.results[0]?.status).toBe('stored');
    const objectPath = (await filesUnder(path.join(h.dataDir, 'blobs'))).find((f) => f.endsWith(hash));
    expect(objectPath).toBeDefined();
    const before = await stat(objectPath!);

    const asked = await callApi<{ missing: string[] }>(h, 'POST', '/contents/missing', { token: b.token, json: { hashes: [hash] } });
    expect(asked.body.missing).toEqual([hash]);
    expect((await download(h, b.token, hash)).status).toBe(404);

    const uploaded = await upload<UploadBody>(h, b.token, [bytes]);
    expect(uploaded.body.results).toEqual([{ sha256: hash, size: bytes.length, status: 'existing' }]);
    const after = await stat(objectPath!);
    // The object was not rewritten: same inode and modification time (a put writes a temp file and renames it).
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(await rowCounts(hash)).toEqual({ chunks: 1, contents: 0, owners: 2 });

    const now = await callApi<{ missing: string[] }>(h, 'POST', '/contents/missing', { token: b.token, json: { hashes: [hash] } });
    expect(now.body.missing).toEqual([]);
    const got = await download(h, b.token, hash);
    expect(got.status).toBe(200);
    expect(got.bytes.equals(bytes)).toBe(true);
    expect(got.contentLength).toBe(String(bytes.length));
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
    // Parts after the refused one that were already received may be kept, but never as an object without its rows.
    for (const part of rest) {
      const rows = await rowCounts(sha256Hex(part));
      const object = await h.blobs.stat(sha256Hex(part));
      expect(rows.chunks === 1 && rows.owners === 1, `rows of part ${part[0]}`).toBe(object !== null);
    }
  });

  it("counts bytes newly stored into the run named by runId, not bytes it already had", async () => {
    const user = await addUser(h, 'counter');
    const agent = await registerAgent(h, user, 'counted');
    const known = Buffer.from('already on the server before this run');
    const other = await addUser(h, 'counter-other');
    await upload(h, (await registerAgent(h, other, 'first-holder')).token, [known]);
    const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token: agent.token, json: {} });
    const fresh = Buffer.alloc(1000, 1);
    await upload(h, agent.token, [fresh, known], `?runId=${run.body.runId}`);
    const [row] = await h.ctx.database.db.select().from(backupRuns).where(eq(backupRuns.id, run.body.runId));
    expect(row?.bytesNew).toBe(1000);
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
