import { createHash } from 'node:crypto';
import { pipeline, Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { deflateRawSync } from 'node:zlib';
import { and, asc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { BaseLogger } from 'pino';
import type { UploadResult } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { lockManagerFor } from '../db/advisory-locks.ts';
import { VerifyingStream } from '../blob/verifying-stream.ts';
import { rowsOf } from '../db/database.ts';
import { backupRuns, chunks, clientPaths, contentChunks, contents, fileVersions, ownerContents } from '../db/schema.ts';
import { hashSet, hashValue } from '../db/sha256-sql.ts';
import { ConflictError, HashMismatchError, PayloadTooLargeError, StoredContentDamagedError } from '../errors.ts';

/**
 * Content bytes and who holds them. A content is proven held by a user once
 * that user uploaded its bytes; dedup answers never look beyond that user.
 * In v1 a content is exactly one chunk with the same hash, stored under that
 * hash, with no `content_chunks` row (decision 91); that table keeps the
 * seam for content-defined chunking.
 */

/** The content named by `hash` (a column of bytea hashes) is stored: a contents row, else a chunk (decision 91). */
function isStored(hash: string): SQL {
  const column = sql.raw(hash);
  return sql`(exists (select 1 from ${chunks} ch where ch.sha256 = ${column}) or exists (select 1 from ${contents} ct where ct.sha256 = ${column}))`;
}

/** How recent a touch makes another one unnecessary (at most half the GC grace period). */
const TOUCH_SLACK_SECONDS = 60;

/**
 * Of `hashes`, the ones `userId` has not proven to hold, in the order asked.
 * Contents the user holds are touched, so GC spares them for its grace period
 * while the agent goes on to reference them in a changes commit.
 */
export async function findMissingContents(ctx: AppContext, userId: string, hashes: readonly string[]): Promise<string[]> {
  if (hashes.length === 0) return [];
  // A row touched within the slack is not touched again: the agent asks again right after uploading, and each
  // update of a row leaves a dead copy of it behind (half of the contents table, measured). GC still spares it
  // for the grace period less the slack, and a commit that loses a race with GC anyway is refused and re-sent.
  const slackSeconds = Math.min(TOUCH_SLACK_SECONDS, Math.floor(ctx.config.gc.graceSeconds / 2));
  const held = rowsOf<{ sha256: string }>(
    await ctx.database.db.execute(sql`
      with held as (
        select oc.content_sha256 as sha256 from ${ownerContents} oc
        where oc.user_id = ${userId} and oc.content_sha256 in ${hashSet(hashes)} and ${isStored('oc.content_sha256')}
      ), touched_chunks as (
        update ${chunks} set touched_at = now()
        where sha256 in (select sha256 from held) and touched_at < now() - make_interval(secs => ${slackSeconds})
      ), touched_contents as (
        update ${contents} set touched_at = now()
        where sha256 in (select sha256 from held) and touched_at < now() - make_interval(secs => ${slackSeconds})
      )
      select encode(sha256, 'hex') as sha256 from held`),
  );
  const heldSet = new Set(held.map((row) => row.sha256));
  return [...new Set(hashes)].filter((hash) => !heldSet.has(hash));
}

export interface IncomingContent {
  /** The declared SHA-256 (the multipart part's field name), already checked to be 64 lower-case hex digits. */
  sha256: string;
  source: Readable;
}

export interface UploadOptions {
  userId: string;
  /** When given, bytes this upload newly stores are added to this run's bytes_new; the caller checked it is the uploader's run. */
  runId?: string | null;
  /** Larger parts are refused with PayloadTooLargeError, keeping nothing of them. */
  maxBytes: number;
}

export type UploadInput = IncomingContent & UploadOptions;

/** Parts received and verified before their rows are committed together: one transaction per batch, not per file. */
const COMMIT_BATCH = 500;
/**
 * Parts whose object writes may still be finishing (fsync, rename) while the
 * next part's bytes already stream in. Small files are bound by the store's
 * per-object durability work, which overlaps well.
 */
const PUTS_IN_FLIGHT = 8;

interface ReceivedContent {
  sha256: string;
  size: number;
  /** true: this upload wrote the object; false: a chunk row existed, the bytes were hashed and discarded. */
  wrote: boolean;
  /** The compression sample of a written part of a run (0 and 0 otherwise): its raw and deflated sizes. */
  sampleRaw: number;
  sampleCompressed: number;
}

/**
 * Bytes at the start of each part a run newly stores whose compressibility
 * is measured (decision 120): bounded work per part whatever its size, and
 * enough for deflate to tell text, databases and binaries (which shrink)
 * from encrypted or already compressed bytes (which do not). 16 KiB, not
 * 64: deflate on random bytes costs about 9x more for 64 KiB than for
 * 16 KiB (1.3 ms against 0.14 ms here), and text deflates to the same
 * share either way (21% and 22%).
 */
export const COMPRESSION_SAMPLE_BYTES = 16 * 1024;
/** Level 1; a window and hash table sized to the sample (a bigger window cannot find more in 16 KiB), so less state to set up per part. */
const SAMPLE_DEFLATE = { level: 1, windowBits: 14, memLevel: 6 } as const;

/**
 * A copy of the first COMPRESSION_SAMPLE_BYTES of a part, fed by the store's
 * own verifying stream as the bytes pass (PutOptions.observe): no stream
 * stage of its own, and nothing at all once the sample is full.
 */
class CompressionSample {
  readonly #pieces: Buffer[] = [];
  #kept = 0;
  readonly add = (chunk: Buffer): void => {
    if (this.#kept >= COMPRESSION_SAMPLE_BYTES) return;
    const piece = Buffer.from(chunk.subarray(0, COMPRESSION_SAMPLE_BYTES - this.#kept));
    this.#pieces.push(piece);
    this.#kept += piece.length;
  };

  /**
   * The sample's raw and deflated (no header) sizes. Synchronous, like the
   * hashing of every piece: at most about 0.2 ms of CPU for 16 KiB of random
   * bytes, 0.05 ms for text; the thread-pool form cost 1.5-2x that in CPU
   * (measured, decision 120) for a hop that only adds latency.
   */
  measure(): { raw: number; compressed: number } {
    if (this.#kept === 0) return { raw: 0, compressed: 0 };
    const sample = this.#pieces.length === 1 ? this.#pieces[0]! : Buffer.concat(this.#pieces, this.#kept);
    this.#pieces.length = 0;
    const compressed = deflateRawSync(sample, SAMPLE_DEFLATE);
    return { raw: sample.length, compressed: compressed.length };
  }
}

/**
 * Takes uploaded contents, in order. Each one's bytes are hashed while they
 * stream; a mismatch throws HashMismatchError and leaves no object and no row
 * for that part. Bytes the server already stores are hashed and discarded,
 * never written. On success the user is recorded as holding each content.
 *
 * Rows are committed in batches. When a part fails, the parts already
 * received and verified (before it, and any still finishing after it) are
 * committed, so nothing verified is left as an orphan object, and then the
 * first failure is thrown.
 *
 * Races with GC (docs/decisions.md #5): rows are committed under the shared
 * content lock after checking that each object (or chunk row) is still
 * there; what GC removed meanwhile is refused with ConflictError naming the
 * `missing` hashes (the rest of the batch is committed), and the agent
 * uploads those again.
 */
export async function storeUploadedContents(
  ctx: AppContext,
  options: UploadOptions,
  parts: AsyncIterable<IncomingContent> | Iterable<IncomingContent>,
): Promise<UploadResult[]> {
  const results: UploadResult[] = [];
  let received: ReceivedContent[] = [];
  const inFlight: Promise<ReceivedContent>[] = [];
  let failure: { error: unknown } | undefined;
  const settleOldest = async () => {
    try {
      received.push(await inFlight.shift()!);
    } catch (error) {
      failure ??= { error };
    }
  };
  const flush = async () => {
    const batch = received;
    received = [];
    if (batch.length > 0) results.push(...(await commitReceived(ctx, options, batch)));
  };
  try {
    for await (const part of parts) {
      const receiving = receiveContent(ctx, part, options.maxBytes, Boolean(options.runId));
      let refused = false;
      // Rejections are taken up, in order, by settleOldest; the flag stops reading further parts at once.
      receiving.catch(() => (refused = true));
      inFlight.push(receiving);
      // The next part arrives only once this one's bytes are read; the write may still be finishing.
      await Promise.race([finished(part.source).catch(() => undefined), receiving.then(noop, noop)]);
      if (refused) {
        // A store that gave up without reading the part would leave the parser waiting for it forever.
        part.source.destroy();
        break;
      }
      while (inFlight.length >= PUTS_IN_FLIGHT) await settleOldest();
      if (failure) break;
      if (received.length >= COMMIT_BATCH) await flush();
    }
  } catch (error) {
    failure ??= { error };
  }
  while (inFlight.length > 0) await settleOldest();
  try {
    await flush();
  } catch (error) {
    if (!failure) throw error;
    ctx.log.warn({ err: error }, 'could not commit the parts received before a failed one; the agent will upload them again');
  }
  if (failure) throw failure.error;
  return results;
}

function noop(): void {}

/** One content; see storeUploadedContents. */
export async function storeUploadedContent(ctx: AppContext, input: UploadInput): Promise<UploadResult> {
  const [result] = await storeUploadedContents(ctx, input, [input]);
  if (!result) throw new Error('upload produced no result');
  return result;
}

/** `sample`: measure the compressibility of the part's bytes if they turn out new (uploads for a run). */
async function receiveContent(ctx: AppContext, part: IncomingContent, maxBytes: number, sample: boolean): Promise<ReceivedContent> {
  const { sha256 } = part;
  // A chunk row never outlives its object (puts write the object first, GC deletes rows first), so a
  // missing object means new bytes, without a database round trip per part (most of the cost of many small files).
  const maybeKnown = ctx.blobs.kind !== 'disk' || (await ctx.blobs.stat(sha256)) !== null;
  // Touching first keeps a GC that starts now from choosing this chunk while its bytes stream in.
  const known = maybeKnown
    ? rowsOf(await ctx.database.db.execute(sql`update ${chunks} set touched_at = now() where sha256 = ${hashValue(sha256)} returning 1`))
    : [];
  if (known.length > 0) {
    const received = await hashAndDiscard(part.source, maxBytes);
    if (received.sha256 !== sha256) throw new HashMismatchError(sha256, received.sha256);
    return { sha256, size: received.size, wrote: false, sampleRaw: 0, sampleCompressed: 0 };
  }
  const sampler = sample ? new CompressionSample() : null;
  const stored = await ctx.blobs.put(sha256, part.source, sha256, { maxBytes, observe: sampler?.add });
  const measured = sampler ? sampler.measure() : { raw: 0, compressed: 0 };
  return { sha256, size: stored.size, wrote: true, sampleRaw: measured.raw, sampleCompressed: measured.compressed };
}

async function commitReceived(ctx: AppContext, options: UploadOptions, batch: ReceivedContent[]): Promise<UploadResult[]> {
  const { results, gone } = await lockManagerFor(ctx.database).inReferencingTransaction(async (tx) => {
    const gone = new Set<string>();
    // GC may have deleted a key after our put if it held old rows for it: then no row may point at it.
    const written = unique(batch.filter((c) => c.wrote));
    for (let i = 0; i < written.length; i += 32) {
      const slice = written.slice(i, i + 32);
      const stats = await Promise.all(slice.map((c) => ctx.blobs.stat(c.sha256)));
      stats.forEach((info, j) => info === null && gone.add(slice[j]!.sha256));
    }
    const knownHashes = unique(batch.filter((c) => !c.wrote)).map((c) => c.sha256);
    if (knownHashes.length > 0) {
      const still = new Set(
        rowsOf<{ sha256: string }>(
          await tx.execute(sql`
            update ${chunks} set touched_at = now()
            where sha256 in ${hashSet(knownHashes)}
            returning encode(sha256, 'hex') as sha256`),
        ).map((row) => row.sha256),
      );
      for (const hash of knownHashes) if (!still.has(hash)) gone.add(hash);
    }
    const valid = unique(batch.filter((c) => !gone.has(c.sha256)));
    const newChunks = valid.filter((c) => c.wrote);
    const inserted = new Set<string>();
    if (newChunks.length > 0) {
      const rows = rowsOf<{ sha256: string }>(
        await tx.execute(sql`
          insert into ${chunks} (sha256, size)
          select decode(x.sha256, 'hex'), x.size from ${recordsOf(newChunks)}
          on conflict (sha256) do nothing
          returning encode(sha256, 'hex') as sha256`),
      );
      for (const row of rows) inserted.add(row.sha256);
      const raced = newChunks.filter((c) => !inserted.has(c.sha256)).map((c) => c.sha256);
      if (raced.length > 0) await tx.update(chunks).set({ touchedAt: sql`now()` }).where(inArray(chunks.sha256, raced));
    }
    if (valid.length > 0) {
      // A one-chunk content is its chunk alone: no contents and no content_chunks row (decision 91).
      // One JSON parameter per statement: cheaper to parse and plan than a 500-row VALUES list (decision 38).
      await tx.execute(sql`
        insert into ${ownerContents} (content_sha256, user_id)
        select decode(x.sha256, 'hex'), ${options.userId}::uuid from ${recordsOf(valid)}
        on conflict do nothing`);
    }
    // Only what this upload newly stored counts, for the run's bytes and its compression sample alike.
    const storedNew = newChunks.filter((c) => inserted.has(c.sha256));
    const bytesNew = storedNew.reduce((sum, c) => sum + c.size, 0);
    const sampleRaw = storedNew.reduce((sum, c) => sum + c.sampleRaw, 0);
    const sampleCompressed = storedNew.reduce((sum, c) => sum + c.sampleCompressed, 0);
    if (options.runId && bytesNew > 0) {
      await tx
        .update(backupRuns)
        .set({
          bytesNew: sql`${backupRuns.bytesNew} + ${bytesNew}`,
          sampleRawBytes: sql`${backupRuns.sampleRawBytes} + ${sampleRaw}`,
          sampleCompressedBytes: sql`${backupRuns.sampleCompressedBytes} + ${sampleCompressed}`,
        })
        .where(eq(backupRuns.id, options.runId));
    }
    const reported = new Set<string>();
    const results = batch
      .filter((c) => !gone.has(c.sha256))
      .map((c): UploadResult => {
        const stored = inserted.has(c.sha256) && !reported.has(c.sha256);
        reported.add(c.sha256);
        return { sha256: c.sha256, size: c.size, status: stored ? 'stored' : 'existing' };
      });
    return { results, gone: [...gone] };
  });
  if (gone.length > 0) {
    throw new ConflictError(`${gone.length} content(s) were removed by garbage collection while they were uploaded; upload them again`, {
      missing: gone,
    });
  }
  return results;
}

/** Contents as a set of (sha256, size) rows for set-based statements. */
function recordsOf(list: readonly ReceivedContent[]): SQL {
  return sql`jsonb_to_recordset(${JSON.stringify(list.map((c) => ({ sha256: c.sha256, size: c.size })))}::jsonb) as x(sha256 text, size bigint)`;
}

/** First occurrence of each hash. */
function unique(list: ReceivedContent[]): ReceivedContent[] {
  const seen = new Set<string>();
  return list.filter((c) => !seen.has(c.sha256) && (seen.add(c.sha256), true));
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

/** Who the bytes of a content are read for: named, with the affected paths, when they turn out damaged. */
export interface ContentReader {
  clientId: string;
  log: Pick<BaseLogger, 'error' | 'warn'>;
}

/**
 * The bytes of a content `userId` holds, as one stream of its chunks in
 * order, with its size (the content's own, as measured when it was stored);
 * null when the user does not hold it (whether or not anyone else does).
 *
 * The stream is checked against the content's hash as it is read, and its
 * last chunk is held back until the check passes (see VerifyingStream).
 * Bytes that fail it, more bytes than the size, or an object the database
 * lists but the store lacks fail with StoredContentDamagedError (thrown here
 * when the object is already missing at open), and each such finding is
 * logged at error level, once, naming `reader.clientId`, the client's paths
 * with this content, and the hash.
 */
export async function openContentForUser(
  ctx: AppContext,
  userId: string,
  sha256: string,
  reader: ContentReader,
): Promise<{ size: number; stream: Readable } | null> {
  // A contents row for a content of several chunks, else the one chunk of that hash (decision 91).
  const [row] = rowsOf<{ size: number | string; chunk_count: number | string }>(
    await ctx.database.db.execute(sql`
      select coalesce(ct.size, ch.size) as size, coalesce(ct.chunk_count, 1) as chunk_count
      from ${ownerContents} oc
      left join ${contents} ct on ct.sha256 = oc.content_sha256
      left join ${chunks} ch on ch.sha256 = oc.content_sha256
      where oc.user_id = ${userId} and oc.content_sha256 = ${hashValue(sha256)} and (ct.sha256 is not null or ch.sha256 is not null)
      limit 1`),
  );
  if (!row) return null;
  const content = { size: Number(row.size), chunkCount: Number(row.chunk_count) };
  // A one-chunk content is its chunk (decision 91); a v1 object's key is its hash.
  const parts =
    content.chunkCount === 1
      ? [{ key: sha256 }]
      : await ctx.database.db
          .select({ key: contentChunks.chunkSha256 })
          .from(contentChunks)
          .where(eq(contentChunks.contentSha256, sha256))
          .orderBy(asc(contentChunks.seq));
  const damaged = (detail: string): StoredContentDamagedError => {
    const error = new StoredContentDamagedError(sha256, detail);
    void logDamage(ctx, reader, error);
    return error;
  };
  const first = parts.length === 1 ? await ctx.blobs.get(parts[0]!.key) : undefined;
  if (first === null) throw damaged(`stored object ${parts[0]!.key} is missing`);
  const blobs = ctx.blobs;
  async function* concatenated(): AsyncGenerator<Buffer> {
    for (const part of parts) {
      const stream = await blobs.get(part.key);
      if (!stream) throw damaged(`stored object ${part.key} is missing`);
      yield* stream as AsyncIterable<Buffer>;
    }
  }
  const verifier = new VerifyingStream(sha256, {
    maxBytes: content.size,
    failure: (problem) =>
      damaged(
        problem.kind === 'too-large'
          ? `the stored bytes are longer than the ${content.size} recorded`
          : `the stored bytes (${problem.bytes} of ${content.size}) hash to ${problem.actual}`,
      ),
  });
  // Errors reach the consumer through `verifier`; a consumer that stops reading destroys it, which closes the source.
  pipeline(first ?? Readable.from(concatenated()), verifier, noop);
  return { size: content.size, stream: verifier };
}

/** Files of the client that hold a content, for the damage report; a few are enough to name. */
const DAMAGE_REPORT_PATHS = 20;

async function logDamage(ctx: AppContext, reader: ContentReader, error: StoredContentDamagedError): Promise<void> {
  let paths: string[] = [];
  try {
    const rows = await ctx.database.db
      .selectDistinct({ path: clientPaths.path })
      .from(fileVersions)
      .innerJoin(clientPaths, eq(clientPaths.id, fileVersions.pathId))
      .where(and(eq(clientPaths.clientId, reader.clientId), eq(fileVersions.contentSha256, error.sha256)))
      .orderBy(asc(clientPaths.path))
      .limit(DAMAGE_REPORT_PATHS);
    paths = rows.map((row) => row.path);
  } catch (lookupError) {
    reader.log.warn({ err: lookupError }, 'could not look up the files that hold a damaged content');
  }
  reader.log.error(
    { clientId: reader.clientId, paths, sha256: error.sha256, detail: error.detail },
    `stored content is damaged or missing, not served: ${error.sha256} (${error.detail})`,
  );
}
