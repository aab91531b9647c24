import { rm } from 'node:fs/promises';
import { asc, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '@cairn/shared';
import { openDatabase, rowsOf, type Database } from '../../src/db/database.ts';
import { parseDatabaseUrl } from '../../src/db/database-url.ts';
import { chunks, clientPaths, contentChunks, contents, ownerContents } from '../../src/db/schema.ts';
import { listPathVersions, listTreeAsOf } from '../../src/services/backup-repository.ts';
import { baseUrl, migrationsUpTo } from '../helpers/migrations.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

/**
 * Migration 0007 (the lean schema, decisions 90-93) converts the data an
 * earlier release stored: a database is brought to 0006 only, filled the
 * way v1 wrote it (hex hashes, paths in every version, a content_chunks row
 * per content), then migrated by the server's own start-up.
 */
const BEFORE_LEAN = '0006_users_alert_email';



describe.each(testDatabaseKinds())('migration 0007 converts v1 data in place (%s)', (kind) => {
  const name = `cairn_lean_${Math.random().toString(16).slice(2, 10)}`;
  let url: string;
  let database: Database;
  let migrationsDir: string;
  const bytes = { a1: Buffer.from('alpha one'), a2: Buffer.from('alpha two!'), b: Buffer.from('bravo') };
  const hash = { a1: sha256Hex(bytes.a1), a2: sha256Hex(bytes.a2), b: sha256Hex(bytes.b) };
  const ids = { alice: '11111111-1111-4111-8111-111111111111', bob: '22222222-2222-4222-8222-222222222222', box: '33333333-3333-4333-8333-333333333333', other: '44444444-4444-4444-8444-444444444444' };

  beforeAll(async () => {
    const admin = postgres({ ...parseDatabaseUrl(baseUrl(kind)).options, max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name} template template0`);
    await admin.end();
    const u = new URL(baseUrl(kind));
    u.pathname = `/${name}`;
    url = u.toString();

    migrationsDir = await migrationsUpTo(BEFORE_LEAN);
    const sql = postgres({ ...parseDatabaseUrl(url).options, max: 1, onnotice: () => {} });
    await migrate(drizzle(sql), { migrationsFolder: migrationsDir });
    // What v1 wrote: hex text hashes, the storage key equal to the hash, one content_chunks row per content.
    await sql.unsafe(`
      insert into users (id, username, password_hash) values ('${ids.alice}', 'alice', 'x'), ('${ids.bob}', 'bob', 'x');
      insert into clients (id, owner_id, name) values ('${ids.box}', '${ids.alice}', 'box'), ('${ids.other}', '${ids.bob}', 'other');
      insert into chunks (sha256, size, storage_key) values
        ('${hash.a1}', ${bytes.a1.length}, '${hash.a1}'), ('${hash.a2}', ${bytes.a2.length}, '${hash.a2}'), ('${hash.b}', ${bytes.b.length}, '${hash.b}');
      insert into contents (sha256, size, chunk_count) values
        ('${hash.a1}', ${bytes.a1.length}, 1), ('${hash.a2}', ${bytes.a2.length}, 1), ('${hash.b}', ${bytes.b.length}, 1);
      insert into content_chunks (content_sha256, seq, chunk_sha256, "offset") values
        ('${hash.a1}', 0, '${hash.a1}', 0), ('${hash.a2}', 0, '${hash.a2}', 0), ('${hash.b}', 0, '${hash.b}', 0);
      insert into owner_contents (user_id, content_sha256) values
        ('${ids.alice}', '${hash.a1}'), ('${ids.alice}', '${hash.a2}'), ('${ids.bob}', '${hash.b}');
      insert into file_versions (client_id, path, kind, content_sha256, size, mtime_ms, mode, valid_from, valid_to) values
        ('${ids.box}', '/data', 'directory', null, 0, 1000, ${0o40755}, '2026-01-01T00:00:00Z', null),
        ('${ids.box}', '/data/a.txt', 'file', '${hash.a1}', ${bytes.a1.length}, 1000, ${0o100644}, '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'),
        ('${ids.box}', '/data/a.txt', 'file', '${hash.a2}', ${bytes.a2.length}, 2000, ${0o100644}, '2026-01-02T00:00:00Z', null),
        ('${ids.box}', '/data/link', 'symlink', null, 5, 1000, ${0o120777}, '2026-01-01T00:00:00Z', null),
        ('${ids.other}', '/data/a.txt', 'file', '${hash.b}', ${bytes.b.length}, 1000, ${0o100600}, '2026-01-01T00:00:00Z', null);
      update file_versions set link_target = 'a.txt' where kind = 'symlink';
    `);
    await sql.end();
    database = await openDatabase({ databaseUrl: url });
  });

  afterAll(async () => {
    await database?.close();
    const admin = postgres({ ...parseDatabaseUrl(baseUrl(kind)).options, max: 1, onnotice: () => {} });
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
    if (migrationsDir) await rm(migrationsDir, { recursive: true, force: true });
  });

  it('keeps every version, each path once per client, with its hashes as bytes', async () => {
    const tree = await listTreeAsOf(database.db, ids.box);
    expect(tree.files.map((f) => [f.path, f.kind, f.sha256, f.size, f.linkTarget])).toEqual([
      ['/data', 'directory', null, 0, null],
      ['/data/a.txt', 'file', hash.a2, bytes.a2.length, null],
      ['/data/link', 'symlink', null, 5, 'a.txt'],
    ]);
    const asOfDayOne = await listTreeAsOf(database.db, ids.box, { asOf: new Date('2026-01-01T12:00:00Z') });
    expect(asOfDayOne.files.find((f) => f.path === '/data/a.txt')?.sha256).toBe(hash.a1);
    expect((await listPathVersions(database.db, ids.box, '/data/a.txt')).map((v) => [v.sha256, v.validTo])).toEqual([
      [hash.a2, null],
      [hash.a1, '2026-01-02T00:00:00.000Z'],
    ]);
    expect((await listTreeAsOf(database.db, ids.other)).files.map((f) => [f.path, f.sha256])).toEqual([['/data/a.txt', hash.b]]);

    const paths = await database.db.select({ clientId: clientPaths.clientId, path: clientPaths.path }).from(clientPaths).orderBy(asc(clientPaths.clientId), asc(clientPaths.path));
    expect(paths).toEqual([
      { clientId: ids.box, path: '/data' },
      { clientId: ids.box, path: '/data/a.txt' },
      { clientId: ids.box, path: '/data/link' },
      { clientId: ids.other, path: '/data/a.txt' },
    ]);
    const rows = rowsOf<{ bytes: number }>(await database.db.execute(sql`select octet_length(sha256) as bytes from chunks`));
    expect(rows.map((r) => Number(r.bytes))).toEqual([32, 32, 32]);
  });

  it('keeps a one-chunk content as its chunk row alone, and who holds what', async () => {
    expect(await database.db.select().from(contentChunks)).toEqual([]);
    expect(await database.db.select().from(contents)).toEqual([]);
    const chunkRows = await database.db.select({ sha256: chunks.sha256, size: chunks.size }).from(chunks);
    expect(chunkRows.map((c) => [c.sha256, c.size]).sort()).toEqual(Object.entries(hash).map(([k, v]) => [v, bytes[k as keyof typeof bytes].length]).sort());
    const held = await database.db.select().from(ownerContents);
    expect(held.map((o) => `${o.userId}:${o.contentSha256}`).sort()).toEqual(
      [`${ids.alice}:${hash.a1}`, `${ids.alice}:${hash.a2}`, `${ids.bob}:${hash.b}`].sort(),
    );
  });
});
