/**
 * Contents of several chunks (storage engine v2, decisions 125-127), through
 * the real agent API: chunks uploaded as parts, committed with
 * `POST /contents/assemble`, read back byte-identical from packs; a whole
 * part larger than the threshold cut by the server with the same chunker, so
 * an edited file needs only its changed chunks; and every refusal clear.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { count, eq } from 'drizzle-orm';
import { chunkLengths, DEFAULT_CHUNKER_PARAMS, encodeAssembleRecord, sha256Hex, type AssembleRecord } from '@cairn/shared';
import type { DiskBlobStore } from '../../src/blob/disk-blob-store.ts';
import { chunks as chunkRows, contentChunks, contents, packs } from '../../src/db/schema.ts';
import { addUser, callApi, download, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { locate } from '../helpers/stored-bytes.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

type Body = { results: { sha256: string; size: number; status: string }[]; missing?: string[]; message?: string };

/** A file's chunks as the agent cuts them. */
function chunksOf(file: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const length of chunkLengths(file, DEFAULT_CHUNKER_PARAMS)) {
    out.push(file.subarray(at, at + length));
    at += length;
  }
  return out;
}

function recordOf(file: Buffer): AssembleRecord {
  return { sha256: sha256Hex(file), size: file.length, chunks: chunksOf(file).map((c) => sha256Hex(c)) };
}

/** Text that compresses, like a dump: lines that differ. */
function dump(lines: number, seed = 'row'): Buffer {
  return Buffer.from(Array.from({ length: lines }, (_, i) => `${i}\t${seed}-${(i * 7919) % 100_003}\tsome filler text for the row\n`).join(''));
}

describe.each(testDatabaseKinds())('contents of several chunks (%s)', (kind) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(kind);
  });
  afterAll(() => h?.close());

  const assemble = (token: string, records: AssembleRecord[] | Buffer) =>
    callApi<Body>(h, 'POST', '/contents/assemble', {
      token,
      body: Buffer.isBuffer(records) ? records : Buffer.concat(records.map(encodeAssembleRecord)),
      headers: { 'content-type': 'application/octet-stream' },
    });
  const missing = async (token: string, hashes: string[]) =>
    (await callApi<{ missing: string[] }>(h, 'POST', '/contents/missing', { token, json: { hashes } })).body.missing;

  it('uploads the chunks, assembles the content, and reads it back byte-identical from a compressed pack', async () => {
    const user = await addUser(h, 'chunker');
    const agent = await registerAgent(h, user, 'chunker-box');
    const file = dump(100_000);
    const record = recordOf(file);
    expect(record.chunks.length).toBeGreaterThan(20);
    expect(await missing(agent.token, [record.sha256])).toEqual([record.sha256]);
    expect((await missing(agent.token, record.chunks)).length).toBe(new Set(record.chunks).size);

    const uploaded = await upload<Body>(h, agent.token, chunksOf(file));
    expect(uploaded.status).toBe(200);
    const assembled = await assemble(agent.token, [record]);
    expect(assembled.status).toBe(200);
    expect(assembled.body.results).toEqual([{ sha256: record.sha256, size: file.length, status: 'stored' }]);
    expect(await missing(agent.token, [record.sha256])).toEqual([]);

    const [row] = await h.ctx.database.db.select().from(contents).where(eq(contents.sha256, record.sha256));
    expect(row).toMatchObject({ size: file.length, chunkCount: record.chunks.length, damagedAt: null });
    const [listed] = await h.ctx.database.db.select({ n: count() }).from(contentChunks).where(eq(contentChunks.contentSha256, record.sha256));
    expect(listed?.n).toBe(record.chunks.length);
    // Text compresses: the pack is far smaller than the file.
    const [pack] = await h.ctx.database.db.select().from(packs).where(eq(packs.chunkCount, new Set(record.chunks).size));
    expect(pack!.bytes).toBeLessThan(file.length / 2);

    const got = await download(h, agent.token, record.sha256);
    expect(got.status).toBe(200);
    expect(got.contentLength).toBe(String(file.length));
    expect(got.bytes.equals(file)).toBe(true);
    // Assembling again is idempotent.
    expect((await assemble(agent.token, [record])).body.results[0]?.status).toBe('existing');
  });

  it('a whole part above the threshold is cut by the server, so the edited file needs only its changed chunks', async () => {
    const user = await addUser(h, 'old-agent');
    const agent = await registerAgent(h, user, 'old-agent-box');
    const day1 = dump(150_000, 'day');
    expect((await upload<Body>(h, agent.token, [day1])).body.results[0]).toMatchObject({ status: 'stored', size: day1.length });
    expect((await download(h, agent.token, sha256Hex(day1))).bytes.equals(day1)).toBe(true);

    // One line changed in the middle, one appended: most chunks are the same.
    const lines = day1.toString().split('\n');
    lines[15_000] = '15000\tedited\tthis row was changed today';
    const day2 = Buffer.from(`${lines.join('\n')}30000\tnew\tappended row\n`);
    const record = recordOf(day2);
    const lacking = await missing(agent.token, record.chunks);
    expect(lacking.length).toBeGreaterThan(0);
    expect(lacking.length).toBeLessThanOrEqual(4);
    const byHash = new Map(chunksOf(day2).map((c) => [sha256Hex(c), c]));
    await upload(h, agent.token, lacking.map((sha) => byHash.get(sha)!));
    expect((await assemble(agent.token, [record])).body.results).toEqual([{ sha256: record.sha256, size: day2.length, status: 'stored' }]);
    expect((await download(h, agent.token, record.sha256)).bytes.equals(day2)).toBe(true);
  });

  it('refuses with 409 naming the chunks this user does not hold, even when another user holds them, and commits the rest', async () => {
    const owner = await addUser(h, 'chunk-owner');
    const prober = await addUser(h, 'chunk-prober');
    const ownerAgent = await registerAgent(h, owner, 'co');
    const proberAgent = await registerAgent(h, prober, 'cp');
    const secret = randomBytes(800_000);
    await upload(h, ownerAgent.token, chunksOf(secret));
    expect((await assemble(ownerAgent.token, [recordOf(secret)])).status).toBe(200);

    const mine = randomBytes(640_000);
    await upload(h, proberAgent.token, chunksOf(mine));
    const refused = await assemble(proberAgent.token, [recordOf(secret), recordOf(mine)]);
    expect(refused.status).toBe(409);
    expect(refused.body.missing!.sort()).toEqual([...new Set(recordOf(secret).chunks)].sort());
    // The prober's own content was committed; the owner's stays unreadable to them.
    expect(await missing(proberAgent.token, [sha256Hex(mine), sha256Hex(secret)])).toEqual([sha256Hex(secret)]);
    expect((await download(h, proberAgent.token, sha256Hex(secret))).status).toBe(404);
  });

  it('a chunk damaged in the store since its upload is found by the read-back, marked, asked for again, and healed', async () => {
    // The read-back hashes the whole content first and the chunks one by one only when that fails (decision 191):
    // a flipped byte in a raw chunk still decodes, so only the second pass can name it.
    const user = await addUser(h, 'rotting');
    const agent = await registerAgent(h, user, 'rot-box');
    const file = randomBytes(900_000);
    const record = recordOf(file);
    const pieces = chunksOf(file);
    expect((await upload(h, agent.token, pieces)).status).toBe(200);
    const victim = record.chunks[1]!;
    const { key, at } = await locate(h.ctx.database.db, victim, 100);
    const path = (h.ctx.blobs as DiskBlobStore).pathOf(key);
    const bytes = await readFile(path);
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(path, bytes);

    const refused = await assemble(agent.token, [record]);
    expect(refused.status).toBe(409);
    expect(refused.body.missing).toEqual([victim]);
    const [row] = await h.ctx.database.db.select({ damagedAt: chunkRows.damagedAt }).from(chunkRows).where(eq(chunkRows.sha256, victim));
    expect(row?.damagedAt).not.toBeNull();
    expect(await missing(agent.token, record.chunks)).toEqual([victim]);

    expect((await upload(h, agent.token, [pieces[1]!])).status).toBe(200);
    const healed = await assemble(agent.token, [record]);
    expect(healed.status).toBe(200);
    expect(healed.body.results).toEqual([{ sha256: record.sha256, size: file.length, status: 'stored' }]);
    expect((await download(h, agent.token, record.sha256)).bytes.equals(file)).toBe(true);
  });

  it('refuses a chunk list that does not add up to the content (400 naming it) and a malformed body (400), keeping nothing', async () => {
    const user = await addUser(h, 'liar-chunks');
    const agent = await registerAgent(h, user, 'lc');
    const file = randomBytes(720_000);
    await upload(h, agent.token, chunksOf(file));
    const record = recordOf(file);
    const reordered = { ...record, chunks: [...record.chunks].reverse() };
    const wrongHash = await assemble(agent.token, [reordered]);
    expect(wrongHash.status).toBe(400);
    expect(wrongHash.body.message).toContain(`content ${record.sha256}`);
    const wrongSize = await assemble(agent.token, [{ ...record, size: record.size + 1 }]);
    expect(wrongSize.status).toBe(400);
    expect(wrongSize.body.message).toMatch(/add up to 720000 bytes, not the 720001 declared/);
    expect(await missing(agent.token, [record.sha256])).toEqual([record.sha256]);

    const cut = encodeAssembleRecord(record).subarray(0, 60);
    const truncated = await assemble(agent.token, cut);
    expect(truncated.status).toBe(400);
    expect(truncated.body.message).toMatch(/^body: /);
    const one = encodeAssembleRecord({ ...record, chunks: record.chunks.slice(0, 2) });
    one.writeUInt32BE(1, 40);
    const single = await assemble(agent.token, one.subarray(0, 44 + 32));
    expect(single.status).toBe(400);
    expect(single.body.message).toMatch(/2 to \d+ chunks/);
    const json = await callApi<Body>(h, 'POST', '/contents/assemble', { token: agent.token, json: { contents: [] } });
    expect(json.status).toBe(400);
    expect(json.body.message).toMatch(/^body: expected application\/octet-stream/);
    expect(await missing(agent.token, [record.sha256])).toEqual([record.sha256]);
  });
});
