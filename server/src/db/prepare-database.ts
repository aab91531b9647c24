/**
 * The first half of opening the metadata database, the half that needs
 * neither the schema nor drizzle's query builder: with DATABASE_URL unset,
 * start the embedded PostgreSQL; then apply pending migrations; then, for a
 * new embedded cluster, wait until it is on disk. main.ts runs it while the
 * rest of the server is still being imported (decision 175), so it imports
 * little itself; openDatabase runs it when it is not given one.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { pino, type Logger } from 'pino';
import postgres, { type Options } from 'postgres';
import { DatabaseUnavailableError } from './database-errors.ts';
import { parseDatabaseUrl } from './database-url.ts';
import { EmbeddedPostgresError, startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.ts';

/** This release's drizzle migrations. */
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../drizzle');

export interface PrepareDatabaseOptions {
  /** postgres:// URL; when absent the server runs its own PostgreSQL under `dataDir`. */
  databaseUrl?: string | undefined;
  /** DATA_DIR: the embedded cluster goes in `pg/`. */
  dataDir?: string | undefined;
  log?: Logger | undefined;
}

/** A migrated database, ready for the server's pool. */
export interface PreparedDatabase {
  options: Options<Record<string, never>>;
  /** Human-readable location for the start-up log (never contains a password). */
  description: string;
  /** The embedded PostgreSQL when DATABASE_URL is unset; its stop() is the caller's. */
  embedded: EmbeddedPostgres | undefined;
}

/** Starts the embedded PostgreSQL when there is no DATABASE_URL and applies pending migrations; on failure nothing is left running. */
export async function prepareDatabase(options: PrepareDatabaseOptions): Promise<PreparedDatabase> {
  const log = options.log ?? pino({ level: 'silent' });
  let embedded: EmbeddedPostgres | undefined;
  let connection: { options: Options<Record<string, never>>; description: string };
  if (options.databaseUrl) {
    connection = parseDatabaseUrl(options.databaseUrl);
  } else {
    if (!options.dataDir) throw new Error('openDatabase needs a DATABASE_URL or a DATA_DIR');
    try {
      embedded = await startEmbeddedPostgres({ dataDir: options.dataDir, log });
    } catch (error) {
      if (error instanceof EmbeddedPostgresError) throw new DatabaseUnavailableError(error.message, { cause: error });
      throw error;
    }
    connection = { options: embedded.connectionOptions(), description: embedded.location };
  }
  try {
    await migratePostgresExclusively(connection.options);
    // A new embedded cluster is on disk before anything is imported or served (decision 174).
    await embedded?.durable;
  } catch (error) {
    await embedded?.stop();
    if (error instanceof EmbeddedPostgresError) throw new DatabaseUnavailableError(error.message, { cause: error });
    const reason = connectionFailure(error);
    if (reason === null) throw error;
    throw new DatabaseUnavailableError(`Cannot use the PostgreSQL database at ${connection.description}: ${reason}`, { cause: error });
  }
  return { options: connection.options, description: connection.description, embedded };
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
 * connection of its own. The schema and table of drizzle's migrator are made
 * with `if not exists`, which is not safe against a concurrent creator
 * (PostgreSQL raises a unique violation on pg_type), and two replicas could
 * apply the same migration twice; under the lock the second replica waits,
 * then finds everything applied. The lock ends with the connection, even on a
 * crash.
 *
 * Drizzle's own migrator sends each of the 170-odd statements as a query of
 * its own; this does what it does (the same table, hashes and order, so
 * databases migrated by either are the same) with all pending migrations as
 * one multi-statement query in one transaction (decision 175): one round
 * trip for the lock and the check, three for a fresh database.
 */
async function migratePostgresExclusively(options: Options<Record<string, never>>, migrationsFolder = MIGRATIONS_DIR): Promise<void> {
  const migrations = readMigrationFiles({ migrationsFolder });
  const sql = postgres({ ...options, max: 1, onnotice: () => {} });
  try {
    const results = (await sql
      .unsafe(
        `select pg_advisory_lock(${MIGRATIONS_LOCK_KEY}::bigint);
         create schema if not exists drizzle;
         create table if not exists drizzle.__drizzle_migrations (id serial primary key, hash text not null, created_at bigint);
         select created_at from drizzle.__drizzle_migrations order by created_at desc limit 1`,
      )
      .simple()) as unknown as { created_at: string | null }[][];
    const last = results.at(-1)?.[0]?.created_at;
    const pending = migrations.filter((m) => last === undefined || last === null || Number(last) < m.folderMillis);
    if (pending.length > 0) {
      // A newline before each separator: a statement may end in a line comment.
      const text = pending
        .flatMap((m) => [...m.sql, `insert into drizzle.__drizzle_migrations ("hash", "created_at") values ('${m.hash}', ${m.folderMillis})`])
        .filter((statement) => statement.trim() !== '')
        .join('\n;\n');
      await sql.begin((tx) => tx.unsafe(text).simple());
    }
    await sql`select pg_advisory_unlock(${MIGRATIONS_LOCK_KEY}::bigint)`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
