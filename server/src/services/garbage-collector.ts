import { sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { LOCK_KEYS, lockManagerFor } from '../db/advisory-locks.ts';
import { rowsOf } from '../db/database.ts';

/**
 * Garbage collection of contents no file version references and of chunks no
 * content uses, with their objects.
 *
 * Safety (docs/decisions.md #5): GC holds the content lock exclusively from
 * choosing rows until their objects are gone, so no commit can reference a
 * content in between; commits hold it shared and check that their content is
 * still there. Rows go first (committed), objects after: a crash in between
 * leaves an orphan object, never a row without its object. Only rows touched
 * longer than the grace period ago are candidates, so uploads not yet
 * committed into a version, and contents an agent was just told it holds,
 * survive.
 */

export interface GcDeletedBatch {
  contents: string[];
  chunks: { sha256: string; storageKey: string; size: number }[];
}

export interface GcOptions {
  /** Default: the server's GC_GRACE_SECONDS. */
  graceSeconds?: number;
  /** Rows per batch (default 1000); the exclusive lock is taken and released once per batch. */
  batchSize?: number;
  /**
   * Called after a batch's rows are deleted and committed and before its
   * objects are deleted, while the exclusive lock is held. Tests use it to
   * force interleavings with commits; it is not for production use.
   */
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

/** Runs one GC pass over the whole store (see the module comment for its guarantees). */
export async function collectGarbage(ctx: AppContext, options: GcOptions = {}): Promise<GcResult> {
  const graceSeconds = options.graceSeconds ?? ctx.config.gc.graceSeconds;
  const batchSize = options.batchSize ?? 1000;
  const locks = lockManagerFor(ctx.database);
  const totals: GcResult = { ran: true, contentsDeleted: 0, chunksDeleted: 0, objectsDeleted: 0, bytesFreed: 0, objectErrors: 0 };
  const outcome = await locks.tryExclusive(LOCK_KEYS.gcRun, async () => {
    for (;;) {
      const batch = await locks.withExclusiveContentLock(
        async (tx): Promise<GcDeletedBatch> => {
          const cutoff = sql`now() - make_interval(secs => ${graceSeconds})`;
          const contents = rowsOf<{ sha256: string }>(
            await tx.execute(sql`
              delete from contents where sha256 in (
                select c.sha256 from contents c
                where c.touched_at < ${cutoff}
                  and not exists (select 1 from file_versions fv where fv.content_sha256 = c.sha256)
                limit ${batchSize})
              returning sha256`),
          ).map((row) => row.sha256);
          const chunks = rowsOf<{ sha256: string; storage_key: string; size: number | string }>(
            await tx.execute(sql`
              delete from chunks where sha256 in (
                select ch.sha256 from chunks ch
                where ch.touched_at < ${cutoff}
                  and not exists (select 1 from content_chunks cc where cc.chunk_sha256 = ch.sha256)
                limit ${batchSize})
              returning sha256, storage_key, size`),
          ).map((row) => ({ sha256: row.sha256, storageKey: row.storage_key, size: Number(row.size) }));
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
      if (batch.contents.length < batchSize && batch.chunks.length < batchSize) break;
    }
  });
  if (!outcome.ran) return { ...totals, ran: false };
  if (totals.contentsDeleted + totals.chunksDeleted > 0) ctx.log.info({ ...totals, graceSeconds }, 'garbage collection finished');
  return totals;
}
