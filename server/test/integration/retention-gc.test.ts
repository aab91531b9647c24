import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq, sql } from 'drizzle-orm';
import { sha256Hex, type FileVersion } from '@cairn/shared';
import { LOCK_KEYS, lockManagerFor } from '../../src/db/advisory-locks.ts';
import { rowsOf } from '../../src/db/database.ts';
import { chunks, clientPaths, contents, fileVersions } from '../../src/db/schema.ts';
import { packKeyOf } from '../../src/blob/blob-store.ts';
import { chunkLocations, type StoredChunk } from '../../src/storage/pack-index.ts';
import { readChunksInOrder } from '../../src/storage/content-reader.ts';
import { collectGarbage, type GcDeletedBatch, type GcResult } from '../../src/services/garbage-collector.ts';
import { NO_STORED_RULES } from '../../src/services/retention-rules.ts';
import { previewClientPrune, pruneClientVersions, sweepRetention } from '../../src/services/retention.service.ts';
import { addUser, callApi, download, fileUpsert, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const DAY_MS = 86_400_000;
const stats = { filesScanned: 1, filesChanged: 1, filesDeleted: 0, filesFailed: 0, bytesScanned: 1, bytesUploaded: 1 };

/** Polls until `condition` holds; waits for a state, asserts nothing about time. */
async function waitUntil(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`gave up waiting for: ${what}`);
}

describe.each(testDatabaseKinds())('retention and garbage collection (%s)', (kind) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(kind);
  });
  afterAll(() => h?.close());

  async function agentFor(username: string, retention: { retentionVersions?: number; retentionDays?: number | null } = {}) {
    const user = await addUser(h, username, retention);
    const reg = await registerAgent(h, user, `${username}-box`);
    const post = <T = Record<string, unknown>>(route: string, json: unknown) => callApi<T>(h, 'POST', route, { token: reg.token, json });
    return {
      ...reg,
      post,
      /** One run that uploads `files` and commits them, then finishes (which prunes). */
      async backup(files: Record<string, Buffer>, deletes: string[] = []) {
        await upload(h, reg.token, Object.values(files));
        const run = (await post<{ runId: string }>('/runs', {})).body.runId;
        const changes = await post(`/runs/${run}/changes`, {
          upserts: Object.entries(files).map(([path, data]) => fileUpsert(path, data)),
          deletes,
        });
        expect(changes.status).toBe(200);
        await post(`/runs/${run}/finish`, { status: 'succeeded', stats, preCommands: [] });
        return run;
      },
      async versions(path: string) {
        return (await callApi<{ versions: FileVersion[] }>(h, 'GET', `/versions?path=${encodeURIComponent(path)}`, { token: reg.token })).body.versions;
      },
    };
  }

  /** Every content some version references has its object: the invariant GC must never break. */
  async function expectEveryVersionReadable(): Promise<void> {
    // A version's content is a contents row with its chunks, else the one chunk of that hash (decision 91).
    const referenced = rowsOf<{ key: string }>(
      await h.ctx.database.db.execute(sql`
        select distinct encode(coalesce(cc.chunk_sha256, fv.content_sha256), 'hex') as key from file_versions fv
        left join content_chunks cc on cc.content_sha256 = fv.content_sha256
        where fv.content_sha256 is not null`),
    );
    const unreadable = rowsOf(
      await h.ctx.database.db.execute(sql`
        select fv.id from file_versions fv
        left join contents ct on ct.sha256 = fv.content_sha256
        where fv.content_sha256 is not null
          and (case when ct.sha256 is null
                 then not exists (select 1 from chunks ch where ch.sha256 = fv.content_sha256)
                 else exists (select 1 from content_chunks cc where cc.content_sha256 = ct.sha256
                                and not exists (select 1 from chunks ch where ch.sha256 = cc.chunk_sha256))
               end)`),
    );
    expect(unreadable).toEqual([]);
    const locations = await chunkLocations(h.ctx.database.db, referenced.map((r) => r.key));
    for (const { key } of referenced) {
      const location = locations.get(key);
      expect(location, `chunk ${key}`).toBeDefined();
      expect(await h.blobs.stat(location!.kind === 'pack' ? location!.packKey : location!.key), `object of chunk ${key}`).not.toBeNull();
    }
  }

  /** Whether a chunk is stored: its row, and the object (its pack) it points into. */
  async function stored(sha256: string): Promise<boolean> {
    const location = (await chunkLocations(h.ctx.database.db, [sha256])).get(sha256);
    if (!location) return false;
    return (await h.blobs.stat(location.kind === 'pack' ? location.packKey : location.key)) !== null;
  }

  /** Pack objects in the store. */
  async function packObjects(): Promise<string[]> {
    const keys: string[] = [];
    for await (const object of h.blobs.list()) if (object.key.startsWith('packs/')) keys.push(object.key);
    return keys.sort();
  }

  function pausedGc(): { paused: Promise<GcDeletedBatch>; resume: () => void; done: Promise<GcResult> } {
    let resume!: () => void;
    const gate = new Promise<void>((resolve) => (resume = resolve));
    let onPause!: (batch: GcDeletedBatch) => void;
    const paused = new Promise<GcDeletedBatch>((resolve) => (onPause = resolve));
    const done = collectGarbage(h.ctx, {
      graceSeconds: 0,
      afterRowsDeleted: async (batch) => {
        onPause(batch);
        await gate;
      },
    });
    return { paused, resume, done };
  }

  const waiters = () => lockManagerFor(h.ctx.database).contentLockWaiters();

  describe('retention', () => {
    it('prunes by count after each finished run and keeps the current version', async () => {
      const agent = await agentFor('count-keeper', { retentionVersions: 2 });
      for (let i = 1; i <= 4; i++) await agent.backup({ '/f': Buffer.from(`f version ${i}`) });
      const versions = await agent.versions('/f');
      expect(versions.map((v) => v.sha256)).toEqual([sha256Hex(Buffer.from('f version 4')), sha256Hex(Buffer.from('f version 3'))]);
      expect(versions[0]!.validTo).toBeNull();
    });

    it('prunes by age on the server clock, keeps a deleted file its days, and previews without deleting', async () => {
      const agent = await agentFor('age-keeper', { retentionVersions: 100, retentionDays: 7 });
      for (let i = 1; i <= 3; i++) await agent.backup({ '/g': Buffer.from(`g version ${i}`) });
      await agent.backup({ '/h': Buffer.from('h only version') });
      await agent.backup({}, ['/h']);
      const inEightDays = new Date(Date.now() + 8 * DAY_MS);
      const inSixDays = new Date(Date.now() + 6 * DAY_MS);

      expect((await previewClientPrune(h.ctx, agent.clientId, { now: inSixDays })).total).toBe(0);
      const preview = await previewClientPrune(h.ctx, agent.clientId, { now: inEightDays });
      expect(preview.rules.base).toEqual({ versions: 100, days: 7 });
      expect(preview.versions.map((v) => v.path).sort()).toEqual(['/g', '/g', '/h']);
      expect(preview.total).toBe(3);
      expect(await agent.versions('/g')).toHaveLength(3);
      const tighter = await previewClientPrune(h.ctx, agent.clientId, { rules: { base: { versions: 2, days: null }, ...NO_STORED_RULES } });
      expect(tighter.versions.map((v) => v.path)).toEqual(['/g']);

      expect(await pruneClientVersions(h.ctx, agent.clientId, { now: inSixDays })).toEqual({ pruned: 0, held: false });
      expect(await pruneClientVersions(h.ctx, agent.clientId, { now: inEightDays })).toEqual({ pruned: 3, held: false });
      expect((await agent.versions('/g')).map((v) => v.validTo)).toEqual([null]);
      expect(await agent.versions('/h')).toEqual([]);
    });

    it('prunes a directory’s versions like any path’s, and GC keeps the content of the files inside', async () => {
      const agent = await agentFor('dir-keeper', { retentionVersions: 2 });
      const inside = Buffer.from('a file inside a busy directory');
      await agent.backup({ '/busy/file': inside });
      for (let i = 1; i <= 4; i++) {
        const run = (await agent.post<{ runId: string }>('/runs', {})).body.runId;
        const directory = { path: '/busy', kind: 'directory', sha256: null, size: 0, mtimeMs: i * 1000, mode: 0o40755 };
        expect((await agent.post(`/runs/${run}/changes`, { upserts: [directory], deletes: [] })).status).toBe(200);
        await agent.post(`/runs/${run}/finish`, { status: 'succeeded', stats, preCommands: [] });
      }
      expect((await agent.versions('/busy')).map((v) => v.mtimeMs)).toEqual([4000, 3000]);
      await collectGarbage(h.ctx, { graceSeconds: 0 });
      await expectEveryVersionReadable();
      expect((await agent.versions('/busy/file')).map((v) => v.sha256)).toEqual([sha256Hex(inside)]);
    });

    it('sweeps every client, one sweep at a time', async () => {
      const agent = await agentFor('swept', { retentionVersions: 1 });
      await agent.backup({ '/s': Buffer.from('s1') });
      await agent.backup({ '/s': Buffer.from('s2') });
      // Slip in an older version behind the per-run pruning: only the sweep can remove it.
      await h.ctx.database.db.execute(sql`
        insert into file_versions (path_id, kind, content_sha256, size, mtime_ms, mode, valid_from, valid_to)
        select path_id, kind, content_sha256, size, mtime_ms, mode, valid_from - interval '2 days', valid_from - interval '1 day'
        from file_versions where path_id in (select id from client_paths where client_id = ${agent.clientId}) and valid_to is null`);
      expect(await agent.versions('/s')).toHaveLength(2);

      let release!: () => void;
      const held = lockManagerFor(h.ctx.database).tryExclusive(LOCK_KEYS.retentionSweep, () => new Promise<void>((resolve) => (release = resolve)));
      await waitUntil(async () => release !== undefined, 'the sweep lock to be held');
      expect(await sweepRetention(h.ctx)).toEqual({ ran: false, clients: 0, pruned: 0 });
      release();
      await held;

      const swept = await sweepRetention(h.ctx);
      expect(swept.ran).toBe(true);
      expect(swept.pruned).toBeGreaterThanOrEqual(1);
      expect(await agent.versions('/s')).toHaveLength(1);
    });
  });

  describe('garbage collection', () => {
    it('removes unreferenced objects only after the grace period, and never referenced ones', async () => {
      const agent = await agentFor('gc-grace');
      const orphan = Buffer.from('uploaded, never committed');
      const kept = Buffer.from('committed into a version');
      await upload(h, agent.token, [orphan]);
      await agent.backup({ '/kept': kept });

      const orphanPack = ((await chunkLocations(h.ctx.database.db, [sha256Hex(orphan)])).get(sha256Hex(orphan)) as { packKey: string }).packKey;
      const early = await collectGarbage(h.ctx);
      expect(early.ran).toBe(true);
      expect(await stored(sha256Hex(orphan))).toBe(true);

      const late = await collectGarbage(h.ctx, { graceSeconds: 0 });
      expect(late.chunksDeleted).toBeGreaterThanOrEqual(1);
      // Its pack held nothing else: retired and, the grace period being 0, deleted in the same run.
      expect(late.packsDeleted).toBeGreaterThanOrEqual(1);
      expect(await h.blobs.stat(orphanPack)).toBeNull();
      expect(await h.ctx.database.db.select().from(chunks).where(eq(chunks.sha256, sha256Hex(orphan)))).toEqual([]);
      expect(await stored(sha256Hex(kept))).toBe(true);
      const missing = await agent.post<{ missing: string[] }>('/contents/missing', { hashes: [sha256Hex(orphan), sha256Hex(kept)] });
      expect(missing.body.missing).toEqual([sha256Hex(orphan)]);
      await expectEveryVersionReadable();
    });

    it('spares content an agent was just told it holds, through the grace period', async () => {
      const agent = await agentFor('gc-touch');
      const bytes = Buffer.from('held, asked about, not yet committed');
      const hash = sha256Hex(bytes);
      await upload(h, agent.token, [bytes]);
      await h.ctx.database.db.update(contents).set({ touchedAt: sql`now() - interval '2 days'` }).where(eq(contents.sha256, hash));
      await h.ctx.database.db.update(chunks).set({ touchedAt: sql`now() - interval '2 days'` }).where(eq(chunks.sha256, hash));
      expect((await agent.post<{ missing: string[] }>('/contents/missing', { hashes: [hash] })).body.missing).toEqual([]);
      await collectGarbage(h.ctx, { graceSeconds: 86_400 });
      expect(await stored(hash)).toBe(true);
      await agent.backup({ '/touched': bytes });
      await expectEveryVersionReadable();
    });

    it('collects content once retention pruned the last version referencing it', async () => {
      const agent = await agentFor('gc-after-prune', { retentionVersions: 1 });
      const old = Buffer.from('old version bytes');
      await agent.backup({ '/p': old });
      await agent.backup({ '/p': Buffer.from('new version bytes') });
      expect(await agent.versions('/p')).toHaveLength(1);
      const oldPack = ((await chunkLocations(h.ctx.database.db, [sha256Hex(old)])).get(sha256Hex(old)) as { packKey: string }).packKey;
      await collectGarbage(h.ctx, { graceSeconds: 0 });
      expect(await stored(sha256Hex(old))).toBe(false);
      expect(await h.blobs.stat(oldPack)).toBeNull();
      await expectEveryVersionReadable();
    });

    it('lets one GC run at a time: a second one skips', async () => {
      const agent = await agentFor('gc-single');
      await upload(h, agent.token, [Buffer.from('garbage to keep the first run busy')]);
      const gc = pausedGc();
      await gc.paused;
      const second = await collectGarbage(h.ctx, { graceSeconds: 0 });
      expect(second.ran).toBe(false);
      gc.resume();
      expect((await gc.done).ran).toBe(true);
    });
  });

  describe('GC racing commits (forced interleavings)', () => {
    /** One pack holding `keep` (committed) and dead parts, so the next GC (grace 0) repacks it. */
    async function mostlyDeadPack(username: string, keep: Buffer) {
      const agent = await agentFor(username);
      const dead = Array.from({ length: 8 }, (_, i) => Buffer.from(`${username}: never committed, number ${i}, `.repeat(40)));
      await upload(h, agent.token, [keep, ...dead]);
      await agent.backup({ '/keep': keep });
      const location = (await chunkLocations(h.ctx.database.db, [sha256Hex(keep)])).get(sha256Hex(keep))!;
      expect(location.kind).toBe('pack');
      return { agent, location, oldPack: (location as { packKey: string }).packKey };
    }

    async function readWith(location: StoredChunk): Promise<Buffer> {
      const parts: Buffer[] = [];
      for await (const raw of readChunksInOrder(h.blobs, [location], { verifyObjects: true })) parts.push(raw);
      return Buffer.concat(parts);
    }

    it('a restore reading the old pack while a repack switches the index gets its bytes, before and after the switch, until the grace period ends', async () => {
      const keep = Buffer.from('bytes a restore is reading while their pack is repacked');
      const { agent, location: stale, oldPack } = await mostlyDeadPack('repack-read', keep);
      // Two hours old: past the one-hour grace period this test's GC runs use, so the dead chunks go and the pack is repacked.
      const db = h.ctx.database.db;
      await db.execute(sql`update chunks set touched_at = now() - interval '2 hours' where pack_id = (select id from packs where sha256 = decode(${oldPack.slice('packs/'.length)}, 'hex'))`);
      await db.execute(sql`update packs set created_at = now() - interval '2 hours' where sha256 = decode(${oldPack.slice('packs/'.length)}, 'hex')`);
      let during: Buffer | null = null;
      const result = await collectGarbage(h.ctx, {
        graceSeconds: 3600,
        afterRepackWritten: async (move) => {
          if (move.from !== oldPack) return;
          // The new pack is stored, the index still points at the old one: a download now reads the old pack.
          during = (await download(h, agent.token, sha256Hex(keep))).bytes;
        },
      });
      expect(result.packsRepacked).toBeGreaterThanOrEqual(1);
      expect(during!.equals(keep)).toBe(true);
      const now = (await chunkLocations(db, [sha256Hex(keep)])).get(sha256Hex(keep)) as { packKey: string };
      expect(now.packKey).not.toBe(oldPack);
      // Retired, not deleted: a reader that looked the chunk up before the switch still reads the old pack,
      expect(await h.blobs.stat(oldPack)).not.toBeNull();
      expect((await readWith(stale)).equals(keep)).toBe(true);
      // and it stays through every GC run until the grace period has passed since it was retired.
      await collectGarbage(h.ctx, { graceSeconds: 3600 });
      expect((await readWith(stale)).equals(keep)).toBe(true);
      await db.execute(sql`update packs set retired_at = now() - interval '2 hours' where sha256 = decode(${oldPack.slice('packs/'.length)}, 'hex')`);
      await collectGarbage(h.ctx, { graceSeconds: 3600 });
      expect(await h.blobs.stat(oldPack)).toBeNull();
      expect((await download(h, agent.token, sha256Hex(keep))).bytes.equals(keep)).toBe(true);
      await expectEveryVersionReadable();
    });

    it("a second replica's GC while one is in the middle of a repack skips, and the repack completes", async () => {
      const keep = Buffer.from('bytes repacked while another replica tries to collect');
      const { agent, oldPack } = await mostlyDeadPack('repack-replica', keep);
      let second: GcResult | null = null;
      await collectGarbage(h.ctx, {
        graceSeconds: 0,
        afterRepackWritten: async (move) => {
          if (move.from === oldPack) second = await collectGarbage(h.ctx, { graceSeconds: 0 });
        },
      });
      expect(second).toMatchObject({ ran: false });
      await collectGarbage(h.ctx, { graceSeconds: 0 });
      expect((await download(h, agent.token, sha256Hex(keep))).bytes.equals(keep)).toBe(true);
      await expectEveryVersionReadable();
    });

    it('an upload and a commit of the very chunk being repacked, between the new pack and the switch, lose nothing', async () => {
      const keep = Buffer.from('bytes uploaded again while their pack is repacked');
      const { agent, oldPack } = await mostlyDeadPack('repack-upload', keep);
      await collectGarbage(h.ctx, {
        graceSeconds: 0,
        afterRepackWritten: async (move) => {
          if (move.from !== oldPack) return;
          // Another file with the same bytes, uploaded (a fresh copy, decision 126) and committed now.
          await agent.backup({ '/copy-of-keep': keep });
        },
      });
      for (let i = 0; i < 2; i++) await collectGarbage(h.ctx, { graceSeconds: 0 });
      expect(await h.blobs.stat(oldPack)).toBeNull();
      for (const path of ['/keep', '/copy-of-keep']) {
        const [version] = await agent.versions(path);
        expect(version?.sha256).toBe(sha256Hex(keep));
      }
      expect((await download(h, agent.token, sha256Hex(keep))).bytes.equals(keep)).toBe(true);
      await expectEveryVersionReadable();
    });

    it('a changes commit arriving while GC deletes waits, then is refused naming the missing hash', async () => {
      const agent = await agentFor('race-commit');
      const bytes = Buffer.from('uploaded, then collected while the commit waits');
      const hash = sha256Hex(bytes);
      await upload(h, agent.token, [bytes]);
      const run = (await agent.post<{ runId: string }>('/runs', {})).body.runId;

      const gc = pausedGc();
      const batch = await gc.paused;
      // A one-chunk content is its chunk (decision 91): GC deletes the chunk row.
      expect(batch.chunks.map((c) => c.sha256)).toContain(hash);
      expect(await packObjects()).not.toEqual([]); // rows are gone, the pack is not yet

      const commit = agent.post<{ missing?: string[] }>(`/runs/${run}/changes`, { upserts: [fileUpsert('/raced', bytes)], deletes: [] });
      await waitUntil(async () => (await waiters()) >= 1, 'the commit to wait for the content lock');
      gc.resume();
      const result = await gc.done;
      expect(result.objectsDeleted).toBeGreaterThanOrEqual(1);
      const refused = await commit;
      expect(refused.status).toBe(409);
      expect(refused.body.missing).toEqual([hash]);
      await expectEveryVersionReadable();

      // The agent's answer to the refusal: upload again, commit again.
      expect((await agent.post<{ missing: string[] }>('/contents/missing', { hashes: [hash] })).body.missing).toEqual([hash]);
      await upload(h, agent.token, [bytes]);
      const retried = await agent.post(`/runs/${run}/changes`, { upserts: [fileUpsert('/raced', bytes)], deletes: [] });
      expect(retried.body).toEqual({ opened: 1, closed: 0 });
      await expectEveryVersionReadable();
    });

    it('an upload landing while GC deletes the same chunk stores a fresh copy in a pack of its own, and it stays readable', async () => {
      const agent = await agentFor('race-upload');
      const bytes = Buffer.from('collected and uploaded again at the same moment');
      const hash = sha256Hex(bytes);
      await upload(h, agent.token, [bytes]);

      const gc = pausedGc();
      expect((await gc.paused).chunks.map((c) => c.sha256)).toContain(hash);
      // The upload puts its pack (no lock), then waits to record it while GC holds the lock.
      const uploading = upload<{ results: { status: string }[] }>(h, agent.token, [bytes]);
      await waitUntil(async () => (await waiters()) >= 1, 'the upload commit to wait for the content lock');
      gc.resume();
      await gc.done;
      const uploaded = await uploading;
      expect(uploaded.status).toBe(200);
      // GC had removed the user's hold with the chunk: the bytes are new to the user again.
      expect(uploaded.body.results[0]?.status).toBe('stored');
      expect(await stored(hash)).toBe(true);
      // A later GC (the pack is named now) keeps it; a version can reference it.
      await collectGarbage(h.ctx, { graceSeconds: 0 });
      await agent.backup({ '/raced-upload': bytes });
      expect(await stored(hash)).toBe(true);
      await expectEveryVersionReadable();
    });

    it('repacks a mostly dead pack: the live chunks move to a new pack, the old one goes, every version still reads', async () => {
      const agent = await agentFor('repack');
      const keep = Buffer.from('the one file of this pack that stays');
      const dead = Array.from({ length: 8 }, (_, i) => Buffer.from(`a file never committed, number ${i}, `.repeat(40)));
      // One upload request: all nine in one pack; only `keep` is committed into a version, the rest GC collects.
      await upload(h, agent.token, [keep, ...dead]);
      const oldPack = ((await chunkLocations(h.ctx.database.db, [sha256Hex(keep)])).get(sha256Hex(keep)) as { packKey: string }).packKey;
      await agent.backup({ '/keep': keep });

      const moves: { from: string; to: string; chunks: string[] }[] = [];
      const result = await collectGarbage(h.ctx, { graceSeconds: 0, afterRepackWritten: async (move) => void moves.push(move) });
      expect(result.packsRepacked).toBeGreaterThanOrEqual(1);
      const move = moves.find((m) => m.from === oldPack);
      expect(move?.chunks).toEqual([sha256Hex(keep)]);
      const now = (await chunkLocations(h.ctx.database.db, [sha256Hex(keep)])).get(sha256Hex(keep)) as { packKey: string };
      expect(now.packKey).toBe(move!.to);
      // Retired and, the grace period being 0, deleted by this same run (the next one finds nothing left to do).
      await collectGarbage(h.ctx, { graceSeconds: 0 });
      expect(await h.blobs.stat(oldPack)).toBeNull();
      expect(await download(h, agent.token, sha256Hex(keep))).toMatchObject({ status: 200 });
      expect((await download(h, agent.token, sha256Hex(keep))).bytes.equals(keep)).toBe(true);
      await expectEveryVersionReadable();
      // The new pack holds only live chunks: however small they are beside its index and footer, it is not repacked again.
      await collectGarbage(h.ctx, { graceSeconds: 0, afterRepackWritten: async (m) => void moves.push(m) });
      expect(moves.filter((m) => m.from === move!.to)).toEqual([]);
      expect((await chunkLocations(h.ctx.database.db, [sha256Hex(keep)])).get(sha256Hex(keep))).toMatchObject({ packKey: move!.to });
    });

    it('an object no row names is deleted only when a later GC run still finds it unnamed after the grace period', async () => {
      const stray = Buffer.from('an upload that died between its put and its commit');
      const key = packKeyOf(sha256Hex(stray));
      await h.blobs.put(key, Readable.from([stray]), sha256Hex(stray));
      await collectGarbage(h.ctx, { graceSeconds: 0 });
      expect(await h.blobs.stat(key)).not.toBeNull();
      const again = await collectGarbage(h.ctx, { graceSeconds: 0 });
      expect(again.orphansDeleted).toBeGreaterThanOrEqual(1);
      expect(await h.blobs.stat(key)).toBeNull();
      await expectEveryVersionReadable();
    });

    it('GC reaching the lock while a commit holds it waits, then sees the new reference and keeps the object', async () => {
      const agent = await agentFor('race-gc-late');
      const bytes = Buffer.from('referenced by a commit GC had to wait for');
      const hash = sha256Hex(bytes);
      await upload(h, agent.token, [bytes]);

      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let commit: Promise<void> | undefined;
      const gc = collectGarbage(h.ctx, {
        graceSeconds: 0,
        // GC has chosen the content; now a commit takes the shared lock, inserts its version and holds on.
        afterCandidatesChosen: async (candidates) => {
          if (!candidates.chunks.includes(hash) || commit) return;
          let inserted!: () => void;
          const insertedYet = new Promise<void>((resolve) => (inserted = resolve));
          commit = lockManagerFor(h.ctx.database).inReferencingTransaction(async (tx) => {
            const [p] = await tx.insert(clientPaths).values({ clientId: agent.clientId, path: '/late-gc' }).returning({ id: clientPaths.id });
            await tx.insert(fileVersions).values({
              pathId: p!.id,
              contentSha256: hash,
              size: bytes.length,
              mtimeMs: 0,
              mode: 0o100644,
              validFrom: sql`now()`,
            });
            inserted();
            await gate;
          });
          await insertedYet;
        },
      });
      await waitUntil(async () => commit !== undefined && (await waiters()) >= 1, 'GC to wait for the content lock');
      release();
      await commit;
      expect((await gc).ran).toBe(true);
      expect(await stored(hash)).toBe(true);
      await expectEveryVersionReadable();
    });

    it('a commit landing between GC choosing a content and locking keeps it', async () => {
      const agent = await agentFor('race-choice');
      const bytes = Buffer.from('chosen by GC, then committed before GC locked');
      const hash = sha256Hex(bytes);
      await upload(h, agent.token, [bytes]);
      const run = (await agent.post<{ runId: string }>('/runs', {})).body.runId;
      let chosen = false;
      const result = await collectGarbage(h.ctx, {
        graceSeconds: 0,
        afterCandidatesChosen: async (candidates) => {
          if (!candidates.chunks.includes(hash)) return;
          chosen = true;
          const committed = await agent.post(`/runs/${run}/changes`, { upserts: [fileUpsert('/chosen', bytes)], deletes: [] });
          expect(committed.body).toEqual({ opened: 1, closed: 0 });
        },
      });
      expect(chosen).toBe(true);
      expect(result.ran).toBe(true);
      expect(await stored(hash)).toBe(true);
      expect(await h.ctx.database.db.select().from(chunks).where(eq(chunks.sha256, hash))).toHaveLength(1);
      await expectEveryVersionReadable();
    });

    it('sequential orders: GC then commit is refused; commit then GC keeps the content', async () => {
      const agent = await agentFor('race-sequential');
      const first = Buffer.from('collected before its commit');
      const second = Buffer.from('committed before GC');
      await upload(h, agent.token, [first, second]);
      const run = (await agent.post<{ runId: string }>('/runs', {})).body.runId;

      await collectGarbage(h.ctx, { graceSeconds: 0 });
      const refused = await agent.post<{ missing: string[] }>(`/runs/${run}/changes`, { upserts: [fileUpsert('/first', first)], deletes: [] });
      expect(refused.status).toBe(409);
      expect(refused.body.missing).toEqual([sha256Hex(first)]);

      await upload(h, agent.token, [second]);
      expect((await agent.post(`/runs/${run}/changes`, { upserts: [fileUpsert('/second', second)], deletes: [] })).status).toBe(200);
      await collectGarbage(h.ctx, { graceSeconds: 0 });
      expect(await stored(sha256Hex(second))).toBe(true);
      await expectEveryVersionReadable();
    });
  });
});
