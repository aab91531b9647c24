import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { count } from 'drizzle-orm';
import { chunkLengths, DEFAULT_CHUNKER_PARAMS, sha256Hex } from '@cairn/shared';
import { chunks, contents, ownerContents, packs } from '../../src/db/schema.ts';
import { addUser, callApi, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const run = promisify(execFile);

/** The blob store on a real 1 MiB filesystem: the disk really fills up (needs root and mount permission, else skipped). */
describe.each(testDatabaseKinds())('uploads when the disk is full (%s)', (kind) => {
  let mountPoint: string | undefined;
  let skipReason = '';
  let h: Harness | undefined;

  beforeAll(async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-core-full-'));
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
      mountPoint = dir;
      h = await startHarness(kind, {}, { blobDir: path.join(dir, 'blobs') });
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      skipReason = `cannot mount a 1 MiB tmpfs here (${(error as Error).message.split('\n')[0]})`;
    }
  });

  afterAll(async () => {
    await h?.close();
    if (mountPoint === undefined) return;
    await run('umount', [mountPoint]);
    await rm(mountPoint, { recursive: true, force: true });
  });

  it('answers 507, commits nothing, keeps older backups, and recovers when space returns', async (test) => {
    if (!h || mountPoint === undefined) return test.skip(skipReason);
    const user = await addUser(h, 'full');
    const agent = await registerAgent(h, user, 'full-box');
    const earlier = randomBytes(600 * 1024);
    expect((await upload(h, agent.token, [earlier])).status).toBe(200);

    const big = randomBytes(2 * 1024 * 1024);
    const refused = await upload<{ message: string }>(h, agent.token, [big]);
    expect(refused.status).toBe(507);
    expect(refused.body.message).toMatch(/storage/i);
    const db = h.ctx.database.db;
    const counts = await Promise.all([chunks, contents, ownerContents].map(async (table) => (await db.select({ n: count() }).from(table))[0]?.n));
    // The earlier upload alone: its chunks, its contents row, its holder of the content and of each chunk; and its one pack.
    const earlierChunks = chunkLengths(earlier, DEFAULT_CHUNKER_PARAMS).length;
    expect(counts).toEqual([earlierChunks, 1, earlierChunks + 1]);
    const stored = (await readdir(path.join(mountPoint, 'blobs'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
    const packRows = await db.select({ sha256: packs.sha256 }).from(packs);
    expect(stored.map((e) => e.name)).toEqual(packRows.map((p) => p.sha256));

    const small = randomBytes(50 * 1024);
    expect((await upload(h, agent.token, [small])).status).toBe(200);
    const missing = await callApi<{ missing: string[] }>(h, 'POST', '/contents/missing', {
      token: agent.token,
      json: { hashes: [sha256Hex(earlier), sha256Hex(big), sha256Hex(small)] },
    });
    expect(missing.body.missing).toEqual([sha256Hex(big)]);
  });
});
