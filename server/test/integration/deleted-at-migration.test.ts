/**
 * Migration 0020 backfills `client_paths.deleted_at` from existing versions
 * (decision 160): a path whose newest version is closed was deleted when
 * that version stopped being current; a path with a current version, or one
 * deleted and backed up again, is not deleted. Data written by the schema
 * before 0020, then migrated, then read through the deleted-files view.
 */
import { rm } from 'node:fs/promises';
import { asc, eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { parseDatabaseUrl } from '../../src/db/database-url.ts';
import { clientPaths } from '../../src/db/schema.ts';
import { createDashboardRepository } from '../../src/dashboard/dashboard.repository.ts';
import { baseUrl, migrationsUpTo } from '../helpers/migrations.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const BEFORE = '0019_servers';



describe.each(testDatabaseKinds())('migration 0020 marks existing deletions (%s)', (kind) => {
  const name = `cairn_deleted_${Math.random().toString(16).slice(2, 10)}`;
  const ids = { alice: '11111111-1111-4111-8111-111111111111', box: '33333333-3333-4333-8333-333333333333' };
  let database: Database;
  let migrationsDir: string;

  beforeAll(async () => {
    const admin = postgres({ ...parseDatabaseUrl(baseUrl(kind)).options, max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name} template template0`);
    await admin.end();
    const u = new URL(baseUrl(kind));
    u.pathname = `/${name}`;
    migrationsDir = await migrationsUpTo(BEFORE);
    const sql = postgres({ ...parseDatabaseUrl(u.toString()).options, max: 1, onnotice: () => {} });
    await migrate(drizzle(sql), { migrationsFolder: migrationsDir });
    // As the server wrote them before 0020: paths once per client, versions pointing at them.
    await sql.unsafe(`
      insert into users (id, username, password_hash) values ('${ids.alice}', 'alice', 'x');
      insert into clients (id, owner_id, name) values ('${ids.box}', '${ids.alice}', 'box');
      insert into client_paths (id, client_id, path) values
        (1, '${ids.box}', '/data/kept.txt'), (2, '${ids.box}', '/data/gone.txt'), (3, '${ids.box}', '/data/back.txt'), (4, '${ids.box}', '/other/old.txt');
      insert into file_versions (path_id, kind, size, mtime_ms, mode, valid_from, valid_to) values
        (1, 'file', 1, 1000, ${0o100644}, '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'),
        (1, 'file', 2, 2000, ${0o100644}, '2026-01-02T00:00:00Z', null),
        (2, 'file', 1, 1000, ${0o100644}, '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'),
        (2, 'file', 2, 2000, ${0o100644}, '2026-01-02T00:00:00Z', '2026-01-05T06:00:00Z'),
        (3, 'file', 1, 1000, ${0o100644}, '2026-01-01T00:00:00Z', '2026-01-03T00:00:00Z'),
        (3, 'file', 1, 1000, ${0o100644}, '2026-01-04T00:00:00Z', null),
        (4, 'file', 1, 1000, ${0o100644}, '2026-01-01T00:00:00Z', '2026-01-07T00:00:00Z');
    `);
    await sql.end();
    // openDatabase applies the rest, 0020 included.
    database = await openDatabase({ databaseUrl: u.toString() });
  });

  afterAll(async () => {
    await database?.close();
    const admin = postgres({ ...parseDatabaseUrl(baseUrl(kind)).options, max: 1, onnotice: () => {} });
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
    if (migrationsDir) await rm(migrationsDir, { recursive: true, force: true });
  });

  it('sets deleted_at to when the newest version closed, and only for paths without a current version', async () => {
    const rows = await database.db.select({ path: clientPaths.path, deletedAt: clientPaths.deletedAt }).from(clientPaths).where(eq(clientPaths.clientId, ids.box)).orderBy(asc(clientPaths.path));
    expect(rows.map((r) => [r.path, r.deletedAt?.toISOString() ?? null])).toEqual([
      ['/data/back.txt', null],
      ['/data/gone.txt', '2026-01-05T06:00:00.000Z'],
      ['/data/kept.txt', null],
      ['/other/old.txt', '2026-01-07T00:00:00.000Z'],
    ]);
  });

  it('lists the migrated deletions in the deleted-files view, newest first, under a folder too', async () => {
    const repo = createDashboardRepository(database.db);
    const all = await repo.listDeletedPaths(ids.box, '/', { limit: 50 });
    expect(all.deleted.map((r) => r.path)).toEqual(['/other/old.txt', '/data/gone.txt']);
    const data = await repo.listDeletedPaths(ids.box, '/data', { limit: 50 });
    expect(data.deleted.map((r) => r.path)).toEqual(['/data/gone.txt']);
  });
});
