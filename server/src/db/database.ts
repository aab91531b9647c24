import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import postgres from 'postgres';
import { parseDatabaseUrl, type DatabaseConnection } from './database-url.ts';
import * as schema from './schema.ts';

export type Schema = typeof schema;
/** Either driver: code is written once against the pg-core query builder. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export interface Database {
  db: Db;
  kind: 'postgres' | 'pglite';
  /** Human-readable location for the start-up log (never contains a password). */
  location: string;
  close(): Promise<void>;
}

const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../drizzle');

export interface OpenDatabaseOptions {
  /** postgres:// URL; when absent an embedded PGlite database lives under `pgliteDir`. */
  databaseUrl?: string | undefined;
  pgliteDir?: string | undefined;
  /** Pool size for the postgres driver. */
  maxConnections?: number;
}

/** Opens the metadata database and applies pending migrations. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  if (options.databaseUrl) {
    const connection = parseDatabaseUrl(options.databaseUrl);
    try {
      await migratePostgresExclusively(connection);
    } catch (error) {
      const reason = connectionFailure(error);
      if (reason === null) throw error;
      throw new DatabaseUnavailableError(`Cannot use the PostgreSQL database at ${connection.description}: ${reason}`, { cause: error });
    }
    const sql = postgres({ ...connection.options, max: options.maxConnections ?? 10, onnotice: () => {} });
    const db = drizzlePostgres(sql, { schema }) as unknown as Db;
    return { db, kind: 'postgres', location: connection.description, close: () => sql.end({ timeout: 5 }) };
  }
  let dataDir: string | undefined;
  if (options.pgliteDir) {
    dataDir = path.resolve(options.pgliteDir);
    await mkdir(dataDir, { recursive: true });
  }
  const client = new PGlite(dataDir);
  const db = drizzlePglite(client, { schema }) as unknown as Db;
  await migratePglite(drizzlePglite(client), { migrationsFolder: MIGRATIONS_DIR });
  return {
    db,
    kind: 'pglite',
    location: dataDir ? `embedded PGlite at ${dataDir}` : 'embedded PGlite in memory',
    close: () => client.close(),
  };
}

/** The database could not be reached or opened at start-up; the message is one line for the operator. */
export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError';
}

// Failures of reaching or entering the database, as opposed to a fault in a
// migration: SQLSTATE classes 08 (connection), 28 (authorization), 3D (no
// such database), 57P03 (starting up), and the socket errors of node:net.
const CONNECTION_SQLSTATES = /^(08|28|3D)|^57P03$/;
const CONNECTION_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOENT', 'EACCES', 'CONNECT_TIMEOUT']);

/** The message of a connection failure in `error` (looking through drizzle's wrapping), or null for any other error. */
function connectionFailure(error: unknown): string | null {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (CONNECTION_SQLSTATES.test(code) || CONNECTION_ERRNOS.has(code))) return current.message;
    current = current.cause;
  }
  return null;
}

/** Advisory lock key held while migrating; next to the others in advisory-locks.ts's LOCK_KEYS range. */
const MIGRATIONS_LOCK_KEY = 7_146_000;

/**
 * Applies pending migrations while holding a session advisory lock, on one
 * connection of its own. Drizzle's migrator creates its schema and table with
 * `if not exists`, which is not safe against a concurrent creator (PostgreSQL
 * raises a unique violation on pg_type), and two replicas could apply the same
 * migration twice; under the lock the second replica waits, then finds
 * everything applied. The lock ends with the connection, even on a crash.
 */
async function migratePostgresExclusively(connection: DatabaseConnection): Promise<void> {
  const sql = postgres({ ...connection.options, max: 1, onnotice: () => {} });
  try {
    await sql`select pg_advisory_lock(${MIGRATIONS_LOCK_KEY}::bigint)`;
    await migratePostgres(drizzlePostgres(sql), { migrationsFolder: MIGRATIONS_DIR });
    await sql`select pg_advisory_unlock(${MIGRATIONS_LOCK_KEY}::bigint)`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Postgres error code of a failure, looking through drizzle's wrapping
 * (drizzle puts the driver error in `cause`).
 */
export function pgErrorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export const PG_UNIQUE_VIOLATION = '23505';
export const PG_FOREIGN_KEY_VIOLATION = '23503';

/** Rows of a raw `db.execute()` result: postgres.js returns an array, PGlite an object with `rows`. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  const rows = (result as { rows?: unknown }).rows;
  return Array.isArray(rows) ? (rows as T[]) : [];
}
