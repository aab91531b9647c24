import { sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { LOCK_KEYS, lockManagerFor } from '../db/advisory-locks.ts';
import { rowsOf } from '../db/database.ts';
import { hashSet } from '../db/sha256-sql.ts';

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
 * it, and no version names it as its one-chunk content (decision 91).
 */
const CHUNK_UNUSED = sql`not exists (select 1 from content_chunks cc where cc.chunk_sha256 = ch.sha256)
  and not exists (select 1 from file_versions fv where fv.content_sha256 = ch.sha256)`;

export interface GcDeletedBatch {
  contents: string[];
  chunks: { sha256: string; storageKey: string; size: number }[];
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
  const totals: GcResult = { ran: true, contentsDeleted: 0, chunksDeleted: 0, objectsDeleted: 0, bytesFreed: 0, objectErrors: 0 };

  const outcome = await locks.tryExclusive(LOCK_KEYS.gcRun, async () => {
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
          const chunks = rowsOf<{ sha256: string; size: number | string }>(
            await tx.execute(sql`
              delete from chunks ch
              where ch.sha256 in ${hashSet([...chunkCandidates])}
                and ch.touched_at < ${cutoff}
                and ${CHUNK_UNUSED}
              returning encode(ch.sha256, 'hex') as sha256, ch.size`),
            // A v1 object's store key is its hash.
          ).map((row) => ({ sha256: row.sha256, storageKey: row.sha256, size: Number(row.size) }));
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
  });
  if (!outcome.ran) return { ...totals, ran: false };
  if (totals.contentsDeleted + totals.chunksDeleted > 0) ctx.log.info({ ...totals, graceSeconds }, 'garbage collection finished');
  return totals;
}
