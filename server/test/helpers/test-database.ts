import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { openDatabase, type Database } from '../../src/db/database.ts';

export type DatabaseKind = 'pglite' | 'postgres';

/** PGlite always; a real PostgreSQL server too when TEST_DATABASE_URL (or DATABASE_URL) is set. */
export function testDatabaseKinds(): DatabaseKind[] {
  return adminUrl() ? ['pglite', 'postgres'] : ['pglite'];
}

function adminUrl(): string | undefined {
  return process.env.TEST_DATABASE_URL || process.env.DATABASE_URL || undefined;
}

/**
 * A fresh, migrated database. On PostgreSQL a scratch database is created
 * next to TEST_DATABASE_URL's and dropped by `close()`, so test files can run
 * in parallel without seeing each other's rows.
 */
export async function openTestDatabase(kind: DatabaseKind): Promise<Database & { url: string | undefined }> {
  if (kind === 'pglite') {
    const database = await openDatabase({});
    return { ...database, url: undefined };
  }
  const scratch = await createScratchPostgres();
  if (!scratch) throw new Error('postgres tests need TEST_DATABASE_URL');
  const database = await openDatabase({ databaseUrl: scratch.url });
  return {
    ...database,
    url: scratch.url,
    async close() {
      await database.close();
      await scratch.drop();
    },
  };
}

/** A scratch database URL for tests that start a server process themselves; `drop()` removes it. */
export async function createScratchPostgres(): Promise<{ url: string; drop(): Promise<void> } | undefined> {
  const base = adminUrl();
  if (!base) return undefined;
  const name = `cairn_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const cleanup = postgres(base, { max: 1, onnotice: () => {} });
      await cleanup.unsafe(`drop database if exists ${name} with (force)`);
      await cleanup.end();
    },
  };
}
