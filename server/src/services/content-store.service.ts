import { createHash } from 'node:crypto';
import { pipeline, Readable } from 'node:stream';
import { and, asc, eq, sql, type SQL } from 'drizzle-orm';
import type { BaseLogger } from 'pino';
import {
  CHUNKING_THRESHOLD_BYTES,
  ContentChunker,
  DEFAULT_CHUNKER_PARAMS,
  type AssembleRecord,
  type AssembleResult,
  type UploadResult,
  type SimilarHint,
} from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { lockManagerFor } from '../db/advisory-locks.ts';
import { VerifyingStream } from '../blob/verifying-stream.ts';
import { rowsOf, type Tx } from '../db/database.ts';
import { backupRuns, chunks, clientPaths, contentChunks, contents, fileVersions, ownerContents } from '../db/schema.ts';
import { hashSet, hashValue } from '../db/sha256-sql.ts';
import { BadRequestError, ConflictError, HashMismatchError, PayloadTooLargeError, StoredContentDamagedError } from '../errors.ts';
import { ChunkReadDamageError, readChunksInOrder } from '../storage/content-reader.ts';
import { readFallbackFor } from '../storage/replica-repair.ts';
import { chunkLocations, markChunksDamaged, packBytesOf, recordPack, type StoredChunk } from '../storage/pack-index.ts';
import type { ChunkLocation } from '../storage/pack-format.ts';
import { PackWriter } from '../storage/pack-writer.ts';
import { contentBaseResolver, DeltaBaseFinder } from '../storage/delta-base.ts';
import { byteBudgetFor, type ByteBudget } from '../storage/byte-budget.ts';

/**
 * Content bytes and who holds them. A content is proven held by a user once
 * that user uploaded its bytes; dedup answers never look beyond that user.
 * In v1 a content is exactly one chunk with the same hash, stored under that
 * hash, with no `content_chunks` row (decision 91); that table keeps the
 * seam for content-defined chunking.
 */

/**
 * The content named by `hash` (a column of bytea hashes) is stored and not
 * known damaged: a contents row, else a chunk (decisions 91, 128).
 */
function isWhole(hash: string): SQL {
  const column = sql.raw(hash);
  return sql`(exists (select 1 from ${chunks} ch where ch.sha256 = ${column} and ch.damaged_at is null)
    or exists (select 1 from ${contents} ct where ct.sha256 = ${column} and ct.damaged_at is null))`;
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
        where oc.user_id = ${userId} and oc.content_sha256 in ${hashSet(hashes)} and ${isWhole('oc.content_sha256')}
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
  /** What the agent says these bytes resemble: the previous version of their file, and their offset in it (decision 171). */
  similar?: SimilarHint;
}

export interface UploadOptions {
  userId: string;
  /** When given, bytes new to this user are added to this run's bytes_new; the caller checked it is the uploader's run. */
  runId?: string | null;
  /** Larger parts are refused with PayloadTooLargeError, and none of their bytes is referenced. */
  maxBytes: number;
}

export type UploadInput = IncomingContent & UploadOptions;

/**
 * Bytes read from upload requests but not yet through their pack writers, at
 * most, for all of a server's upload requests together (decision 190): a
 * request's bytes stream in while its previous pack is compressed and put,
 * and stop streaming in while the server holds this much.
 */
export const QUEUED_UPLOAD_BYTES = 8 * 1024 * 1024; // 16 MiB until decision 200

/** A part whose bytes were read, hashed and queued for the pack writer: granted to the user once its pack is recorded. */
interface ReceivedPart {
  sha256: string;
  size: number;
  /** Its chunks in order: just its own hash for a part of at most CHUNKING_THRESHOLD_BYTES (decision 110). */
  chunks: string[];
  chunkSizes: number[];
}

/**
 * One upload request's parts on their way into packs (decisions 126, 127).
 * The producer (`receive`) reads each part, hashes it, cuts it into chunks
 * when it is larger than the chunking threshold, and queues the chunks; the
 * consumer (one promise chain) adds them to the request's PackWriter and,
 * after each pack is put, records it and grants the user the parts whose
 * chunks are all in recorded packs, in part order, in one transaction.
 */
class UploadSession {
  readonly results: UploadResult[] = [];
  readonly #ctx: AppContext;
  readonly #options: UploadOptions;
  readonly #writer: PackWriter;
  readonly #bases: DeltaBaseFinder;
  #tail: Promise<void> = Promise.resolve();
  readonly #budget: ByteBudget;
  #failure: { error: unknown } | undefined;
  readonly #awaiting: ReceivedPart[] = [];
  /** Raw and stored sizes of the chunks this request recorded, for the run's compression figures. */
  readonly #encoded = new Map<string, { raw: number; stored: number }>();

  constructor(ctx: AppContext, options: UploadOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#writer = new PackWriter(ctx.blobs);
    this.#bases = new DeltaBaseFinder(ctx, options.userId);
    this.#budget = byteBudgetFor(ctx, QUEUED_UPLOAD_BYTES);
  }

  /** Reads one part whole and queues it; throws its own fault (mismatch, too large) or an earlier failure of the consumer. */
  async receive(part: IncomingContent): Promise<void> {
    this.#throwIfFailed();
    const { maxBytes } = this.#options;
    const whole = createHash('sha256');
    let size = 0;
    const chunks: string[] = [];
    const chunkSizes: number[] = [];
    // Up to the threshold the part is one chunk named by its own hash; past it the same chunker as the agent's cuts it.
    const head: Buffer[] = [];
    let headBytes = 0;
    let chunker: ContentChunker | null = null;
    let carry: Buffer[] = [];
    const similar = part.similar;
    let emitted = 0;
    const emit = async (chunk: Buffer) => {
      const sha256 = createHash('sha256').update(chunk).digest('hex');
      chunks.push(sha256);
      chunkSizes.push(chunk.length);
      await this.#queueChunk(sha256, chunk, similar && { sha256: similar.sha256, offset: similar.offset + emitted });
      emitted += chunk.length;
    };
    const cut = async (data: Buffer) => {
      let position = 0;
      for (const length of chunker!.update(data)) {
        const carried = carry.reduce((sum, piece) => sum + piece.length, 0);
        const tail = data.subarray(position, position + length - carried);
        position += length - carried;
        await emit(Buffer.concat([...carry, tail], length));
        carry = [];
      }
      if (position < data.length) carry.push(data.subarray(position));
    };
    for await (const piece of part.source as AsyncIterable<Buffer>) {
      size += piece.length;
      if (size > maxBytes) throw new PayloadTooLargeError(`upload part larger than ${maxBytes} bytes`);
      whole.update(piece);
      if (chunker) {
        await cut(piece);
        continue;
      }
      head.push(piece);
      headBytes += piece.length;
      if (headBytes > CHUNKING_THRESHOLD_BYTES) {
        chunker = new ContentChunker(DEFAULT_CHUNKER_PARAMS);
        const buffered = Buffer.concat(head, headBytes);
        head.length = 0;
        await cut(buffered);
      }
    }
    const actual = whole.digest('hex');
    if (actual !== part.sha256) throw new HashMismatchError(part.sha256, actual);
    if (chunker) {
      if (chunker.final().length > 0) await emit(Buffer.concat(carry));
    } else {
      // A copy: the parser's pieces may be views of larger buffers that a pack would otherwise keep alive.
      const bytes = Buffer.concat(head, headBytes);
      chunks.push(part.sha256);
      chunkSizes.push(bytes.length);
      await this.#queueChunk(part.sha256, bytes, similar);
    }
    const received: ReceivedPart = { sha256: part.sha256, size, chunks, chunkSizes };
    this.#enqueue(async () => {
      this.#awaiting.push(received);
    });
  }

  /** Writes the open pack, records it, grants the rest; then rethrows a failure of the consumer, if any. */
  async finish(): Promise<void> {
    this.#enqueue(async () => {
      const locations = await this.#writer.flush();
      await this.#commit(locations);
    });
    await this.#tail;
    this.#throwIfFailed();
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure.error;
  }

  /**
   * `raw` was hashed to `sha256` by the caller; the writer does not hash it
   * again. With `similar`, a base is looked for in that content (the same
   * work whoever else holds these bytes: decision 171).
   */
  async #queueChunk(sha256: string, raw: Buffer, similar: SimilarHint | undefined): Promise<void> {
    // Waits while the server's upload requests hold QUEUED_UPLOAD_BYTES; given back once the writer took the chunk.
    await this.#budget.take(raw.length);
    // Looked up now, while earlier chunks are compressed and put: the lookups' round trips overlap (bounded by
    // the budget like the chunks); a failed lookup fails the request where the chunk's turn comes.
    const lookup = similar ? settled(this.#bases.find(similar.sha256, similar.offset, raw)) : undefined;
    this.#enqueue(async () => {
      const found = lookup ? await lookup : undefined;
      if (found && 'error' in found) throw found.error;
      const base = found?.value;
      const locations = await this.#writer.add(sha256, raw, base ? { hashed: true, base } : { hashed: true });
      if (locations.length > 0) await this.#commit(locations);
    }, raw.length);
    this.#throwIfFailed();
  }

  #enqueue(task: () => Promise<void>, bytes = 0): void {
    this.#tail = this.#tail.then(async () => {
      try {
        if (!this.#failure) await task();
      } catch (error) {
        this.#failure ??= { error };
      } finally {
        if (bytes > 0) this.#budget.release(bytes);
      }
    });
  }

  /** Records the pack just put (if any) and grants every waiting part whose chunks are all recorded, in order. */
  async #commit(locations: readonly ChunkLocation[]): Promise<void> {
    for (const l of locations) this.#encoded.set(l.sha256, { raw: l.rawSize, stored: l.length });
    const ready: ReceivedPart[] = [];
    while (this.#awaiting.length > 0 && this.#awaiting[0]!.chunks.every((chunk) => !this.#writer.has(chunk))) {
      ready.push(this.#awaiting.shift()!);
    }
    if (locations.length === 0 && ready.length === 0) return;
    const packKey = locations[0]?.packKey;
    const ctx = this.#ctx;
    const results = await lockManagerFor(ctx.database).inReferencingTransaction(async (tx) => {
      if (packKey) {
        // GC deletes unnamed objects under the exclusive lock only after a grace period; a commit later than
        // that finds its pack gone and is refused, never recorded against a missing object (decision 131).
        if ((await ctx.blobs.stat(packKey)) === null) {
          throw new ConflictError('an uploaded pack was collected before it was committed; upload these contents again', {
            missing: ready.map((part) => part.sha256),
          });
        }
        await recordPack(tx, { packKey, bytes: packBytesOf(locations), locations });
      }
      return this.#grant(tx, ready);
    });
    this.results.push(...results);
  }

  /**
   * Records the user as holding each part (and each chunk of a part of
   * several), the contents rows of parts of several chunks, and the run's
   * new bytes: those of parts the user did not hold before, whoever else
   * did (decision 126).
   */
  async #grant(tx: Tx, parts: readonly ReceivedPart[]): Promise<UploadResult[]> {
    if (parts.length === 0) return [];
    const { userId, runId } = this.#options;
    const multi = unique(parts.filter((p) => p.chunks.length > 1));
    if (multi.length > 0) await insertContents(tx, multi);
    const held = new Set<string>();
    for (const part of parts) {
      held.add(part.sha256);
      if (part.chunks.length > 1) for (const chunk of part.chunks) held.add(chunk);
    }
    const granted = new Set(await grantOwnership(tx, userId, [...held]));
    const reported = new Set<string>();
    let bytesNew = 0;
    let sampleRaw = 0;
    let sampleCompressed = 0;
    const results = parts.map((part): UploadResult => {
      const stored = granted.has(part.sha256) && !reported.has(part.sha256);
      reported.add(part.sha256);
      if (stored) {
        bytesNew += part.size;
        for (const chunk of new Set(part.chunks)) {
          const encoded = this.#encoded.get(chunk);
          if (encoded) {
            sampleRaw += encoded.raw;
            sampleCompressed += encoded.stored;
          }
        }
      }
      return { sha256: part.sha256, size: part.size, status: stored ? 'stored' : 'existing' };
    });
    if (runId && bytesNew > 0) {
      await tx
        .update(backupRuns)
        .set({
          bytesNew: sql`${backupRuns.bytesNew} + ${bytesNew}`,
          sampleRawBytes: sql`${backupRuns.sampleRawBytes} + ${sampleRaw}`,
          sampleCompressedBytes: sql`${backupRuns.sampleCompressedBytes} + ${sampleCompressed}`,
        })
        .where(eq(backupRuns.id, runId));
    }
    return results;
  }
}

/** A promise that never rejects (so it may wait unobserved), holding its value or its error. */
function settled<T>(promise: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

/** Inserts `owner_contents` rows; returns the hashes the user did not hold before. */
async function grantOwnership(tx: Tx, userId: string, hashes: readonly string[]): Promise<string[]> {
  const granted: string[] = [];
  for (let i = 0; i < hashes.length; i += 50_000) {
    const rows = rowsOf<{ sha256: string }>(
      await tx.execute(sql`
        insert into ${ownerContents} (content_sha256, user_id)
        select h, ${userId}::uuid from ${hashSet(hashes.slice(i, i + 50_000))} as s(h)
        on conflict do nothing
        returning encode(content_sha256, 'hex') as sha256`),
    );
    for (const row of rows) granted.push(row.sha256);
  }
  return granted;
}

/**
 * The `contents` and `content_chunks` rows of contents of several chunks;
 * a content that has a row keeps it (its chunk list names the same bytes),
 * and loses its damage mark when none of its chunks is damaged any more.
 */
async function insertContents(tx: Tx, list: readonly { sha256: string; size: number; chunks: string[]; chunkSizes: number[] }[]): Promise<void> {
  const inserted = new Set(
    rowsOf<{ sha256: string; inserted: boolean }>(
      await tx.execute(sql`
        insert into ${contents} (sha256, size, chunk_count)
        select decode(x.sha256, 'hex'), x.size, x.chunk_count
        from jsonb_to_recordset(${JSON.stringify(list.map((c) => ({ sha256: c.sha256, size: c.size, chunk_count: c.chunks.length })))}::jsonb)
          as x(sha256 text, size bigint, chunk_count integer)
        on conflict (sha256) do update set touched_at = now()
        returning encode(sha256, 'hex') as sha256, (xmax = 0) as inserted`),
    )
      .filter((row) => row.inserted)
      .map((row) => row.sha256),
  );
  for (const content of list) {
    if (!inserted.has(content.sha256)) continue;
    let offset = 0;
    const rows = content.chunks.map((chunk, seq) => {
      const row = { c: chunk, s: seq, o: offset };
      offset += content.chunkSizes[seq]!;
      return row;
    });
    for (let i = 0; i < rows.length; i += 50_000) {
      await tx.execute(sql`
        insert into ${contentChunks} (content_sha256, seq, chunk_sha256, "offset")
        select decode(${content.sha256}, 'hex'), x.s, decode(x.c, 'hex'), x.o
        from jsonb_to_recordset(${JSON.stringify(rows.slice(i, i + 50_000))}::jsonb) as x(c text, s integer, o bigint)`);
    }
  }
  const existing = list.filter((c) => !inserted.has(c.sha256)).map((c) => c.sha256);
  if (existing.length > 0) {
    await tx.execute(sql`
      update ${contents} ct set damaged_at = null
      where ct.sha256 in ${hashSet(existing)} and ct.damaged_at is not null
        and not exists (
          select 1 from content_chunks cc join chunks ch on ch.sha256 = cc.chunk_sha256
          where cc.content_sha256 = ct.sha256 and ch.damaged_at is not null)`);
  }
}

function unique<T extends { sha256: string }>(list: readonly T[]): T[] {
  const seen = new Set<string>();
  return list.filter((c) => !seen.has(c.sha256) && (seen.add(c.sha256), true));
}

/**
 * Takes uploaded contents, in order (decisions 126, 127). Each part is hashed
 * while it streams; a mismatch throws HashMismatchError and the user is
 * granted nothing of that part. Every part's chunks are compressed into the
 * request's packs whoever else holds the bytes; a pack is put when it
 * reaches 8 MiB and at the end, and after each put its rows and the user's
 * hold on the parts in it are committed together. When a part fails, the
 * parts before it are committed (their pack is flushed first) and then the
 * failure is thrown.
 */
export async function storeUploadedContents(
  ctx: AppContext,
  options: UploadOptions,
  parts: AsyncIterable<IncomingContent> | Iterable<IncomingContent>,
): Promise<UploadResult[]> {
  const session = new UploadSession(ctx, options);
  let failure: { error: unknown } | undefined;
  try {
    for await (const part of parts) await session.receive(part);
  } catch (error) {
    failure = { error };
  }
  try {
    await session.finish();
  } catch (error) {
    if (!failure) throw error;
    ctx.log.warn({ err: error }, 'could not commit the parts received before a failed one; the agent will upload them again');
  }
  if (failure) throw failure.error;
  return session.results;
}

/** One content; see storeUploadedContents. */
export async function storeUploadedContent(ctx: AppContext, input: UploadInput): Promise<UploadResult[]> {
  return storeUploadedContents(ctx, input, [input]);
}

type Assembling = AssembleRecord & { chunkSizes: number[] };

/** Contents assembled per transaction, and chunks listed per transaction at most. */
const ASSEMBLE_BATCH_CONTENTS = 500;
const ASSEMBLE_BATCH_CHUNKS = 100_000;

/**
 * Commits contents of several chunks from their chunk lists (decision 125).
 * A content this user already holds (and that is not damaged) is
 * `existing` at once. Otherwise every chunk must be one the user holds and
 * is not damaged: a record naming others is left out and, after the rest
 * are committed, the request fails with ConflictError naming every such
 * chunk (`missing`), for the agent to upload and send again. The chunks of
 * each other record are read back from the store and must hash to the
 * content's hash and add up to its size; a record that does not is a
 * BadRequestError naming it (after the records before it are committed).
 */
export async function assembleContents(ctx: AppContext, userId: string, records: AsyncIterable<AssembleRecord>): Promise<AssembleResult[]> {
  const results: AssembleResult[] = [];
  const missing = new Set<string>();
  let batch: Assembling[] = [];
  let batchChunks = 0;
  const flush = async () => {
    const list = batch;
    batch = [];
    batchChunks = 0;
    if (list.length === 0) return;
    const { committed, gone } = await lockManagerFor(ctx.database).inReferencingTransaction(async (tx) => {
      // GC may have taken chunks since they were checked: such a content is left for the agent to upload again.
      const present = new Set(
        rowsOf<{ sha256: string }>(
          await tx.execute(sql`
            select encode(sha256, 'hex') as sha256 from ${chunks}
            where sha256 in ${hashSet([...new Set(list.flatMap((r) => r.chunks))])} and damaged_at is null`),
        ).map((row) => row.sha256),
      );
      const gone = list.flatMap((r) => r.chunks.filter((c) => !present.has(c)));
      const whole = list.filter((r) => r.chunks.every((c) => present.has(c)));
      if (whole.length === 0) return { committed: [], gone };
      await tx.execute(sql`update ${chunks} set touched_at = now() where sha256 in ${hashSet([...present])}`);
      await insertContents(tx, whole);
      const granted = new Set(await grantOwnership(tx, userId, whole.map((r) => r.sha256)));
      const reported = new Set<string>();
      const committed = whole.map((r): AssembleResult => {
        const stored = granted.has(r.sha256) && !reported.has(r.sha256);
        reported.add(r.sha256);
        return { sha256: r.sha256, size: r.size, status: stored ? 'stored' : 'existing' };
      });
      return { committed, gone };
    });
    results.push(...committed);
    for (const chunk of gone) missing.add(chunk);
  };
  try {
    for await (const record of records) {
      if (await userHoldsWholeContent(ctx, userId, record.sha256)) {
        results.push({ sha256: record.sha256, size: record.size, status: 'existing' });
        continue;
      }
      const unique = [...new Set(record.chunks)];
      const held = await heldChunks(ctx, userId, unique);
      const lacking = unique.filter((c) => !held.has(c));
      if (lacking.length > 0) {
        for (const chunk of lacking) missing.add(chunk);
        continue;
      }
      const locations = await chunkLocations(ctx.database.db, unique);
      const ordered = record.chunks.map((c) => locations.get(c)!);
      const checked = await checkAssembly(ctx, record, ordered);
      if (checked.damaged.length > 0) {
        for (const chunk of checked.damaged) missing.add(chunk);
        continue;
      }
      batch.push({ ...record, chunkSizes: ordered.map((l) => l.rawSize) });
      batchChunks += record.chunks.length;
      if (batch.length >= ASSEMBLE_BATCH_CONTENTS || batchChunks >= ASSEMBLE_BATCH_CHUNKS) await flush();
    }
  } catch (error) {
    try {
      await flush();
    } catch (flushError) {
      ctx.log.warn({ err: flushError }, 'could not commit the contents assembled before a failed one');
    }
    throw error;
  }
  await flush();
  if (missing.size > 0) {
    throw new ConflictError(`${missing.size} chunk(s) are not stored for this user; upload them and assemble again`, {
      missing: [...missing],
    });
  }
  return results;
}

/** Whether the user holds the content as a whole, undamaged content (a contents row, else its one chunk). */
async function userHoldsWholeContent(ctx: AppContext, userId: string, sha256: string): Promise<boolean> {
  const rows = rowsOf(
    await ctx.database.db.execute(sql`
      select 1 from ${ownerContents} oc
      where oc.user_id = ${userId} and oc.content_sha256 = ${hashValue(sha256)} and ${isWhole('oc.content_sha256')}
      limit 1`),
  );
  return rows.length > 0;
}

/** Of `hashes`, the chunks the user holds that are stored and not damaged. */
async function heldChunks(ctx: AppContext, userId: string, hashes: readonly string[]): Promise<Set<string>> {
  const held = new Set<string>();
  for (let i = 0; i < hashes.length; i += 10_000) {
    const rows = rowsOf<{ sha256: string }>(
      await ctx.database.db.execute(sql`
        select encode(oc.content_sha256, 'hex') as sha256 from ${ownerContents} oc
        join ${chunks} ch on ch.sha256 = oc.content_sha256 and ch.damaged_at is null
        where oc.user_id = ${userId} and oc.content_sha256 in ${hashSet(hashes.slice(i, i + 10_000))}`),
    );
    for (const row of rows) held.add(row.sha256);
  }
  return held;
}

/**
 * Reads a content's chunks back and checks them against its hash and size.
 * Chunks found damaged on the way are marked (and returned) instead.
 */
async function checkAssembly(ctx: AppContext, record: AssembleRecord, ordered: readonly StoredChunk[]): Promise<{ damaged: string[] }> {
  const total = ordered.reduce((sum, chunk) => sum + chunk.rawSize, 0);
  if (total !== record.size) {
    throw new BadRequestError(`content ${record.sha256}: its ${ordered.length} chunks add up to ${total} bytes, not the ${record.size} declared`);
  }
  // The whole content's hash proves every byte; the chunks are hashed one by one only when it fails, to name
  // the damaged ones (decision 191). The bases of its deltas are looked up together and read ahead in content
  // order, not a query and a read each (decision 187).
  const readBack = async (checked: boolean): Promise<string> => {
    const hash = createHash('sha256');
    const base = await contentBaseResolver(ctx, ordered);
    const options = { verifyObjects: checked, checkChunkHashes: checked, fallback: readFallbackFor(ctx), base };
    for await (const raw of readChunksInOrder(ctx.blobs, ordered, options)) hash.update(raw);
    return hash.digest('hex');
  };
  let actual: string;
  try {
    actual = await readBack(false);
    if (actual !== record.sha256) actual = await readBack(true);
  } catch (error) {
    if (!(error instanceof ChunkReadDamageError)) throw error;
    await markChunksDamaged(ctx.database.db, error.chunkHashes);
    ctx.log.error({ chunks: error.chunkHashes, key: error.key, detail: error.detail }, 'stored chunk is damaged or missing; it will be asked for again');
    return { damaged: [...error.chunkHashes] };
  }
  if (actual !== record.sha256) {
    throw new BadRequestError(`content ${record.sha256}: its chunks hash to ${actual}, not to the content's hash`);
  }
  return { damaged: [] };
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
  const chunkList =
    content.chunkCount === 1
      ? [sha256]
      : (
          await ctx.database.db
            .select({ chunk: contentChunks.chunkSha256 })
            .from(contentChunks)
            .where(eq(contentChunks.contentSha256, sha256))
            .orderBy(asc(contentChunks.seq))
        ).map((r) => r.chunk);
  const damaged = (detail: string): StoredContentDamagedError => {
    const error = new StoredContentDamagedError(sha256, detail);
    void logDamage(ctx, reader, error);
    return error;
  };
  const locations = await chunkLocations(ctx.database.db, [...new Set(chunkList)]);
  const ordered: StoredChunk[] = [];
  for (const chunk of chunkList) {
    const location = locations.get(chunk);
    if (!location) throw damaged(`chunk ${chunk} has no row in the index`);
    ordered.push(location);
  }
  const base = await contentBaseResolver(ctx, ordered);
  const chunkStream = readChunksInOrder(ctx.blobs, ordered, { verifyObjects: content.chunkCount > 1, fallback: readFallbackFor(ctx), base });
  const next = async (): Promise<IteratorResult<Buffer>> => {
    try {
      return await chunkStream.next();
    } catch (error) {
      if (!(error instanceof ChunkReadDamageError)) throw error;
      await markChunksDamaged(ctx.database.db, error.chunkHashes).catch((markError: unknown) =>
        reader.log.warn({ err: markError }, 'could not mark damaged chunks'),
      );
      throw damaged(`${error.detail} (chunk ${error.chunkHashes[0]} in ${error.key})`);
    }
  };
  // The first read happens now, so damage found there is an error before any header is sent.
  const first = await next();
  async function* all(): AsyncGenerator<Buffer> {
    if (first.done) return;
    yield first.value;
    for (let step = await next(); !step.done; step = await next()) yield step.value;
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
  pipeline(Readable.from(all(), { objectMode: false }), verifier, noop);
  return { size: content.size, stream: verifier };
}

function noop(): void {}

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
