/**
 * The metadata export (decision 167): everything a server needs besides the
 * packs, written beside them in the replica store, so that a server can be
 * rebuilt from the replica alone (recovery.ts) after the primary store and
 * the database are both lost.
 *
 * An export is one snapshot of the database (a read-only REPEATABLE READ
 * transaction): every public table but `servers` (which replicas run now is
 * no part of the backups), as PostgreSQL's COPY text, rows in primary-key
 * order, plus the sequences and the migration level. Each table's COPY
 * stream is cut by the content-defined chunker, and its chunks are
 * compressed into packs like any data, in a store of their own under the
 * replica's `exports/` (a disk replica's `exports/` directory, an S3
 * replica's `exports/` key prefix): the replica's own listing never sees
 * them, and GC never touches them. Chunks the newest earlier export holds
 * are not written again, so an export of a database that changed a little
 * costs a little. A manifest (JSON, named by its SHA-256) lists the tables
 * and their chunks with their pack locations; it is written after every
 * pack it names was read back and checked, and is read back itself, so a
 * manifest in the store is always whole.
 *
 * Retention: the newest `keep` manifests, and beyond those the newest of
 * each UTC day younger than the replica's delete grace (the week in which
 * the replica still holds the packs GC deleted, so an export from before a
 * mistaken prune can still be restored whole). Packs no kept manifest names
 * are deleted after the new manifest is written.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Sql, TransactionSql } from 'postgres';
import { splitIntoChunks, type ChunkerParams } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { packKeyOf, PACK_KEY_PREFIX, type BlobStore } from '../blob/blob-store.ts';
import { LOCK_KEYS, lockManagerFor } from '../db/advisory-locks.ts';
import { tablesParentsFirst } from '../db/pglite-import.ts';
import { SERVER_VERSION } from '../services/server-registry.service.ts';
import { codecOfId, CHUNK_CODECS } from './chunk-codec.ts';
import type { ChunkLocation } from './pack-format.ts';
import { verifyPack } from './pack-reader.ts';
import { PackWriter } from './pack-writer.ts';

export const EXPORT_FORMAT = 'cairn-metadata-export/1';

/**
 * Larger chunks than file contents get (2/8/32 KiB): an export of a big
 * database stays a manifest of a few thousand entries, and a row edited
 * still rewrites only about 64 KiB of it.
 */
export const EXPORT_CHUNKER_PARAMS: Readonly<ChunkerParams> = Object.freeze({ minSize: 16 * 1024, avgSize: 64 * 1024, maxSize: 256 * 1024 });

/** Tables an export leaves out: which server replicas are running is no part of what was backed up. */
const NOT_EXPORTED = new Set(['servers']);

/** One chunk of a table's COPY text: [sha256, index into `packs`, offset, length, raw size, codec id]. */
export type ManifestChunk = [string, number, number, number, number, number];

export interface ManifestTable {
  name: string;
  /** The COPY column list (generated columns are left out: PostgreSQL computes them again). */
  columns: string[];
  rows: number;
  /** Bytes of COPY text, and their SHA-256: checked again when the table is loaded. */
  bytes: number;
  sha256: string;
  chunks: ManifestChunk[];
}

export interface ExportManifest {
  format: typeof EXPORT_FORMAT;
  /** When the snapshot was taken (the database's clock). */
  createdAt: string;
  serverVersion: string;
  /** The migration level of the exported schema: drizzle's journal, by count and the last one's hash. */
  migrations: { count: number; lastHash: string; lastCreatedAt: number };
  /** Pack SHA-256s the chunks point into. */
  packs: string[];
  tables: ManifestTable[];
  sequences: { name: string; lastValue: string | null }[];
}

/** A manifest as found in the exports store. */
export interface StoredExport {
  /** The manifest's key (its SHA-256): what `recover --export` takes. */
  id: string;
  manifest: ExportManifest;
}

export interface ExportSummary {
  id: string;
  createdAt: string;
  tables: number;
  rows: number;
  /** COPY text bytes in the export. */
  bytes: number;
  /** Chunks written now, and chunks taken from the previous export. */
  chunksWritten: number;
  chunksReused: number;
  /** Bytes of new packs stored. */
  packBytesWritten: number;
  /** Manifests and packs deleted by the retention. */
  manifestsDeleted: number;
  packsDeleted: number;
}

/** ran false: no replica is configured, or another replica of the server is exporting. */
export type MetadataExportResult = { ran: false } | ({ ran: true } & ExportSummary);

export class ExportManifestError extends Error {
  override name = 'ExportManifestError';
}

export interface MetadataExportOptions {
  /** Manifests kept however old they are. Default: the server's REPLICA_EXPORT_KEEP. */
  keep?: number;
  /** Beyond `keep`, the newest export of each day younger than this is kept. Default: the server's REPLICA_DELETE_GRACE_SECONDS. */
  dailySeconds?: number;
}

/** Writes one export (see the module comment); one replica of the server at a time. */
export async function runMetadataExport(ctx: AppContext, options: MetadataExportOptions = {}): Promise<MetadataExportResult> {
  const store = ctx.exports;
  if (!store) return { ran: false };
  const outcome = await lockManagerFor(ctx.database).tryExclusive(LOCK_KEYS.metadataExport, () => exportOnce(ctx, store, options));
  return outcome.ran ? outcome.value : { ran: false };
}

async function exportOnce(ctx: AppContext, store: BlobStore, options: MetadataExportOptions): Promise<{ ran: true } & ExportSummary> {
  const started = Date.now();
  const damaged: string[] = [];
  const earlier = await listExports(store, damaged);
  // Each manifest names every chunk of its snapshot, so the newest one is all the dedup needs.
  const known = new Map<string, ChunkLocation>();
  const newest = earlier[0];
  if (newest) for (const location of chunkLocations(newest.manifest)) known.set(location.sha256, location);

  const writer = new PackWriter(store);
  const written = new Map<string, ChunkLocation>();
  let chunksWritten = 0;
  let chunksReused = 0;
  const record = (locations: ChunkLocation[]) => {
    for (const location of locations) written.set(location.sha256, location);
  };
  const snapshot = await ctx.database.sql.begin('isolation level repeatable read read only', async (tx) => {
    const [{ now }] = (await tx`select now()::text as now`) as unknown as [{ now: string }];
    const migrations = await migrationLevel(tx);
    const tables: (Omit<ManifestTable, 'chunks'> & { chunkHashes: string[] })[] = [];
    for (const name of await tablesParentsFirst(tx)) {
      if (NOT_EXPORTED.has(name)) continue;
      const columns = await copyColumns(tx, name);
      if (columns.length === 0) continue;
      const order = await primaryKeyColumns(tx, name);
      const orderBy = order.length > 0 ? order : columns;
      const whole = createHash('sha256');
      let bytes = 0;
      let rows = 0;
      const chunkHashes: string[] = [];
      const counted = async function* (): AsyncGenerator<Buffer> {
        for await (const batch of copyText(tx, name, columns, orderBy)) {
          whole.update(batch.text);
          bytes += batch.text.length;
          rows += batch.rows;
          yield batch.text;
        }
      };
      for await (const chunk of splitIntoChunks(counted(), EXPORT_CHUNKER_PARAMS)) {
        const sha256 = createHash('sha256').update(chunk).digest('hex');
        chunkHashes.push(sha256);
        if (known.has(sha256) || written.has(sha256) || writer.has(sha256)) {
          if (known.has(sha256)) chunksReused += 1;
          continue;
        }
        record(await writer.add(sha256, chunk, { hashed: true }));
        chunksWritten += 1;
      }
      tables.push({ name, columns, rows, bytes, sha256: whole.digest('hex'), chunkHashes });
    }
    const sequences = (
      await tx`select quote_ident(schemaname) || '.' || quote_ident(sequencename) as name, last_value::text as "lastValue"
               from pg_sequences where schemaname = 'public' order by 1`
    ).map((row) => ({ name: row.name as string, lastValue: (row.lastValue as string | null) ?? null }));
    return { createdAt: new Date(now).toISOString(), migrations, tables, sequences };
  });
  record(await writer.flush());

  const packs: string[] = [];
  const packIndex = new Map<string, number>();
  const locate = (sha256: string): ManifestChunk => {
    const location = written.get(sha256) ?? known.get(sha256);
    if (!location) throw new Error(`export chunk ${sha256} has no pack location`);
    let index = packIndex.get(location.packKey);
    if (index === undefined) {
      index = packs.push(packShaOf(location.packKey)) - 1;
      packIndex.set(location.packKey, index);
    }
    return [sha256, index, location.offset, location.length, location.rawSize, CHUNK_CODECS[location.codec]];
  };
  const manifest: ExportManifest = {
    format: EXPORT_FORMAT,
    createdAt: snapshot.createdAt,
    serverVersion: SERVER_VERSION,
    migrations: snapshot.migrations,
    packs,
    tables: snapshot.tables.map(({ chunkHashes, ...table }) => ({ ...table, chunks: chunkHashes.map(locate) })),
    sequences: snapshot.sequences,
  };
  // Read back before the manifest names them, as replication does for data packs: a pack the store mangled fails the export, not a recovery.
  for (const packKey of new Set([...written.values()].map((l) => l.packKey))) {
    const check = await verifyPack(store, packKey);
    if (!check || !check.packHashMatches || check.indexProblem !== null || check.damaged.length > 0) {
      throw new Error(`export pack ${packKey} read back ${check ? 'damaged' : 'missing'} from ${store.location}; the export was not written`);
    }
  }
  const body = Buffer.from(JSON.stringify(manifest));
  const id = createHash('sha256').update(body).digest('hex');
  await store.put(id, Readable.from([body]), id);
  await readManifest(store, id);

  // A manifest that does not hash to its name can restore nothing; it goes with the retention.
  for (const key of damaged) {
    await store.delete(key);
    ctx.log.warn({ exportId: key }, 'deleted a damaged metadata export (its bytes do not hash to its name)');
  }
  const { manifestsDeleted, packsDeleted } = await applyRetention(store, [{ id, manifest }, ...earlier], {
    keep: options.keep ?? ctx.config.replica?.exportKeep ?? 24,
    dailySeconds: options.dailySeconds ?? ctx.config.replica?.deleteGraceSeconds ?? 0,
  });
  const newPacks = [...new Set([...written.values()].map((l) => l.packKey))];
  const result = {
    ran: true as const,
    id,
    createdAt: manifest.createdAt,
    tables: manifest.tables.length,
    rows: manifest.tables.reduce((sum, t) => sum + t.rows, 0),
    bytes: manifest.tables.reduce((sum, t) => sum + t.bytes, 0),
    chunksWritten,
    chunksReused,
    packBytesWritten: await packBytes(store, newPacks),
    manifestsDeleted: manifestsDeleted + damaged.length,
    packsDeleted,
  };
  ctx.log.info({ ...result, ms: Date.now() - started, exportStore: store.location }, 'metadata export written to the replica store');
  return result;
}

async function packBytes(store: BlobStore, keys: string[]): Promise<number> {
  let total = 0;
  for (const key of keys) total += (await store.stat(key))?.size ?? 0;
  return total;
}

/** Every export in the store, newest first. A manifest that does not hash to its name or does not parse is skipped, with its id in `damaged`. */
export async function listExports(store: BlobStore, damaged: string[] = []): Promise<StoredExport[]> {
  const found: StoredExport[] = [];
  for await (const info of store.list()) {
    if (info.key.startsWith(PACK_KEY_PREFIX)) continue;
    try {
      found.push({ id: info.key, manifest: await readManifest(store, info.key) });
    } catch (error) {
      if (!(error instanceof ExportManifestError)) throw error;
      damaged.push(info.key);
    }
  }
  return found.sort((a, b) => b.manifest.createdAt.localeCompare(a.manifest.createdAt) || a.id.localeCompare(b.id));
}

/** Reads and checks one manifest: it hashes to its name and is an export of this format. */
export async function readManifest(store: BlobStore, id: string): Promise<ExportManifest> {
  const stream = await store.get(id);
  if (!stream) throw new ExportManifestError(`export ${id} is not in ${store.location}`);
  const pieces: Buffer[] = [];
  for await (const piece of stream) pieces.push(piece as Buffer);
  const body = Buffer.concat(pieces);
  if (createHash('sha256').update(body).digest('hex') !== id) throw new ExportManifestError(`export ${id} is damaged: its bytes do not hash to its name`);
  let manifest: ExportManifest;
  try {
    manifest = JSON.parse(body.toString('utf8')) as ExportManifest;
  } catch {
    throw new ExportManifestError(`export ${id} is not JSON`);
  }
  if (manifest.format !== EXPORT_FORMAT) throw new ExportManifestError(`export ${id} has format "${String(manifest.format)}", not ${EXPORT_FORMAT}`);
  return manifest;
}

/** Where each chunk of a manifest lives, as the pack reader takes it. */
export function chunkLocations(manifest: ExportManifest): ChunkLocation[] {
  return manifest.tables.flatMap((table) => table.chunks.map((chunk) => chunkLocation(manifest, chunk)));
}

export function chunkLocation(manifest: ExportManifest, [sha256, pack, offset, length, rawSize, codecId]: ManifestChunk): ChunkLocation {
  const packSha = manifest.packs[pack];
  const codec = codecOfId(codecId);
  if (packSha === undefined || codec === null) throw new ExportManifestError(`export chunk ${sha256} names pack ${pack} or codec ${codecId}, which do not exist`);
  return { sha256, packKey: packKeyOf(packSha), offset, length, rawSize, codec };
}

function packShaOf(packKey: string): string {
  return packKey.slice(PACK_KEY_PREFIX.length);
}

/** Which manifests the retention keeps (see the module comment); `exports` newest first. */
export function exportsKept(exports: readonly StoredExport[], keep: number, dailySeconds: number, now = Date.now()): Set<string> {
  const kept = new Set(exports.slice(0, Math.max(1, keep)).map((e) => e.id));
  const days = new Set<string>();
  for (const { id, manifest } of exports) {
    const at = Date.parse(manifest.createdAt);
    if (now - at > dailySeconds * 1000) continue;
    const day = manifest.createdAt.slice(0, 10);
    if (days.has(day)) continue;
    days.add(day);
    kept.add(id);
  }
  return kept;
}

async function applyRetention(
  store: BlobStore,
  exports: StoredExport[],
  options: { keep: number; dailySeconds: number },
): Promise<{ manifestsDeleted: number; packsDeleted: number }> {
  const kept = exportsKept(exports, options.keep, options.dailySeconds);
  let manifestsDeleted = 0;
  for (const { id } of exports) {
    if (kept.has(id)) continue;
    await store.delete(id);
    manifestsDeleted += 1;
  }
  const live = new Set(exports.filter((e) => kept.has(e.id)).flatMap((e) => e.manifest.packs.map(packKeyOf)));
  let packsDeleted = 0;
  for await (const info of store.list()) {
    if (!info.key.startsWith(PACK_KEY_PREFIX) || live.has(info.key)) continue;
    // A pack no kept manifest names: of a deleted export, or of one cut off before its manifest.
    await store.delete(info.key);
    packsDeleted += 1;
  }
  return { manifestsDeleted, packsDeleted };
}

/** Rows a cursor fetches at a time. */
const COPY_BATCH_ROWS = 1000;

/**
 * A table as PostgreSQL's COPY text format would give it (each value by its
 * type's text output, tab-separated, `\N` for null, backslash escapes),
 * built from a cursor of text-cast columns in `orderBy` order. Not COPY TO
 * itself: postgres.js leaves its socket paused after a COPY TO stream that
 * hit backpressure ends (porsager/postgres#917), which hangs the transaction.
 */
async function* copyText(tx: TransactionSql, table: string, columns: string[], orderBy: string[]): AsyncGenerator<{ text: Buffer; rows: number }> {
  const select = `select ${columns.map((c, i) => `${quoteIdent(c)}::text as c${i}`).join(', ')} from ${quoteIdent(table)} order by ${orderBy.map(quoteIdent).join(', ')}`;
  for await (const batch of tx.unsafe(select).cursor(COPY_BATCH_ROWS)) {
    const lines = batch.map((row) => `${columns.map((_, i) => copyValue(row[`c${i}`] as string | null)).join('\t')}\n`);
    yield { text: Buffer.from(lines.join(''), 'utf8'), rows: batch.length };
  }
}

/** One value in COPY text: `\N` for null, backslash, newline, carriage return and tab escaped. */
export function copyValue(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(/[\\\n\r\t]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'));
}

/** The values of one line of COPY text (without its newline), as copyValue wrote them. */
export function parseCopyLine(line: string): (string | null)[] {
  return line.split('\t').map((field) => {
    if (field === '\\N') return null;
    return field.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c === 't' ? '\t' : c));
  });
}

async function migrationLevel(tx: TransactionSql | Sql): Promise<ExportManifest['migrations']> {
  const rows = await tx`select hash, created_at::text as created_at from drizzle.__drizzle_migrations order by created_at`;
  const last = rows.at(-1);
  if (!last) throw new Error('the database has no migrations applied');
  return { count: rows.length, lastHash: last.hash as string, lastCreatedAt: Number(last.created_at) };
}

/** A table's columns that COPY can load (not generated), in column order. */
export async function copyColumns(tx: TransactionSql | Sql, table: string): Promise<string[]> {
  return (
    await tx`select column_name from information_schema.columns
             where table_schema = 'public' and table_name = ${table} and is_generated = 'NEVER' order by ordinal_position`
  ).map((row) => row.column_name as string);
}

async function primaryKeyColumns(tx: TransactionSql, table: string): Promise<string[]> {
  return (
    await tx`select a.attname from pg_index i
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
             where i.indrelid = ${`public.${quoteIdent(table)}`}::regclass and i.indisprimary
             order by array_position(i.indkey, a.attnum)`
  ).map((row) => row.attname as string);
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
