/**
 * The one-time move from an earlier release's embedded PGlite (DATA_DIR/db)
 * into PostgreSQL. A native PostgreSQL cannot open that directory: PGlite is
 * a 32-bit WebAssembly build ("initialized without USE_FLOAT8_BYVAL"), and
 * the platform package ships no pg_dump. So PGlite itself reads it, loaded
 * only here and only when such a directory exists (docs/decisions.md #72),
 * fetched on demand at a pinned version (pglite-loader.ts, #100): it is no
 * dependency of the server.
 *
 * The old database is first brought to the current schema by the same
 * migrations, then every table is copied (COPY text format, parents before
 * children) in one transaction of the new database, with its sequences. The
 * old directory is renamed aside afterwards, never deleted.
 */
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import type { Logger } from 'pino';
import type { Sql, TransactionSql } from 'postgres';
import { loadPglite, PGLITE_PACKAGE, PGLITE_VERSION, PgliteUnavailableError, type PgliteClient, type PgliteConstructor, type PgliteSource } from './pglite-loader.ts';

/** Held while importing, so replicas started together do not import twice. */
const IMPORT_LOCK_KEY = 7_146_010;

export interface PgliteImportResult {
  tables: number;
  rows: number;
  movedTo: string;
}

/** PGlite could not be had, so DATA_DIR/db cannot be imported; the message is one line saying what to do. */
export class PgliteImportUnavailableError extends Error {
  override name = 'PgliteImportUnavailableError';
}

/**
 * Imports `pgliteDir` into the database behind `sql` (already migrated) if
 * the directory holds a PGlite cluster and the database has no users yet.
 * A database that already holds data is left alone, and so is the directory,
 * with a warning. Returns undefined when there was nothing to import. When
 * PGlite cannot be obtained, throws PgliteImportUnavailableError and leaves
 * both databases as they were: never an empty start over an unimported one.
 */
export async function importPgliteIfPresent(
  pgliteDir: string,
  sql: Sql,
  migrationsFolder: string,
  log: Logger,
  source: PgliteSource,
): Promise<PgliteImportResult | undefined> {
  if (!existsSync(path.join(pgliteDir, 'PG_VERSION'))) return undefined;
  const started = Date.now();
  // Checked again under the lock below; this one spares a fetch of PGlite.
  const [{ users }] = (await sql`select count(*)::int as users from users`) as unknown as [{ users: number }];
  if (users > 0) return leftAlone(pgliteDir, log);
  log.info({ pgliteDir }, 'found a PGlite database from an earlier Cairn; importing it');

  // Loaded here only: PGlite's WebAssembly heap is hundreds of MiB.
  let PGlite: PgliteConstructor;
  try {
    ({ PGlite } = await loadPglite(source, log));
  } catch (error) {
    if (!(error instanceof PgliteUnavailableError)) throw error;
    throw new PgliteImportUnavailableError(
      `Cannot import the earlier release's PGlite database in ${pgliteDir}: ${error.message}. ` +
        `Start once with access to the npm registry (npm's own configuration applies: registry, proxy), ` +
        `or set PGLITE_IMPORT_MODULE to an unpacked ${PGLITE_PACKAGE}@${PGLITE_VERSION} package (npm pack ${PGLITE_PACKAGE}@${PGLITE_VERSION} on a connected machine, then tar -xzf), ` +
        `or move ${pgliteDir} aside to start with an empty database. The server did not start; nothing was imported.`,
      { cause: error },
    );
  }
  const old = new PGlite(pgliteDir);
  let result: Omit<PgliteImportResult, 'movedTo'> | 'not-empty';
  try {
    await migratePglite(old, migrationsFolder);
    result = await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${IMPORT_LOCK_KEY}::bigint)`;
      const [{ n }] = (await tx`select count(*)::int as n from users`) as unknown as [{ n: number }];
      if (n > 0) return 'not-empty' as const;
      const tables = await tablesParentsFirst(tx);
      let rows = 0;
      for (const table of tables) {
        const columns = (
          await old.query<{ column_name: string }>(
            `select column_name from information_schema.columns where table_schema = 'public' and table_name = $1 and is_generated = 'NEVER' order by ordinal_position`,
            [table],
          )
        ).rows.map((row) => `"${row.column_name}"`);
        if (columns.length === 0) continue;
        const list = columns.join(', ');
        const dumped = await old.query(`copy (select ${list} from "${table}") to '/dev/blob'`);
        const bytes = dumped.blob ? Buffer.from(await dumped.blob.arrayBuffer()) : Buffer.alloc(0);
        if (bytes.length === 0) continue;
        const writable = await tx.unsafe(`copy "${table}" (${list}) from stdin`).writable();
        await new Promise<void>((resolve, reject) => {
          writable.on('error', reject);
          writable.on('finish', resolve);
          writable.end(bytes);
        });
        rows += (await old.query<{ n: number }>(`select count(*)::int as n from "${table}"`)).rows[0]?.n ?? 0;
      }
      const sequences = await old.query<{ name: string; last_value: string | null }>(
        `select quote_ident(schemaname) || '.' || quote_ident(sequencename) as name, last_value::text from pg_sequences where schemaname = 'public'`,
      );
      for (const sequence of sequences.rows) {
        if (sequence.last_value !== null) await tx`select setval(${sequence.name}::regclass, ${sequence.last_value}::bigint)`;
      }
      return { tables: tables.length, rows };
    });
  } finally {
    await old.close();
  }
  if (result === 'not-empty') return leftAlone(pgliteDir, log);
  const movedTo = `${pgliteDir}.imported-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  await rename(pgliteDir, movedTo);
  log.info(
    { pgliteDir, movedTo, tables: result.tables, rows: result.rows, ms: Date.now() - started },
    `imported the PGlite database (${result.rows} rows); the old directory is kept at ${movedTo} and can be deleted`,
  );
  return { ...result, movedTo };
}

function leftAlone(pgliteDir: string, log: Logger): undefined {
  log.warn({ pgliteDir }, `not importing ${pgliteDir}: the database already holds users; move the directory away to silence this`);
  return undefined;
}

/**
 * Brings the old database to the current schema: what drizzle's migrator
 * does (its bookkeeping table, each migration newer than the last applied,
 * in one transaction), without drizzle-orm/pglite, which imports PGlite by
 * its package name and so cannot load the fetched copy.
 */
async function migratePglite(old: PgliteClient, migrationsFolder: string): Promise<void> {
  const migrations = readMigrationFiles({ migrationsFolder });
  await old.exec('create schema if not exists "drizzle"');
  await old.exec('create table if not exists "drizzle"."__drizzle_migrations" (id serial primary key, hash text not null, created_at bigint)');
  const last = (await old.query<{ created_at: string | number | null }>('select created_at from "drizzle"."__drizzle_migrations" order by created_at desc limit 1')).rows[0];
  await old.transaction(async (tx) => {
    for (const migration of migrations) {
      if (last !== undefined && Number(last.created_at) >= migration.folderMillis) continue;
      for (const statement of migration.sql) await tx.exec(statement);
      await tx.query('insert into "drizzle"."__drizzle_migrations" ("hash", "created_at") values ($1, $2)', [migration.hash, migration.folderMillis]);
    }
  });
}

/** The public tables of the new database, each after every table its foreign keys point to. */
export async function tablesParentsFirst(tx: TransactionSql | Sql): Promise<string[]> {
  const tables = (await tx`select tablename from pg_tables where schemaname = 'public' order by tablename`).map((row) => row.tablename as string);
  const edges = await tx`
    select c.relname as child, p.relname as parent
    from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_class p on p.oid = k.confrelid
    join pg_namespace n on n.oid = c.relnamespace
    where k.contype = 'f' and n.nspname = 'public' and c.oid <> p.oid`;
  const parents = new Map<string, Set<string>>(tables.map((t) => [t, new Set<string>()]));
  for (const edge of edges) parents.get(edge.child as string)?.add(edge.parent as string);
  const ordered: string[] = [];
  const placed = new Set<string>();
  while (ordered.length < tables.length) {
    const next = tables.find((t) => !placed.has(t) && [...(parents.get(t) ?? [])].every((p) => placed.has(p)));
    if (next === undefined) throw new Error('foreign keys form a cycle; cannot order the import');
    ordered.push(next);
    placed.add(next);
  }
  return ordered;
}
