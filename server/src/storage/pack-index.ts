/**
 * The database side of packs: recording a stored pack and its chunks, looking
 * chunk locations up, and marking damage (decisions 127 and 128). Rows after
 * objects: a pack is recorded only once its put returned.
 */
import { sql } from 'drizzle-orm';
import { packKeyOf } from '../blob/blob-store.ts';
import { rowsOf, type Db, type Tx } from '../db/database.ts';
import { hashSet } from '../db/sha256-sql.ts';
import { CHUNK_CODECS, codecOfId, type ChunkCodec } from './chunk-codec.ts';
import { PACK_ENTRY_BYTES, PACK_FOOTER_BYTES, PACK_HEADER_BYTES, type ChunkLocation } from './pack-format.ts';

/** A pack that was put to the store: its key, its whole length and the chunks in it. */
export interface StoredPack {
  packKey: string;
  bytes: number;
  locations: readonly ChunkLocation[];
}

/** A pack's whole length from its index entries (pack-format.ts: header, data, index, footer). */
export function packBytesOf(locations: readonly ChunkLocation[]): number {
  return PACK_HEADER_BYTES + locations.reduce((sum, l) => sum + l.length, 0) + locations.length * PACK_ENTRY_BYTES + PACK_FOOTER_BYTES;
}

/** The SHA-256 (hex) a pack key names. */
export function packSha256OfKey(packKey: string): string {
  const sha256 = packKey.slice('packs/'.length);
  if (packKeyOf(sha256) !== packKey) throw new Error(`not a pack key: ${packKey}`);
  return sha256;
}

/**
 * Records a stored pack and its chunks in one statement each. A chunk the
 * index has no row for gets one pointing into this pack. A chunk whose row
 * is damaged is moved here and its damage mark cleared, with the mark of
 * every content that no longer has a damaged chunk (the store heals). A
 * chunk with a whole copy elsewhere keeps its row (touched, so GC spares it
 * while it is being referenced); this copy is dead space for repack
 * (decision 126). Returns the pack's id and the chunks now located in it.
 */
export async function recordPack(tx: Tx, pack: StoredPack): Promise<{ packId: number; placed: Set<string> }> {
  const [packRow] = rowsOf<{ id: number }>(
    await tx.execute(sql`
      insert into packs (sha256, bytes, chunk_count)
      values (decode(${packSha256OfKey(pack.packKey)}, 'hex'), ${pack.bytes}, ${pack.locations.length})
      on conflict (sha256) do update set retired_at = null
      returning id`),
  );
  if (!packRow) throw new Error('insert into packs returned no row');
  const packId = Number(packRow.id);
  if (pack.locations.length === 0) return { packId, placed: new Set() };
  const records = JSON.stringify(
    pack.locations.map((l) => ({
      sha256: l.sha256,
      size: l.rawSize,
      offset: l.offset,
      length: l.length,
      codec: CHUNK_CODECS[l.codec],
      base: l.baseSha256 ?? null,
    })),
  );
  const bases = [...new Set(pack.locations.flatMap((l) => (l.baseSha256 ? [l.baseSha256] : [])))];
  // A delta's base is touched so GC's grace period starts again for it; GC deletes under the exclusive lock
  // and this runs under the shared one, so a base still here now stays while the delta row names it. One
  // that GC took after the upload read it leaves the delta unreadable: it is recorded damaged, so "which
  // are missing?" asks for its bytes again and the next backup stores them whole (decision 171).
  if (bases.length > 0) await tx.execute(sql`update chunks set touched_at = now() where sha256 in ${hashSet(bases)}`);
  const rows = rowsOf<{ sha256: string; placed: boolean; inserted: boolean }>(
    await tx.execute(sql`
      insert into chunks as c (sha256, size, pack_id, pack_offset, stored_length, codec, base_sha256, damaged_at)
      select decode(x.sha256, 'hex'), x.size, ${packId}, x."offset", x.length, x.codec, decode(x.base, 'hex'),
             case when x.base is not null and not exists (select 1 from chunks b where b.sha256 = decode(x.base, 'hex')) then now() end
      from jsonb_to_recordset(${records}::jsonb) as x(sha256 text, size bigint, "offset" bigint, length integer, codec smallint, base text)
      on conflict (sha256) do update set
        touched_at = now(),
        pack_id = case when c.damaged_at is null then c.pack_id else excluded.pack_id end,
        pack_offset = case when c.damaged_at is null then c.pack_offset else excluded.pack_offset end,
        stored_length = case when c.damaged_at is null then c.stored_length else excluded.stored_length end,
        codec = case when c.damaged_at is null then c.codec else excluded.codec end,
        base_sha256 = case when c.damaged_at is null then c.base_sha256 else excluded.base_sha256 end,
        damaged_at = case when c.damaged_at is null then null else excluded.damaged_at end
      -- xmax = 0: the row was inserted, not updated (a PostgreSQL idiom for upserts).
      returning encode(c.sha256, 'hex') as sha256, (c.pack_id = ${packId}) as placed, (c.xmax = 0) as inserted`),
  );
  const placed = new Set(rows.filter((row) => row.placed).map((row) => row.sha256));
  const healed = rows.filter((row) => row.placed && !row.inserted).map((row) => row.sha256);
  if (healed.length > 0) await clearHealedContents(tx, healed);
  return { packId, placed };
}

/** Clears the damage mark of every content containing one of `chunkHashes` that has no damaged chunk left. */
export async function clearHealedContents(tx: Db | Tx, chunkHashes: readonly string[]): Promise<void> {
  await tx.execute(sql`
    update contents ct set damaged_at = null
    where ct.damaged_at is not null
      and ct.sha256 in (select cc.content_sha256 from content_chunks cc where cc.chunk_sha256 in ${hashSet(chunkHashes)})
      and not exists (
        select 1 from content_chunks cc join chunks ch on ch.sha256 = cc.chunk_sha256
        where cc.content_sha256 = ct.sha256 and ch.damaged_at is not null)`);
}

/**
 * Marks chunks damaged, and every content that contains one (decision 128),
 * so "which are missing?" asks for the bytes again. Returns how many chunk
 * rows were newly marked.
 */
export async function markChunksDamaged(db: Db | Tx, chunkHashes: readonly string[]): Promise<number> {
  if (chunkHashes.length === 0) return 0;
  const marked = rowsOf<{ sha256: string }>(
    await db.execute(sql`
      update chunks set damaged_at = now()
      where sha256 in ${hashSet(chunkHashes)} and damaged_at is null
      returning encode(sha256, 'hex') as sha256`),
  );
  await db.execute(sql`
    update contents set damaged_at = now()
    where damaged_at is null
      and sha256 in (select content_sha256 from content_chunks where chunk_sha256 in ${hashSet(chunkHashes)})`);
  return marked.length;
}

/** Where a chunk's bytes are: in a pack, or (v1) the whole object keyed by its hash. */
export type StoredChunk =
  | (ChunkLocation & { kind: 'pack'; damaged: boolean })
  | { kind: 'object'; sha256: string; rawSize: number; key: string; damaged: boolean };

/** A chunk row's location columns, as `LOCATION_COLUMNS` selects them from `chunks ch left join packs p`. */
export interface ChunkLocationRow {
  sha256: string;
  size: number | string;
  pack_sha256: string | null;
  pack_offset: number | string | null;
  stored_length: number | null;
  codec: number | null;
  damaged: boolean;
}

/** The columns of a ChunkLocationRow, of the chunk row `ch` and its pack row `p`. */
export const LOCATION_COLUMNS = sql.raw(`encode(ch.sha256, 'hex') as sha256, ch.size, encode(p.sha256, 'hex') as pack_sha256, ch.pack_offset,
               ch.stored_length, ch.codec, ch.damaged_at is not null as damaged`);

export function storedChunkOf(row: ChunkLocationRow): StoredChunk {
  const rawSize = Number(row.size);
  if (row.pack_sha256 === null) return { kind: 'object', sha256: row.sha256, rawSize, key: row.sha256, damaged: row.damaged };
  const codec: ChunkCodec | null = codecOfId(Number(row.codec));
  if (codec === null) throw new Error(`chunk ${row.sha256} has unknown codec ${row.codec}`);
  return {
    kind: 'pack',
    sha256: row.sha256,
    rawSize,
    codec,
    offset: Number(row.pack_offset),
    length: Number(row.stored_length),
    packKey: packKeyOf(row.pack_sha256),
    damaged: row.damaged,
  };
}

/** The locations of `chunkHashes` that have a row (a missing hash has no entry). */
export async function chunkLocations(db: Db | Tx, chunkHashes: readonly string[]): Promise<Map<string, StoredChunk>> {
  const found = new Map<string, StoredChunk>();
  for (let i = 0; i < chunkHashes.length; i += 10_000) {
    const slice = chunkHashes.slice(i, i + 10_000);
    const rows = rowsOf<ChunkLocationRow>(
      await db.execute(sql`
        select ${LOCATION_COLUMNS}
        from chunks ch left join packs p on p.id = ch.pack_id
        where ch.sha256 in ${hashSet(slice)}`),
    );
    for (const row of rows) found.set(row.sha256, storedChunkOf(row));
  }
  return found;
}

/**
 * For those of `chunkHashes` that are deltas (decision 171), the location
 * of the base each names, by the delta's hash: what reading them back
 * needs, in one query instead of one per delta (decision 187). A delta
 * whose base has no row has no entry.
 */
export async function baseLocationsOf(db: Db | Tx, chunkHashes: readonly string[]): Promise<Map<string, StoredChunk>> {
  const found = new Map<string, StoredChunk>();
  for (let i = 0; i < chunkHashes.length; i += 10_000) {
    const rows = rowsOf<ChunkLocationRow & { delta: string }>(
      await db.execute(sql`
        select encode(d.sha256, 'hex') as delta, ${LOCATION_COLUMNS}
        from chunks d join chunks ch on ch.sha256 = d.base_sha256 left join packs p on p.id = ch.pack_id
        where d.sha256 in ${hashSet(chunkHashes.slice(i, i + 10_000))} and d.base_sha256 is not null`),
    );
    for (const row of rows) found.set(row.delta, storedChunkOf(row));
  }
  return found;
}
