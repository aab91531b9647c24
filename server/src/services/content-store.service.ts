import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { and, asc, eq, sql } from 'drizzle-orm';
import type { UploadResult } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { lockManagerFor } from '../db/advisory-locks.ts';
import { rowsOf, type Tx } from '../db/database.ts';
import { backupRuns, chunks, contentChunks, contents, ownerContents } from '../db/schema.ts';
import { ConflictError, HashMismatchError, PayloadTooLargeError } from '../errors.ts';

/**
 * Content bytes and who holds them. A content is proven held by a user once
 * that user uploaded its bytes; dedup answers never look beyond that user.
 * In v1 a content is exactly one chunk with the same hash, stored under that
 * hash; `content_chunks` keeps the seam for content-defined chunking.
 */

/**
 * Of `hashes`, the ones `userId` has not proven to hold, in the order asked.
 * Contents the user holds are touched, so GC spares them for its grace period
 * while the agent goes on to reference them in a changes commit.
 */
export async function findMissingContents(ctx: AppContext, userId: string, hashes: readonly string[]): Promise<string[]> {
  if (hashes.length === 0) return [];
  const held = rowsOf<{ sha256: string }>(
    await ctx.database.db.execute(sql`
      update ${contents} set touched_at = now()
      where sha256 in (
        select oc.content_sha256 from ${ownerContents} oc
        where oc.user_id = ${userId}
          and oc.content_sha256 in (select value from jsonb_array_elements_text(${JSON.stringify(hashes)}::jsonb))
      )
      returning sha256`),
  );
  const heldSet = new Set(held.map((row) => row.sha256));
  return [...new Set(hashes)].filter((hash) => !heldSet.has(hash));
}

export interface UploadInput {
  userId: string;
  /** The declared SHA-256 (the multipart part's field name), already checked to be 64 lower-case hex digits. */
  sha256: string;
  source: Readable;
  /** When given, bytes this upload newly stores are added to this run's bytes_new; the caller checked it is the uploader's run. */
  runId?: string | null;
  /** Larger parts are refused with PayloadTooLargeError, keeping nothing. */
  maxBytes: number;
}

/**
 * Takes one uploaded content. The bytes are hashed while they stream; a
 * mismatch throws HashMismatchError and leaves no object and no row. When the
 * server already stores the bytes they are hashed and discarded, never
 * written. Either way, on success the user is recorded as holding the content.
 *
 * Races with GC (docs/decisions.md #5): the rows are committed under the
 * shared content lock, after checking that the object is (still) there; if GC
 * removed it meanwhile, ConflictError names the hash as `missing` and the
 * agent uploads it again.
 */
export async function storeUploadedContent(ctx: AppContext, input: UploadInput): Promise<UploadResult> {
  const { sha256 } = input;
  const locks = lockManagerFor(ctx.database);
  // Touching first keeps a GC that starts now from choosing this chunk while its bytes stream in.
  const known = rowsOf<{ size: number | string }>(
    await ctx.database.db.execute(sql`update ${chunks} set touched_at = now() where sha256 = ${sha256} returning size`),
  );
  if (known.length > 0) {
    const received = await hashAndDiscard(input.source, input.maxBytes);
    if (received.sha256 !== sha256) throw new HashMismatchError(sha256, received.sha256);
    await locks.inReferencingTransaction(async (tx) => {
      const still = rowsOf(await tx.execute(sql`update ${chunks} set touched_at = now() where sha256 = ${sha256} returning sha256`));
      if (still.length === 0) throw contentGone(sha256);
      await recordHeldContent(tx, input.userId, sha256, received.size);
    });
    return { sha256, size: received.size, status: 'existing' };
  }

  const stored = await ctx.blobs.put(sha256, input.source, sha256, { maxBytes: input.maxBytes });
  return locks.inReferencingTransaction(async (tx) => {
    // GC may have deleted this key after our put if it held rows for it; then the commit must not point at nothing.
    if ((await ctx.blobs.stat(sha256)) === null) throw contentGone(sha256);
    const inserted = await tx
      .insert(chunks)
      .values({ sha256, size: stored.size, storageKey: sha256 })
      .onConflictDoNothing({ target: chunks.sha256 })
      .returning({ sha256: chunks.sha256 });
    if (inserted.length === 0) {
      await tx.update(chunks).set({ touchedAt: sql`now()` }).where(eq(chunks.sha256, sha256));
    } else if (input.runId) {
      await tx
        .update(backupRuns)
        .set({ bytesNew: sql`${backupRuns.bytesNew} + ${stored.size}` })
        .where(eq(backupRuns.id, input.runId));
    }
    await recordHeldContent(tx, input.userId, sha256, stored.size);
    return { sha256, size: stored.size, status: inserted.length > 0 ? 'stored' : 'existing' } satisfies UploadResult;
  });
}

/** Content rows for a one-chunk content (idempotent), touched, and the user's proof of holding it. */
async function recordHeldContent(tx: Tx, userId: string, sha256: string, size: number): Promise<void> {
  await tx
    .insert(contents)
    .values({ sha256, size, chunkCount: 1 })
    .onConflictDoUpdate({ target: contents.sha256, set: { touchedAt: sql`now()` } });
  await tx.insert(contentChunks).values({ contentSha256: sha256, seq: 0, chunkSha256: sha256, offset: 0 }).onConflictDoNothing();
  await tx.insert(ownerContents).values({ userId, contentSha256: sha256 }).onConflictDoNothing();
}

function contentGone(sha256: string): ConflictError {
  return new ConflictError(`content ${sha256} was removed by garbage collection while it was uploaded; upload it again`, {
    missing: [sha256],
  });
}

async function hashAndDiscard(source: Readable, maxBytes: number): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new PayloadTooLargeError(`upload part larger than ${maxBytes} bytes`);
    hash.update(chunk);
  }
  return { sha256: hash.digest('hex'), size };
}

/** Whether `userId` holds the content (uploaded its bytes once). */
export async function userHoldsContent(ctx: AppContext, userId: string, sha256: string): Promise<boolean> {
  const [row] = await ctx.database.db
    .select({ sha256: ownerContents.contentSha256 })
    .from(ownerContents)
    .where(and(eq(ownerContents.userId, userId), eq(ownerContents.contentSha256, sha256)))
    .limit(1);
  return row !== undefined;
}

/**
 * The bytes of a content `userId` holds, as one stream of its chunks in
 * order, with its size; null when the user does not hold it (whether or not
 * anyone else does). A chunk whose object is missing fails the stream loudly.
 */
export async function openContentForUser(ctx: AppContext, userId: string, sha256: string): Promise<{ size: number; stream: Readable } | null> {
  const [content] = await ctx.database.db
    .select({ size: contents.size })
    .from(contents)
    .innerJoin(ownerContents, and(eq(ownerContents.contentSha256, contents.sha256), eq(ownerContents.userId, userId)))
    .where(eq(contents.sha256, sha256))
    .limit(1);
  if (!content) return null;
  const parts = await ctx.database.db
    .select({ key: chunks.storageKey })
    .from(contentChunks)
    .innerJoin(chunks, eq(chunks.sha256, contentChunks.chunkSha256))
    .where(eq(contentChunks.contentSha256, sha256))
    .orderBy(asc(contentChunks.seq));
  const first = parts.length === 1 ? await ctx.blobs.get(parts[0]!.key) : undefined;
  if (first === null) throw new Error(`stored object ${parts[0]!.key} of content ${sha256} is missing`);
  if (first) return { size: content.size, stream: first };
  const blobs = ctx.blobs;
  async function* concatenated(): AsyncGenerator<Buffer> {
    for (const part of parts) {
      const stream = await blobs.get(part.key);
      if (!stream) throw new Error(`stored object ${part.key} of content ${sha256} is missing`);
      yield* stream as AsyncIterable<Buffer>;
    }
  }
  return { size: content.size, stream: Readable.from(concatenated()) };
}
