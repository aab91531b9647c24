/**
 * Rebuilding a server from its replica store alone (decision 168), after the
 * primary store and the database are both lost: the newest metadata export
 * (metadata-export.ts) is loaded into an empty database, at the migration
 * level it was made at and then migrated to this release's, and every pack
 * and v1 object the loaded database refers to is copied from the replica to
 * the (new, empty) primary store, each verified against its SHA-256 by the
 * store's put. Run by `npm run recover` (server/src/recover.ts) with the
 * server's own configuration, before the server is started.
 *
 * Nothing here writes to the replica (but for the sweep of stale incomplete
 * uploads every start of a store does). The database must be empty: a new one,
 * or one a server created but nobody used (no user, client or pack), whose
 * tables are dropped first. A rerun after a failure copies what is still
 * missing in the primary (an object already there with its size is kept).
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import type { Logger } from 'pino';
import postgres, { type Options, type Sql, type TransactionSql } from 'postgres';
import { packKeyOf, type BlobStore } from '../blob/blob-store.ts';
import { createBlobStore, createExportStore, createReplicaStore } from '../blob/create-blob-store.ts';
import type { ServerConfig } from '../config/server-config.ts';
import { MIGRATIONS_DIR, openDatabase } from '../db/database.ts';
import { parseDatabaseUrl } from '../db/database-url.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../db/embedded-postgres.ts';
import { readChunk } from './pack-reader.ts';
import { HashMismatchError } from '../errors.ts';
import { chunkLocation, listExports, parseCopyLine, quoteIdent, type ExportManifest, type StoredExport } from './metadata-export.ts';

/** A recovery that cannot start or go on; the message is one line saying what is wrong and what to do. */
export class RecoveryError extends Error {
  override name = 'RecoveryError';
}

export interface RecoveryOptions {
  /** The export to load (its id, or a unique prefix of at least 8 characters); default the newest. */
  exportId?: string | undefined;
  /** Copy the objects into the primary store (default); false leaves them to the read fall-back and the verify job. */
  copyObjects?: boolean;
  /** Every this many milliseconds while copying, a progress line (default 5000). */
  progressEveryMs?: number;
}

export interface RecoveryResult {
  exportId: string;
  createdAt: string;
  tables: number;
  rows: number;
  /** Objects (packs and v1 objects) copied from the replica, already in the primary, and missing on the replica. */
  copied: number;
  bytesCopied: number;
  alreadyThere: number;
  /** Keys of objects the replica does not hold (or holds damaged): the files that need them cannot be restored. */
  missing: string[];
}

/** The exports in the replica named by `config`, newest first (`recover --list`). */
export async function listReplicaExports(config: ServerConfig, log: Logger): Promise<{ exports: StoredExport[]; damaged: string[] }> {
  const store = await exportStoreOf(config, log);
  try {
    const damaged: string[] = [];
    return { exports: await listExports(store, damaged), damaged };
  } finally {
    await store.close();
  }
}

export async function recoverFromReplica(config: ServerConfig, log: Logger, options: RecoveryOptions = {}): Promise<RecoveryResult> {
  const exports = await exportStoreOf(config, log);
  let chosen: StoredExport;
  try {
    chosen = await chooseExport(exports, options.exportId);
    log.info({ exportId: chosen.id, createdAt: chosen.manifest.createdAt, serverVersion: chosen.manifest.serverVersion }, `recovering from the metadata export of ${chosen.manifest.createdAt}`);
    const migrationsAt = await migrationsFolderAt(chosen.manifest);
    const connection = await connect(config, log);
    try {
      await ensureEmpty(connection.sql, log);
      try {
        await migratePostgres(drizzlePostgres(connection.sql), { migrationsFolder: migrationsAt });
      } finally {
        await rm(migrationsAt, { recursive: true, force: true });
      }
      await loadExport(connection.sql, exports, chosen.manifest, log);
    } finally {
      await connection.close();
    }
  } finally {
    await exports.close();
  }
  const rows = chosen.manifest.tables.reduce((sum, t) => sum + t.rows, 0);
  const result: RecoveryResult = {
    exportId: chosen.id,
    createdAt: chosen.manifest.createdAt,
    tables: chosen.manifest.tables.length,
    rows,
    copied: 0,
    bytesCopied: 0,
    alreadyThere: 0,
    missing: [],
  };
  // This release's migrations on top (openDatabase applies what is pending), then the objects.
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, log });
  try {
    log.info({ tables: result.tables, rows }, `loaded ${rows} rows into ${database.location} and migrated them to this release`);
    if (options.copyObjects === false) return result;
    const [primary, replica] = await Promise.all([createBlobStore(config, log), createReplicaStore(config, log)]);
    try {
      await copyObjects(database.sql, replica!, primary, log, result, options.progressEveryMs ?? 5000);
    } finally {
      await primary.close();
      await replica?.close();
    }
  } finally {
    await database.close();
  }
  return result;
}

async function exportStoreOf(config: ServerConfig, log: Logger): Promise<BlobStore> {
  const store = await createExportStore(config, log);
  if (!store) throw new RecoveryError('recovery reads the replica store: set REPLICA_DIR or REPLICA_S3_* as the lost server had them');
  return store;
}

async function chooseExport(store: BlobStore, wanted: string | undefined): Promise<StoredExport> {
  const damaged: string[] = [];
  const all = await listExports(store, damaged);
  for (const id of damaged) if (wanted !== undefined && id.startsWith(wanted)) throw new RecoveryError(`export ${id} is damaged; choose another one (npm run recover -- --list)`);
  if (wanted === undefined) {
    const newest = all[0];
    if (!newest) throw new RecoveryError(`no metadata export in ${store.location}${damaged.length > 0 ? ` (${damaged.length} damaged)` : ''}: the server never exported to this replica, or this is not its replica`);
    return newest;
  }
  if (wanted.length < 8) throw new RecoveryError('--export needs at least 8 characters of the export id');
  const matching = all.filter((e) => e.id.startsWith(wanted));
  if (matching.length !== 1) throw new RecoveryError(matching.length === 0 ? `no export ${wanted} in ${store.location}` : `export id ${wanted} is ambiguous; give more characters`);
  return matching[0]!;
}

/** A copy of the migrations folder cut at the export's level, after checking that this release has those very migrations. */
export async function migrationsFolderAt(manifest: ExportManifest): Promise<string> {
  const mine = readMigrationFiles({ migrationsFolder: MIGRATIONS_DIR });
  const { count, lastHash } = manifest.migrations;
  if (count > mine.length) {
    throw new RecoveryError(`the export was made by a newer Cairn (${manifest.serverVersion}, ${count} migrations; this release has ${mine.length}): recover with that release or a later one`);
  }
  if (mine[count - 1]?.hash !== lastHash) {
    throw new RecoveryError(`the export's schema (migration ${count}) is not this release's: recover with the release that made it (${manifest.serverVersion})`);
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-recover-migrations-'));
  await cp(MIGRATIONS_DIR, dir, { recursive: true });
  const journalPath = path.join(dir, 'meta/_journal.json');
  const journal = JSON.parse(await readFile(journalPath, 'utf8')) as { entries: unknown[] };
  journal.entries = journal.entries.slice(0, count);
  await writeFile(journalPath, JSON.stringify(journal));
  return dir;
}

interface Connection {
  sql: Sql;
  close(): Promise<void>;
}

/** One connection to the configured database (starting the embedded PostgreSQL under DATA_DIR when DATABASE_URL is unset), not migrated. */
async function connect(config: ServerConfig, log: Logger): Promise<Connection> {
  let embedded: EmbeddedPostgres | undefined;
  let options: Options<Record<string, never>>;
  if (config.databaseUrl) {
    options = parseDatabaseUrl(config.databaseUrl).options;
  } else {
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, log });
    // Nothing is written into a new cluster before it is on disk (decision 174).
    const started = embedded;
    await started.durable.catch(async (error: unknown) => {
      await started.stop();
      throw error;
    });
    options = embedded.connectionOptions();
  }
  const sql = postgres({ ...options, max: 1, onnotice: () => {} });
  return {
    sql,
    async close() {
      await sql.end({ timeout: 5 });
      await embedded?.stop();
    },
  };
}

/** Refuses a database that holds backups; drops the tables of one a server created but nobody used. */
async function ensureEmpty(sql: Sql, log: Logger): Promise<void> {
  const tables = (await sql`select tablename from pg_tables where schemaname = 'public'`).map((row) => row.tablename as string);
  if (tables.length === 0) return;
  for (const table of ['users', 'clients', 'packs', 'chunks']) {
    if (!tables.includes(table)) continue;
    const [row] = await sql.unsafe(`select exists (select 1 from ${quoteIdent(table)}) as used`);
    if (row?.used) {
      throw new RecoveryError(`the database already holds data (table ${table} is not empty): recover into a new, empty database (a new DATA_DIR, or a DATABASE_URL of an empty database)`);
    }
  }
  log.warn({ tables: tables.length }, 'the database holds the empty tables of a server nobody used; dropping them before loading the export');
  await sql.begin(async (tx) => {
    for (const table of tables) await tx.unsafe(`drop table if exists ${quoteIdent(table)} cascade`);
    await tx`drop schema if exists drizzle cascade`;
  });
}

/** Rows an INSERT loads at a time. */
const LOAD_BATCH_ROWS = 1000;

/**
 * Loads every table of the export in one transaction, each chunk verified on
 * its way and each table against its bytes and hash, then the sequences.
 * Rows go in by INSERT … SELECT from a JSON array of rows, each value a
 * string cast to its column's type (its input function, as COPY FROM
 * would use): not
 * COPY FROM itself, because postgres.js never settles a COPY FROM stream
 * the server refused (porsager/postgres#1173), so a refused row would hang
 * the recovery instead of failing it with PostgreSQL's message.
 */
export async function loadExport(sql: Sql, store: BlobStore, manifest: ExportManifest, log: Logger): Promise<void> {
  await sql.begin(async (tx) => {
    for (const table of manifest.tables) {
      const hash = createHash('sha256');
      let bytes = 0;
      let rows = 0;
      const columns = table.columns.map(quoteIdent).join(', ');
      const types = await columnTypes(tx, table.name, table.columns);
      const insert = `insert into ${quoteIdent(table.name)} (${columns}) overriding system value
        select ${types.map((type, i) => `(r->>${i})::${type}`).join(', ')} from json_array_elements($1::json) r`;
      let batch: (string | null)[][] = [];
      const flush = async () => {
        if (batch.length === 0) return;
        try {
          await tx.unsafe(insert, [JSON.stringify(batch)]);
        } catch (error) {
          throw new RecoveryError(`loading table ${table.name} failed: ${(error as Error).message}; nothing was kept (the database is as empty as before)`);
        }
        rows += batch.length;
        batch = [];
      };
      let carry = '';
      const decoder = new TextDecoder('utf-8', { fatal: true });
      for (const chunk of table.chunks) {
        const raw = await readChunk(store, chunkLocation(manifest, chunk));
        hash.update(raw);
        bytes += raw.length;
        const lines = (carry + decoder.decode(raw, { stream: true })).split('\n');
        carry = lines.pop() ?? '';
        for (const line of lines) {
          const values = parseCopyLine(line);
          if (values.length !== table.columns.length) throw new RecoveryError(`table ${table.name} of the export has a row of ${values.length} values for ${table.columns.length} columns`);
          batch.push(values);
          if (batch.length >= LOAD_BATCH_ROWS) await flush();
        }
      }
      carry += decoder.decode();
      if (carry !== '' || bytes !== table.bytes || hash.digest('hex') !== table.sha256) {
        throw new RecoveryError(`table ${table.name} of the export does not add up to its recorded ${table.bytes} bytes and hash; the export is damaged: choose an earlier one (--list)`);
      }
      await flush();
      if (rows !== table.rows) throw new RecoveryError(`table ${table.name}: loaded ${rows} rows, the export recorded ${table.rows}`);
      log.debug({ table: table.name, rows, bytes }, 'table loaded');
    }
    for (const sequence of manifest.sequences) {
      if (sequence.lastValue !== null) await tx`select setval(${sequence.name}::regclass, ${sequence.lastValue}::bigint)`;
    }
  });
}

/** The SQL type of each of `columns` of `table`, as `format_type` spells it (typmods included). */
async function columnTypes(tx: TransactionSql, table: string, columns: string[]): Promise<string[]> {
  const rows = await tx`select a.attname, format_type(a.atttypid, a.atttypmod) as type from pg_attribute a
    where a.attrelid = ${`public.${quoteIdent(table)}`}::regclass and a.attnum > 0 and not a.attisdropped`;
  const byName = new Map(rows.map((row) => [row.attname as string, row.type as string]));
  return columns.map((column) => {
    const type = byName.get(column);
    if (type === undefined) throw new RecoveryError(`table ${table} has no column ${column}, which the export has: the export's schema is not this migration level's`);
    return type;
  });
}

async function copyObjects(sql: Sql, replica: BlobStore, primary: BlobStore, log: Logger, result: RecoveryResult, progressEveryMs: number): Promise<void> {
  const objects = [
    ...(await sql`select encode(sha256, 'hex') as sha256, bytes::float8 as bytes from packs where retired_at is null order by id`).map((row) => ({
      key: packKeyOf(row.sha256 as string),
      sha256: row.sha256 as string,
      bytes: Number(row.bytes),
    })),
    ...(await sql`select encode(sha256, 'hex') as sha256, size::float8 as bytes from chunks where pack_id is null order by sha256`).map((row) => ({
      key: row.sha256 as string,
      sha256: row.sha256 as string,
      bytes: Number(row.bytes),
    })),
  ];
  const totalBytes = objects.reduce((sum, o) => sum + o.bytes, 0);
  log.info({ objects: objects.length, bytes: totalBytes }, `copying ${objects.length} objects from the replica to the primary store`);
  let lastProgress = Date.now();
  let done = 0;
  for (const object of objects) {
    done += 1;
    const there = await primary.stat(object.key);
    if (there && there.size === object.bytes) {
      result.alreadyThere += 1;
    } else {
      const source = await replica.get(object.key);
      if (!source) {
        result.missing.push(object.key);
        log.error({ key: object.key }, `${object.key} is not on the replica: the files that need it cannot be restored`);
      } else {
        try {
          await primary.put(object.key, source, object.sha256);
          result.copied += 1;
          result.bytesCopied += object.bytes;
        } catch (error) {
          if (!(error instanceof HashMismatchError)) throw error;
          result.missing.push(object.key);
          log.error({ key: object.key }, `the replica's copy of ${object.key} is damaged: the files that need it cannot be restored`);
        }
      }
    }
    if (Date.now() - lastProgress >= progressEveryMs) {
      lastProgress = Date.now();
      log.info({ done, of: objects.length, bytesCopied: result.bytesCopied, totalBytes }, `copied ${done} of ${objects.length} objects`);
    }
  }
  log.info(
    { copied: result.copied, bytesCopied: result.bytesCopied, alreadyThere: result.alreadyThere, missing: result.missing.length },
    `copied ${result.copied} objects (${result.bytesCopied} bytes) from the replica; ${result.alreadyThere} were already in the primary; ${result.missing.length} missing`,
  );
}

