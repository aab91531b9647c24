import { sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { LOCK_KEYS, lockManagerFor } from '../db/advisory-locks.ts';
import { rowsOf } from '../db/database.ts';
import { hashSet } from '../db/sha256-sql.ts';
import { packKeyOf } from '../blob/blob-store.ts';
import { CHUNK_CODECS } from '../storage/chunk-codec.ts';
import { ChunkReadDamageError, readChunksInOrder } from '../storage/content-reader.ts';
import { chunkLocations, markChunksDamaged, packBytesOf } from '../storage/pack-index.ts';
import { readFallbackFor } from '../storage/replica-repair.ts';
import { PACK_ENTRY_BYTES, PACK_FOOTER_BYTES, PACK_HEADER_BYTES, type ChunkLocation } from '../storage/pack-format.ts';
import { PackWriter } from '../storage/pack-writer.ts';
import { baseResolverFor } from '../storage/delta-base.ts';

/**
 * Garbage collection of contents no file version references and of chunks
 * nothing uses, with their objects. A content of one chunk is that chunk
 * (decision 91): a chunk is in use while a version names it or a content of
 * several chunks lists it.
 *
 * Safety (docs/decisions.md #5): GC chooses candidates without any lock,
 * then takes the content lock exclusively, deletes those of them that are
 * still unreferenced and untouched for the grace period, commits, deletes
 * exactly those rows' objects, and only then releases the lock. Commits hold
 * the lock shared and check that their content is still there, so no commit
 * can reference a content whose object GC is deleting. Rows go first
 * (committed), objects after: a crash in between leaves an orphan object,
 * never a row without its object. Only rows touched longer than the grace
 * period ago are candidates, so uploads not yet committed into a version, and
 * contents an agent was just told it holds, survive.
 */

/**
 * `ch` (a chunk row) is in use by nothing: no content of several chunks lists
 * it, no version names it as its one-chunk content (decision 91), and no
 * delta chunk is stored against it (decision 171). A base and the last delta
 * against it go in two runs: the statement that deletes the delta still sees
 * it.
 */
const CHUNK_UNUSED = sql`not exists (select 1 from content_chunks cc where cc.chunk_sha256 = ch.sha256)
  and not exists (select 1 from file_versions fv where fv.content_sha256 = ch.sha256)
  and not exists (select 1 from chunks d where d.base_sha256 = ch.sha256)`;

export interface GcDeletedBatch {
  contents: string[];
  /** `storageKey`: the v1 object to delete with the row; null for a chunk in a pack. */
  chunks: { sha256: string; storageKey: string | null; size: number }[];
}

export interface GcOptions {
  /** Default: the server's GC_GRACE_SECONDS. */
  graceSeconds?: number;
  /** Candidates per batch (default 1000); the exclusive lock is taken and released once per batch. */
  batchSize?: number;
  /**
   * Test hooks to force interleavings with commits; not for production use.
   * `afterCandidatesChosen` runs after a batch's candidates were chosen and
   * before the lock is requested; `afterRowsDeleted` after its rows were
   * deleted and committed and before its objects are deleted, with the
   * exclusive lock held.
   */
  afterCandidatesChosen?: (candidates: { contents: string[]; chunks: string[] }) => Promise<void>;
  afterRowsDeleted?: (batch: GcDeletedBatch) => Promise<void>;
  /** Runs after a repack's new pack was put and before the chunk rows are switched to it. */
  afterRepackWritten?: (repack: { from: string; to: string; chunks: string[] }) => Promise<void>;
}

export interface GcResult {
  /** false: another GC run (maybe in another replica) was running, this one did nothing. */
  ran: boolean;
  contentsDeleted: number;
  chunksDeleted: number;
  objectsDeleted: number;
  bytesFreed: number;
  /** Objects whose deletion failed: harmless orphans, logged. */
  objectErrors: number;
  /** Packs left with no live chunk (retired; deleted a grace period later). */
  packsRetired: number;
  /** Packs whose live chunks were copied into new packs (then retired). */
  packsRepacked: number;
  /** Retired packs deleted, with their objects. */
  packsDeleted: number;
  /** Objects no row named for a whole grace period, deleted. */
  orphansDeleted: number;
}

/**
 * Runs one GC pass over the whole store (see the module comment for its
 * guarantees). Candidates are chosen without the lock (a scan that may take
 * a while on a large store); under the exclusive lock only those rows are
 * deleted, each re-checked to be still unreferenced and still untouched for
 * the grace period, so a commit in between keeps its content.
 */
export async function collectGarbage(ctx: AppContext, options: GcOptions = {}): Promise<GcResult> {
  const graceSeconds = options.graceSeconds ?? ctx.config.gc.graceSeconds;
  const batchSize = options.batchSize ?? 1000;
  const db = ctx.database.db;
  const locks = lockManagerFor(ctx.database);
  const cutoff = sql`now() - make_interval(secs => ${graceSeconds})`;
  const totals: GcResult = {
    ran: true,
    contentsDeleted: 0,
    chunksDeleted: 0,
    objectsDeleted: 0,
    bytesFreed: 0,
    objectErrors: 0,
    packsRetired: 0,
    packsRepacked: 0,
    packsDeleted: 0,
    orphansDeleted: 0,
  };

  const outcome = await locks.tryExclusive(LOCK_KEYS.gcRun, async () => {
    const [started] = rowsOf<{ now: string }>(await db.execute(sql`select now()::text as now`));
    const startedAt = started!.now;
    for (;;) {
      const contentCandidates = rowsOf<{ sha256: string }>(
        await db.execute(sql`
          select encode(c.sha256, 'hex') as sha256 from contents c
          where c.touched_at < ${cutoff}
            and not exists (select 1 from file_versions fv where fv.content_sha256 = c.sha256)
          limit ${batchSize}`),
      ).map((row) => row.sha256);
      const chunkCandidates = new Set(
        rowsOf<{ sha256: string }>(
          await db.execute(sql`
            select encode(ch.sha256, 'hex') as sha256 from chunks ch
            where ch.touched_at < ${cutoff}
              and ${CHUNK_UNUSED}
            limit ${batchSize}`),
        ).map((row) => row.sha256),
      );
      if (contentCandidates.length > 0) {
        const used = rowsOf<{ sha256: string }>(
          await db.execute(sql`
            select distinct encode(chunk_sha256, 'hex') as sha256 from content_chunks
            where content_sha256 in ${hashSet(contentCandidates)}`),
        );
        for (const row of used) chunkCandidates.add(row.sha256);
      }
      if (contentCandidates.length === 0 && chunkCandidates.size === 0) break;
      await options.afterCandidatesChosen?.({ contents: contentCandidates, chunks: [...chunkCandidates] });

      const batch = await locks.withExclusiveContentLock(
        async (tx): Promise<GcDeletedBatch> => {
          const contents = rowsOf<{ sha256: string }>(
            await tx.execute(sql`
              delete from contents c
              where c.sha256 in ${hashSet(contentCandidates)}
                and c.touched_at < ${cutoff}
                and not exists (select 1 from file_versions fv where fv.content_sha256 = c.sha256)
              returning encode(c.sha256, 'hex') as sha256`),
          ).map((row) => row.sha256);
          const chunks = rowsOf<{ sha256: string; size: number | string; in_pack: boolean }>(
            await tx.execute(sql`
              delete from chunks ch
              where ch.sha256 in ${hashSet([...chunkCandidates])}
                and ch.touched_at < ${cutoff}
                and ${CHUNK_UNUSED}
              returning encode(ch.sha256, 'hex') as sha256, ch.size, ch.pack_id is not null as in_pack`),
            // A v1 object's store key is its hash; a packed chunk's bytes go with its pack (collectPacks).
          ).map((row) => ({ sha256: row.sha256, storageKey: row.in_pack ? null : row.sha256, size: Number(row.size) }));
          // Who held what is gone with it: a hash names a contents row, else a chunk (decision 91).
          const gone = [...contents, ...chunks.map((c) => c.sha256)];
          if (gone.length > 0) {
            await tx.execute(sql`
              delete from owner_contents oc
              where oc.content_sha256 in ${hashSet(gone)}
                and not exists (select 1 from contents ct where ct.sha256 = oc.content_sha256)
                and not exists (select 1 from chunks ch where ch.sha256 = oc.content_sha256)`);
          }
          return { contents, chunks };
        },
        async (deleted) => {
          await options.afterRowsDeleted?.(deleted);
          for (const chunk of deleted.chunks) {
            if (chunk.storageKey === null) continue;
            try {
              await ctx.blobs.delete(chunk.storageKey);
              totals.objectsDeleted++;
              totals.bytesFreed += chunk.size;
            } catch (error) {
              totals.objectErrors++;
              ctx.log.warn({ err: error, key: chunk.storageKey }, 'GC could not delete an object; it stays as a harmless orphan');
            }
          }
        },
      );
      totals.contentsDeleted += batch.contents.length;
      totals.chunksDeleted += batch.chunks.length;
      const full = contentCandidates.length >= batchSize || chunkCandidates.size >= batchSize;
      // Stop when nothing more is to be had, or when a full batch was all rescued by commits (the next run retries).
      if (!full || batch.contents.length + batch.chunks.length === 0) break;
    }
    await collectPacks(ctx, { graceSeconds, totals, hooks: options });
    await collectOrphans(ctx, graceSeconds, startedAt, totals);
  });
  if (!outcome.ran) return { ...totals, ran: false };
  if (totals.contentsDeleted + totals.chunksDeleted + totals.packsRetired + totals.packsDeleted + totals.orphansDeleted > 0) {
    ctx.log.info({ ...totals, graceSeconds }, 'garbage collection finished');
  }
  return totals;
}

/**
 * A pack whose live chunks (their bytes and index entries, plus the fixed
 * header and footer) take less than this share of its bytes is repacked: its live chunks are copied into a new pack and it is retired
 * (decision 131). Half, as restic's default `--max-unused` of 5% of the
 * repository would repack far more often for little gain on a backup
 * server whose packs mostly die whole (a pruned version's chunks are
 * usually uploaded together).
 */
export const REPACK_LIVE_SHARE = 0.5;
/** Packs repacked per GC run at most, so one run's work stays bounded. */
const REPACK_PER_RUN = 64;

/**
 * The pack half of GC (decision 131), after chunk rows are collected:
 * 1. a pack no chunk row points into is retired (retired_at = now);
 * 2. a pack older than the grace period whose live chunks take less than
 *    REPACK_LIVE_SHARE of it has them copied (read back verified) into a
 *    new pack; the rows still pointing into the old pack are switched in
 *    one transaction under the shared content lock, and the old pack is
 *    retired once none point into it;
 * 3. a pack retired longer than the grace period, still with no chunk row,
 *    loses its row under the exclusive content lock and then its object.
 * A reader that looked a chunk's location up before a switch or a delete
 * still finds the bytes for the grace period. Nothing ever points a chunk
 * into a retired pack: uploads record only the pack they just put (whose
 * name is its own, decision 130) and repacks only the pack they wrote.
 */
async function collectPacks(
  ctx: AppContext,
  { graceSeconds, totals, hooks }: { graceSeconds: number; totals: GcResult; hooks: GcOptions },
): Promise<void> {
  const db = ctx.database.db;
  const locks = lockManagerFor(ctx.database);
  const cutoff = sql`now() - make_interval(secs => ${graceSeconds})`;
  totals.packsRetired += countOf(
    await db.execute(sql`
      update packs p set retired_at = now()
      where p.retired_at is null and not exists (select 1 from chunks ch where ch.pack_id = p.id)`),
  );

  const sparse = rowsOf<{ id: number; sha256: string }>(
    await db.execute(sql`
      select p.id, encode(p.sha256, 'hex') as sha256 from packs p
      where p.retired_at is null and p.created_at < ${cutoff}
        -- A live chunk costs its bytes and its index entry; the header and footer are paid by any pack (decision 166).
        and (select coalesce(sum(ch.stored_length), 0) + ${PACK_ENTRY_BYTES} * count(*) + ${PACK_HEADER_BYTES + PACK_FOOTER_BYTES}
             from chunks ch where ch.pack_id = p.id) < p.bytes * ${REPACK_LIVE_SHARE}::float8
      order by p.id
      limit ${REPACK_PER_RUN}`),
  );
  for (const pack of sparse) {
    try {
      if (await repack(ctx, { id: Number(pack.id), key: packKeyOf(pack.sha256) }, hooks)) totals.packsRepacked++;
    } catch (error) {
      ctx.log.warn({ err: error, pack: pack.sha256 }, 'GC could not repack a pack; it stays as it is');
    }
  }
  totals.packsRetired += countOf(
    await db.execute(sql`
      update packs p set retired_at = now()
      where p.retired_at is null and not exists (select 1 from chunks ch where ch.pack_id = p.id)`),
  );

  for (;;) {
    const deleted = await locks.withExclusiveContentLock(
      async (tx) =>
        rowsOf<{ sha256: string; bytes: number | string }>(
          await tx.execute(sql`
            delete from packs p
            where p.id in (
              select id from packs
              where retired_at < ${cutoff} and not exists (select 1 from chunks ch where ch.pack_id = packs.id)
              limit 500)
            returning encode(p.sha256, 'hex') as sha256, p.bytes`),
        ),
      async (rows) => {
        for (const row of rows) {
          try {
            await ctx.blobs.delete(packKeyOf(row.sha256));
            totals.packsDeleted++;
            totals.objectsDeleted++;
            totals.bytesFreed += Number(row.bytes);
          } catch (error) {
            totals.objectErrors++;
            ctx.log.warn({ err: error, pack: row.sha256 }, 'GC could not delete a pack; it stays as a harmless orphan');
          }
        }
      },
    );
    if (deleted.length < 500) break;
  }
}

/** Copies the live chunks of one pack into a new pack and switches their rows; false when there was nothing to move. */
async function repack(ctx: AppContext, pack: { id: number; key: string }, hooks: GcOptions): Promise<boolean> {
  const db = ctx.database.db;
  const live = rowsOf<{ sha256: string }>(
    await db.execute(sql`
      select encode(sha256, 'hex') as sha256 from chunks
      where pack_id = ${pack.id} and damaged_at is null
      order by pack_offset`),
  ).map((row) => row.sha256);
  if (live.length === 0) return false;
  const locations = await chunkLocations(db, live);
  const ordered = live.map((sha) => locations.get(sha)!).filter((l) => l.kind === 'pack' && l.packKey === pack.key);
  const writer = new PackWriter(ctx.blobs);
  const written: ChunkLocation[] = [];
  let index = 0;
  try {
    for await (const raw of readChunksInOrder(ctx.blobs, ordered, { verifyObjects: true, fallback: readFallbackFor(ctx), base: baseResolverFor(ctx) })) {
      written.push(...(await writer.add(ordered[index]!.sha256, raw, { hashed: true })));
      index++;
    }
  } catch (error) {
    if (!(error instanceof ChunkReadDamageError)) throw error;
    // Damaged bytes are not copied: they are marked, and the next upload of them heals the index.
    await markChunksDamaged(db, error.chunkHashes);
    ctx.log.error({ chunks: error.chunkHashes, pack: pack.key, detail: error.detail }, 'GC found damaged chunks while repacking; marked for re-upload');
    return false;
  }
  written.push(...(await writer.flush()));
  if (written.length === 0) return false;
  // Rows after objects: every new pack is stored before any row points into it.
  const byPack = new Map<string, ChunkLocation[]>();
  for (const location of written) byPack.set(location.packKey, [...(byPack.get(location.packKey) ?? []), location]);
  for (const [packKey, list] of byPack) {
    await hooks.afterRepackWritten?.({ from: pack.key, to: packKey, chunks: list.map((l) => l.sha256) });
    await lockManagerFor(ctx.database).inReferencingTransaction(async (tx) => {
      const [row] = rowsOf<{ id: number }>(
        await tx.execute(sql`
          insert into packs (sha256, bytes, chunk_count)
          values (decode(${packKey.slice('packs/'.length)}, 'hex'), ${packBytesOf(list)}, ${list.length})
          returning id`),
      );
      // Only rows still in the old pack and not damaged move: an upload may have healed one meanwhile, GC
      // (this run) is the only one deleting rows, and nothing else points chunks into an old pack.
      await tx.execute(sql`
        update chunks ch set pack_id = ${row!.id}, pack_offset = x."offset", stored_length = x.length, codec = x.codec,
          base_sha256 = null
        from jsonb_to_recordset(${JSON.stringify(list.map((l) => ({ sha256: l.sha256, offset: l.offset, length: l.length, codec: CHUNK_CODECS[l.codec] })))}::jsonb)
          as x(sha256 text, "offset" bigint, length integer, codec smallint)
        where ch.sha256 = decode(x.sha256, 'hex') and ch.pack_id = ${pack.id} and ch.damaged_at is null`);
    });
  }
  ctx.log.info({ from: pack.key, to: [...byPack.keys()], chunks: written.length }, 'repacked a mostly dead pack');
  return true;
}

/**
 * Objects in the store that no row names: a pack without a `packs` row, a
 * v1 object without a chunk row of its own. Each is recorded when first
 * seen and deleted when a later run still finds it unnamed after the grace
 * period (an upload's pack is unnamed between its put and its commit). The
 * delete holds the exclusive content lock, and an upload checks, under the
 * shared lock, that its pack is still there before it records it, so even
 * an upload slower than the grace period is refused rather than recorded
 * against a deleted object.
 */
async function collectOrphans(ctx: AppContext, graceSeconds: number, runStartedAt: string, totals: GcResult): Promise<void> {
  const db = ctx.database.db;
  const cutoff = sql`now() - make_interval(secs => ${graceSeconds})`;
  const keys: string[] = [];
  for await (const object of ctx.blobs.list()) keys.push(object.key);
  const unnamed: string[] = [];
  for (let i = 0; i < keys.length; i += 5000) {
    const slice = keys.slice(i, i + 5000);
    const named = new Set(
      rowsOf<{ key: string }>(
        await db.execute(sql`
          select k.key from jsonb_array_elements_text(${JSON.stringify(slice)}::jsonb) as k(key)
          -- CASE: SQL does not promise to test the prefix before it decodes the rest.
          where exists (select 1 from packs p where p.sha256 = case when k.key like 'packs/%' then decode(substr(k.key, 7), 'hex') end)
             or exists (select 1 from chunks ch where ch.sha256 = case when k.key not like 'packs/%' then decode(k.key, 'hex') end and ch.pack_id is null)`),
      ).map((row) => row.key),
    );
    for (const key of slice) if (!named.has(key)) unnamed.push(key);
  }
  // Named again (or gone) since they were seen: forget them.
  await db.execute(sql`delete from orphan_objects where key not in (select value from jsonb_array_elements_text(${JSON.stringify(unnamed)}::jsonb))`);
  if (unnamed.length === 0) return;
  await db.execute(sql`
    insert into orphan_objects (key) select value from jsonb_array_elements_text(${JSON.stringify(unnamed)}::jsonb)
    on conflict (key) do nothing`);
  // Seen by an earlier run too, whatever the grace period: an object put during this run is never due in it.
  const due = rowsOf<{ key: string }>(
    await db.execute(sql`select key from orphan_objects where first_seen_at < ${cutoff} and first_seen_at < ${runStartedAt}::timestamptz`),
  ).map((r) => r.key);
  if (due.length === 0) return;
  // Under the exclusive lock, so no commit names one of them while it goes: rows first (here, none), objects after.
  await lockManagerFor(ctx.database).withExclusiveContentLock(
    async (tx) =>
      rowsOf<{ key: string }>(
        await tx.execute(sql`
          delete from orphan_objects o
          where o.key in (select value from jsonb_array_elements_text(${JSON.stringify(due)}::jsonb))
            and not exists (select 1 from packs p where p.sha256 = case when o.key like 'packs/%' then decode(substr(o.key, 7), 'hex') end)
            and not exists (select 1 from chunks ch where ch.sha256 = case when o.key not like 'packs/%' then decode(o.key, 'hex') end and ch.pack_id is null)
          returning o.key`),
      ).map((row) => row.key),
    async (gone) => {
      for (const key of gone) {
        try {
          await ctx.blobs.delete(key);
          totals.orphansDeleted++;
          totals.objectsDeleted++;
        } catch (error) {
          totals.objectErrors++;
          ctx.log.warn({ err: error, key }, 'GC could not delete an orphan object');
        }
      }
    },
  );
}

function countOf(result: unknown): number {
  const count = (result as { count?: number }).count;
  return typeof count === 'number' ? count : 0;
}
