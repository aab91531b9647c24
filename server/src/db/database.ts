import { rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { pino, type Logger } from 'pino';
import postgres, { type Options, type Sql } from 'postgres';
import { DatabaseUnavailableError } from './database-errors.ts';
import { parseDatabaseUrl } from './database-url.ts';
import { EmbeddedPostgresError, startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.ts';
import { importPgliteIfPresent, PgliteImportUnavailableError } from './pglite-import.ts';
import * as schema from './schema.ts';

export type Schema = typeof schema;
/** Code is written against the pg-core query builder; the driver is postgres.js. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export interface Database {
  db: Db;
  /** Always a real PostgreSQL server: DATABASE_URL's, or the embedded one under DATA_DIR/pg. */
  kind: 'postgres';
  /** Human-readable location for the start-up log (never contains a password). */
  location: string;
  /**
   * The postgres.js pool under `db`, for what drizzle cannot say: COPY
   * streams and snapshot transactions (the metadata export, decision 167).
   */
  sql: Sql;
  /**
   * LISTEN on a channel. postgres.js holds one extra connection for all of a
   * pool's listeners (not one per call) and re-listens after a reconnect.
   */
  listen(channel: string, onPayload: (payload: string) => void, onListen?: () => void): Promise<{ unlisten(): Promise<void> }>;
  close(): Promise<void>;
}

/** This release's drizzle migrations. */
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../drizzle');

export interface OpenDatabaseOptions {
  /** postgres:// URL; when absent the server runs its own PostgreSQL under `dataDir`. */
  databaseUrl?: string | undefined;
  /** DATA_DIR: the embedded cluster (`pg/`) and an earlier release's PGlite (`db/`) to import. */
  dataDir?: string | undefined;
  log?: Logger | undefined;
  /** Pool size for the postgres driver. */
  maxConnections?: number;
  /** Where PGlite comes from if DATA_DIR/db must be imported (PGLITE_IMPORT_*); by default fetched into DATA_DIR/pglite-import. */
  pgliteImport?: { moduleDir?: string | undefined; cacheDir?: string | undefined } | undefined;
  /**
   * The embedded PostgreSQL of `dataDir`, already being started by the caller
   * (main.ts starts it before importing the rest of the server, so initdb and
   * the postmaster's start overlap the imports); started here when absent.
   */
  embedded?: Promise<EmbeddedPostgres> | undefined;
}

/**
 * Opens the metadata database and applies pending migrations; with no
 * DATABASE_URL, first starts the embedded PostgreSQL. A PGlite database left
 * in DATA_DIR/db by an earlier release is imported, then renamed aside.
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  const log = options.log ?? pino({ level: 'silent' });
  let embedded: EmbeddedPostgres | undefined;
  let connection: { options: Options<Record<string, never>>; description: string };
  if (options.databaseUrl) {
    connection = parseDatabaseUrl(options.databaseUrl);
  } else {
    if (!options.dataDir) throw new Error('openDatabase needs a DATABASE_URL or a DATA_DIR');
    try {
      embedded = await (options.embedded ?? startEmbeddedPostgres({ dataDir: options.dataDir, log }));
    } catch (error) {
      if (error instanceof EmbeddedPostgresError) throw new DatabaseUnavailableError(error.message, { cause: error });
      throw error;
    }
    connection = { options: embedded.connectionOptions(), description: embedded.location };
  }
  const stopEmbedded = async () => embedded?.stop();
  try {
    try {
      await migratePostgresExclusively(connection.options);
    } catch (error) {
      const reason = connectionFailure(error);
      if (reason === null) throw error;
      throw new DatabaseUnavailableError(`Cannot use the PostgreSQL database at ${connection.description}: ${reason}`, { cause: error });
    }
    const sql = postgres({ ...connection.options, max: options.maxConnections ?? 10, onnotice: () => {} });
    if (options.dataDir) {
      const dataDir = path.resolve(options.dataDir);
      const defaultCache = path.join(dataDir, 'pglite-import');
      const cacheDir = options.pgliteImport?.cacheDir ?? defaultCache;
      try {
        const imported = await importPgliteIfPresent(path.join(dataDir, 'db'), sql, MIGRATIONS_DIR, log, { moduleDir: options.pgliteImport?.moduleDir, cacheDir });
        // The fetched PGlite (some 25 MB) has done its one job; a cache the operator chose is theirs to keep.
        if (imported && cacheDir === defaultCache) await rm(defaultCache, { recursive: true, force: true });
      } catch (error) {
        await sql.end({ timeout: 5 });
        if (error instanceof PgliteImportUnavailableError) throw new DatabaseUnavailableError(error.message, { cause: error });
        throw error;
      }
    }
    const db = drizzlePostgres(sql, { schema }) as unknown as Db;
    return {
      db,
      sql,
      kind: 'postgres',
      location: connection.description,
      async listen(channel, onPayload, onListen) {
        const { unlisten } = await sql.listen(channel, onPayload, onListen);
        return { unlisten: async () => void (await unlisten()) };
      },
      async close() {
        await sql.end({ timeout: 5 });
        await stopEmbedded();
      },
    };
  } catch (error) {
    await stopEmbedded();
    throw error;
  }
}

export { DatabaseUnavailableError };

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
async function migratePostgresExclusively(options: Options<Record<string, never>>): Promise<void> {
  const sql = postgres({ ...options, max: 1, onnotice: () => {} });
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

/** Whether text is a UUID, checked before it meets a uuid column (PostgreSQL refuses other text there with an error, not an empty answer). */
export const isUuid = (value: string): boolean => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);

export const PG_UNIQUE_VIOLATION = '23505';
export const PG_FOREIGN_KEY_VIOLATION = '23503';

/** A number from a raw row's column (bigint and numeric arrive as strings); 0 for null. */
export const numberOf = (value: unknown): number => (value === null || value === undefined ? 0 : Number(value));
/** A time from a raw row's column; null for null. */
export const dateOf = (value: unknown): Date | null => (value === null || value === undefined ? null : new Date(value as string));

/** Rows of a raw `db.execute()` result (postgres.js returns the rows as an array). */
export function rowsOf<T>(result: unknown): T[] {
  return Array.isArray(result) ? (result as T[]) : [];
}
