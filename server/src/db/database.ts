import { rm } from 'node:fs/promises';
import path from 'node:path';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { pino } from 'pino';
import postgres, { type Sql } from 'postgres';
import { DatabaseUnavailableError } from './database-errors.ts';
import { MIGRATIONS_DIR, prepareDatabase, type PrepareDatabaseOptions, type PreparedDatabase } from './prepare-database.ts';
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

export { MIGRATIONS_DIR };

export interface OpenDatabaseOptions extends PrepareDatabaseOptions {
  /** Pool size for the postgres driver. */
  maxConnections?: number;
  /** Where PGlite comes from if DATA_DIR/db must be imported (PGLITE_IMPORT_*); by default fetched into DATA_DIR/pglite-import. */
  pgliteImport?: { moduleDir?: string | undefined; cacheDir?: string | undefined } | undefined;
  /**
   * The database already being prepared by the caller (main.ts starts the
   * embedded PostgreSQL and the migrations before importing the rest of the
   * server, so they overlap the imports); prepared here when absent.
   */
  prepared?: Promise<PreparedDatabase> | undefined;
}

/**
 * Opens the metadata database and applies pending migrations; with no
 * DATABASE_URL, first starts the embedded PostgreSQL. A PGlite database left
 * in DATA_DIR/db by an earlier release is imported, then renamed aside.
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  const log = options.log ?? pino({ level: 'silent' });
  const { options: connection, description, embedded } = await (options.prepared ?? prepareDatabase(options));
  const stopEmbedded = async () => embedded?.stop();
  try {
    // No named prepared statements (decision 177): postgres.js keeps every
    // distinct statement prepared on each connection for the connection's
    // life, and PostgreSQL its plan, 1.2-1.5 MB per backend for one batch
    // insert of 1,250 rows; batch sizes vary, so they piled up, in the
    // backends and in the server's heap, and were seldom used twice.
    const sql = postgres({ ...connection, max: options.maxConnections ?? 10, prepare: false, onnotice: () => {} });
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
      location: description,
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
