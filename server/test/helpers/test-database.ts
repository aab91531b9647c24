import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { parseDatabaseUrl } from '../../src/db/database-url.ts';

/**
 * `embedded`: the run's embedded PostgreSQL (started once by
 * embedded-postgres-setup.ts, the server's own code). `postgres`:
 * TEST_DATABASE_URL's server (or DATABASE_URL's), when set.
 */
export type DatabaseKind = 'embedded' | 'postgres';

/** The embedded PostgreSQL always; a separate PostgreSQL server too when TEST_DATABASE_URL (or DATABASE_URL) is set. */
export function testDatabaseKinds(): DatabaseKind[] {
  return externalUrl() ? ['embedded', 'postgres'] : ['embedded'];
}

function externalUrl(): string | undefined {
  return process.env.TEST_DATABASE_URL || process.env.DATABASE_URL || undefined;
}

/** The cluster's own template, already migrated (see embedded-postgres-setup.ts). */
const TEMPLATE_DATABASE = 'cairn_template';

/**
 * A fresh, migrated database in a scratch database of its own, dropped by
 * `close()`, so test files can run in parallel without seeing each other's rows.
 */
export async function openTestDatabase(kind: DatabaseKind): Promise<Database & { url: string }> {
  const scratch = await createScratchPostgres(kind);
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

/**
 * A scratch database URL, for tests that start a server process themselves;
 * `drop()` removes it. On TEST_DATABASE_URL's server by default (undefined
 * when that is not set); on the run's embedded PostgreSQL with `embedded`,
 * cloned from the migrated template.
 */
export async function createScratchPostgres(kind: DatabaseKind = 'postgres'): Promise<{ url: string; drop(): Promise<void> } | undefined> {
  const base = kind === 'embedded' ? inject('embeddedPostgresUrl') : externalUrl();
  if (!base) return undefined;
  const name = `cairn_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres({ ...parseDatabaseUrl(base).options, max: 1, onnotice: () => {} });
  await admin.unsafe(kind === 'embedded' ? `create database ${name} template ${TEMPLATE_DATABASE}` : `create database ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const cleanup = postgres({ ...parseDatabaseUrl(base).options, max: 1, onnotice: () => {} });
      await cleanup.unsafe(`drop database if exists ${name} with (force)`);
      await cleanup.end();
    },
  };
}
