/**
 * The metadata export to the replica store (decision 167) on a real
 * PostgreSQL, with a disk replica: an export holds every table as COPY text
 * in compressed packs under the replica's exports/, which the replica's own
 * listing never shows; a second export of a database that changed a little
 * writes only the chunks that changed; the retention keeps the newest
 * exports and deletes the packs only dropped ones named; a damaged manifest
 * is skipped, not trusted.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiskBlobStore } from '../../src/blob/disk-blob-store.ts';
import { rowsOf } from '../../src/db/database.ts';
import { parseDatabaseUrl } from '../../src/db/database-url.ts';
import { chunkLocations, exportsKept, listExports, readManifest, runMetadataExport, type ExportSummary, type MetadataExportOptions, type StoredExport } from '../../src/storage/metadata-export.ts';
import { readChunk } from '../../src/storage/pack-reader.ts';
import { loadExport, migrationsFolderAt } from '../../src/storage/recovery.ts';
import { createApiToken } from '../../src/services/api-tokens.service.ts';
import { SYSTEM_ACTOR } from '../../src/services/users.service.ts';
import { TestAgent } from '../dashboard/agent-fixture.ts';
import { addUser, startDashboardHarness, type DashboardHarness } from '../dashboard/dashboard-harness.ts';
import { createScratchPostgres, testDatabaseKinds } from '../helpers/test-database.ts';

describe.each(testDatabaseKinds())('metadata export (%s)', (db) => {
  let h: DashboardHarness;
  let replicaDir: string;
  let agent: TestAgent;

  const exportNow = async (options: MetadataExportOptions): Promise<ExportSummary> => {
    const result = await runMetadataExport(h.ctx, options);
    if (!result.ran) throw new Error('the export did not run');
    return result;
  };
  const keysOf = async (): Promise<string[]> => {
    const keys: string[] = [];
    for await (const info of h.ctx.exports!.list()) keys.push(info.key);
    return keys.sort();
  };

  beforeAll(async () => {
    replicaDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-export-replica-'));
    h = await startDashboardHarness(db, { REPLICA_DIR: replicaDir });
    await addUser(h.ctx, 'erin', 'erin-password-1');
    agent = await TestAgent.register(h.url, 'erin', 'erin-password-1', 'erin-box');
    // Enough rows that the big tables span many chunks, so that dedup between exports shows.
    for (let batch = 0; batch < 5; batch++) {
      await agent.backup(
        Array.from({ length: 500 }, (_, j) => {
          const i = batch * 500 + j;
          return { path: `/srv/project/module-${i % 50}/file-${i}.txt`, content: Buffer.from(`file ${i} ${randomBytes(8).toString('hex')}\n`) };
        }),
      );
    }
  });

  afterAll(async () => {
    await h?.close();
    if (replicaDir) await rm(replicaDir, { recursive: true, force: true });
  });

  it('writes every table as verified COPY text in packs the replica itself never lists', async () => {
    const result = await exportNow({ keep: 10 });
    expect(result).toMatchObject({ chunksReused: 0 });
    expect(result.chunksWritten).toBeGreaterThan(0);
    const manifest = await readManifest(h.ctx.exports!, result.id);
    const names = manifest.tables.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['users', 'clients', 'contents', 'packs', 'chunks', 'file_versions']));
    expect(names).not.toContain('servers');
    // Parents before children: clients after users.
    expect(names.indexOf('clients')).toBeGreaterThan(names.indexOf('users'));
    const [{ n }] = rowsOf<{ n: number }>(await h.ctx.database.db.execute(sql`select count(*)::int as n from client_paths`)) as [{ n: number }];
    expect(manifest.tables.find((t) => t.name === 'client_paths')?.rows).toBe(n);
    // Every chunk reads back verified from its pack.
    for (const location of chunkLocations(manifest)) await readChunk(h.ctx.exports!, location);
    const users = manifest.tables.find((t) => t.name === 'users')!;
    const text = Buffer.concat(await Promise.all(users.chunks.map((_, i) => readChunk(h.ctx.exports!, chunkLocations({ ...manifest, tables: [users] })[i]!)))).toString('utf8');
    expect(text).toContain('erin');
    // Under the replica's exports/ directory, and not among the replica's own objects.
    expect(await readdir(replicaDir)).toContain('exports');
    const replicaKeys: string[] = [];
    for await (const info of h.ctx.replica!.list()) replicaKeys.push(info.key);
    expect(replicaKeys).not.toContain(result.id);
    expect(replicaKeys.some((key) => manifest.packs.some((pack) => key.endsWith(pack)))).toBe(false);
  });

  it('loads back into an empty database at its migration level: every table holds the same rows, every type intact', async () => {
    // Values no backup writes, in the columns most likely to break a text round trip.
    await h.ctx.database.sql`update users set alert_email = ${'tab\there, newline\nthere, back\\slash, "quote", \\N'} where username = 'erin'`;
    const result = await exportNow({ keep: 10 });
    const manifest = await readManifest(h.ctx.exports!, result.id);
    const target = await createScratchPostgres(db);
    const sqlB = postgres({ ...parseDatabaseUrl(target!.url).options, max: 1, onnotice: () => {} });
    try {
      const folder = await migrationsFolderAt(manifest);
      await migrate(drizzle(sqlB), { migrationsFolder: folder });
      await rm(folder, { recursive: true, force: true });
      await loadExport(sqlB, h.ctx.exports!, manifest, h.ctx.log);
      const fingerprint = async (sqlX: postgres.Sql, table: string) =>
        (await sqlX.unsafe(`select count(*)::int as n, coalesce(md5(string_agg(t::text, '|' order by t::text)), '') as md5 from "${table}" t`))[0];
      for (const table of manifest.tables) {
        expect(await fingerprint(sqlB, table.name), table.name).toEqual(await fingerprint(h.ctx.database.sql, table.name));
      }
      const [erin] = await sqlB`select alert_email from users where username = 'erin'`;
      expect(erin?.alert_email).toBe('tab\there, newline\nthere, back\\slash, "quote", \\N');
      // The sequences go on after the loaded rows.
      for (const { name, lastValue } of manifest.sequences) {
        const [row] = await sqlB.unsafe(`select last_value::text as v from ${name}`);
        expect(row?.v, name).toBe(lastValue ?? row?.v);
      }
    } finally {
      await sqlB.end();
      await target?.drop();
    }
  });

  it('writes only what changed the next time, and the retention deletes what only dropped exports named', async () => {
    const before = await listExports(h.ctx.exports!);
    await agent.backup([{ path: '/srv/new.txt', content: Buffer.from('one more file\n') }]);
    const second = await exportNow({ keep: 10 });
    expect(second.chunksReused).toBeGreaterThan(0);
    expect(second.chunksWritten).toBeLessThan(second.chunksReused);
    const third = await exportNow({ keep: 1, dailySeconds: 0 });
    expect(third.chunksWritten).toBe(0);
    expect(third.manifestsDeleted).toBe(before.length + 1);
    const kept = await listExports(h.ctx.exports!);
    expect(kept.map((e) => e.id)).toEqual([third.id]);
    // Only the packs the one kept manifest names are left.
    const packs = (await keysOf()).filter((key) => key.startsWith('packs/'));
    expect(packs.sort()).toEqual([...new Set(kept[0]!.manifest.packs.map((p) => `packs/${p}`))].sort());
    for (const location of chunkLocations(kept[0]!.manifest)) await readChunk(h.ctx.exports!, location);
  });

  it('POST /api/v1/admin/replica/export writes one for an admin; a user or a read-only token gets 403', async () => {
    const root = await addUser(h.ctx, `root-${db}`, 'root-password-1', true);
    const token = async (userId: string, readOnly: boolean) =>
      (await createApiToken(h.ctx, userId, { name: 'export', readOnly, expiresInDays: 1 }, SYSTEM_ACTOR, new Date())).token;
    const post = (bearer: string) => request(`${h.url}/api/v1/admin/replica/export`, { method: 'POST', headers: { authorization: `Bearer ${bearer}` } });
    const user = await addUser(h.ctx, `ursula-${db}`, 'ursula-password-1');
    expect((await post(await token(user.id, false))).statusCode).toBe(403);
    expect((await post(await token(root.id, true))).statusCode).toBe(403);
    const response = await post(await token(root.id, false));
    expect(response.statusCode).toBe(200);
    const body = (await response.body.json()) as { id: string; rows: number };
    expect((await listExports(h.ctx.exports!)).map((e) => e.id)).toContain(body.id);
    expect(body.rows).toBeGreaterThan(0);
  });

  it('skips a manifest that does not hash to its name', async () => {
    const [newest] = await listExports(h.ctx.exports!);
    const file = (h.ctx.exports as DiskBlobStore).pathOf(newest!.id);
    await writeFile(file, '{"format":"cairn-metadata-export/1"}');
    const damaged: string[] = [];
    expect((await listExports(h.ctx.exports!, damaged)).map((e) => e.id)).not.toContain(newest!.id);
    expect(damaged).toEqual([newest!.id]);
    // The next export deletes it.
    const next = await exportNow({ keep: 1, dailySeconds: 0 });
    expect((await listExports(h.ctx.exports!, damaged)).map((e) => e.id)).toEqual([next.id]);
    expect(await keysOf()).not.toContain(newest!.id);
    expect(damaged).toEqual([newest!.id]);
  });
});

describe.each(testDatabaseKinds())('metadata export without a replica (%s)', (db) => {
  it('is refused with 409 naming the missing setting, and the periodic job does nothing', async () => {
    const h = await startDashboardHarness(db);
    try {
      expect(h.ctx.exports).toBeUndefined();
      expect(await runMetadataExport(h.ctx)).toEqual({ ran: false });
      const root = await addUser(h.ctx, 'root', 'root-password-1', true);
      const { token } = await createApiToken(h.ctx, root.id, { name: 'export', readOnly: false, expiresInDays: 1 }, SYSTEM_ACTOR, new Date());
      const response = await request(`${h.url}/api/v1/admin/replica/export`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      expect(response.statusCode).toBe(409);
      expect(((await response.body.json()) as { message: string }).message).toContain('REPLICA_DIR or REPLICA_S3_BUCKET');
    } finally {
      await h.close();
    }
  });
});

describe('which exports the retention keeps', () => {
  const at = (iso: string, id: string): StoredExport => ({ id, manifest: { createdAt: iso } as StoredExport['manifest'] });
  it('keeps the newest few, then the newest of each day within the window', () => {
    const now = Date.parse('2026-12-03T12:00:00Z');
    const exports = [
      at('2026-12-03T11:00:00.000Z', 'a'),
      at('2026-12-03T10:00:00.000Z', 'b'),
      at('2026-12-03T09:00:00.000Z', 'c'),
      at('2026-12-02T23:00:00.000Z', 'd'),
      at('2026-12-02T22:00:00.000Z', 'e'),
      at('2026-12-01T08:00:00.000Z', 'f'),
      at('2026-11-20T08:00:00.000Z', 'g'),
    ];
    expect([...exportsKept(exports, 2, 7 * 86_400, now)].sort()).toEqual(['a', 'b', 'd', 'f']);
    expect([...exportsKept(exports, 0, 0, now)]).toEqual(['a']);
  });
});
