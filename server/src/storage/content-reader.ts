import { createHash } from 'node:crypto';
import type { BlobStore } from '../blob/blob-store.ts';
import { ChunkDecodeError, decodeChunk, defaultZstdBackend, type BaseChunkResolver, type ZstdBackend } from './chunk-codec.ts';
import type { StoredChunk } from './pack-index.ts';

/** Neighbouring chunks of one pack are read together up to this many bytes per ranged get. */
export const COALESCED_READ_BYTES = 4 * 1024 * 1024;
/** Dead bytes between two wanted chunks of a pack that are read through rather than split into two gets. */
export const COALESCE_GAP_BYTES = 64 * 1024;

/** A chunk's stored bytes are missing or wrong: which chunks, in which object, and why. */
export class ChunkReadDamageError extends Error {
  readonly chunkHashes: readonly string[];
  readonly key: string;
  readonly detail: string;
  constructor(
    chunkHashes: readonly string[],
    key: string,
    detail: string,
  ) {
    super(`chunk ${chunkHashes[0]} in ${key}: ${detail}`);
    this.chunkHashes = chunkHashes;
    this.key = key;
    this.detail = detail;
  }
}

/**
 * A second store to read from when the primary's copy of a pack or v1 object
 * is missing or damaged (decision 163): the replica. Its bytes are checked
 * exactly as the primary's would have been; `served` is called once per
 * object after the replica's bytes served what the primary's could not, so
 * the caller can repair the primary.
 */
export interface ReadFallback {
  store: BlobStore;
  served(key: string, primaryDamage: ChunkReadDamageError): Promise<void>;
}

export interface ReadChunksOptions {
  verifyObjects: boolean;
  /**
   * False: a pack chunk is decoded and its size checked but not hashed, for
   * a caller that hashes the whole content and reads again with checks when
   * that fails (assemble's read-back, decision 191). Default true.
   */
  checkChunkHashes?: boolean;
  zstd?: ZstdBackend;
  fallback?: ReadFallback | undefined;
  /** Where delta chunks get their base (storage/delta-base.ts); without it a delta chunk reads as damaged. */
  base?: BaseChunkResolver | undefined;
}

/**
 * The raw bytes of `chunks` in order. Chunks of a pack that lie close
 * together are fetched with one ranged get (at most COALESCED_READ_BYTES,
 * skipping gaps of at most COALESCE_GAP_BYTES), so a file whose chunks were
 * uploaded together costs a read per few MiB, not one per chunk; each chunk
 * is decoded and its SHA-256 and size checked before it is yielded. A v1
 * object is streamed as it is stored: when `verifyObjects` is false (a
 * one-chunk content, whose hash the caller checks as the bytes pass) its
 * pieces are yielded unchecked; otherwise it is read whole and checked.
 *
 * With a `fallback`, a pack run (or a v1 object) that is missing or fails
 * its check is read again from the fallback store and checked the same way;
 * only when that fails too does the primary's damage surface. (An unchecked
 * v1 object falls back only when it is missing: its damage shows only after
 * its bytes went out.)
 *
 * Missing or wrong bytes throw ChunkReadDamageError naming the chunks; a
 * store that fails (unreachable, refusing) throws its own error, which is
 * not damage.
 */
export async function* readChunksInOrder(store: BlobStore, chunks: readonly StoredChunk[], options: ReadChunksOptions): AsyncGenerator<Buffer> {
  let zstd = options.zstd;
  const fallback = options.fallback;
  const hashed = options.checkChunkHashes ?? true;
  for (let i = 0; i < chunks.length; ) {
    const first = chunks[i]!;
    if (first.kind === 'object') {
      i += 1;
      yield* readObjectWithFallback(store, first, options.verifyObjects, fallback);
      continue;
    }
    let end = first.offset + first.length;
    let j = i + 1;
    for (; j < chunks.length; j += 1) {
      const next = chunks[j]!;
      if (next.kind !== 'pack' || next.packKey !== first.packKey || next.offset < end || next.offset - end > COALESCE_GAP_BYTES) break;
      if (next.offset + next.length - first.offset > COALESCED_READ_BYTES) break;
      end = next.offset + next.length;
    }
    const run = chunks.slice(i, j) as Extract<StoredChunk, { kind: 'pack' }>[];
    i = j;
    zstd ??= await defaultZstdBackend();
    let bytes = await readRange(store, first.packKey, first.offset, end);
    let fromFallback = false;
    for (let n = 0; n < run.length; n++) {
      let raw: Buffer;
      try {
        raw = await checkedChunk(bytes, first.offset, run, n, zstd, options.base, hashed);
      } catch (error) {
        if (!(error instanceof ChunkReadDamageError) || !fallback || fromFallback) throw error;
        const replicaBytes = await readRange(fallback.store, first.packKey, first.offset, end);
        if (replicaBytes === null) throw error;
        try {
          raw = await checkedChunk(replicaBytes, first.offset, run, n, zstd, options.base, hashed);
        } catch (replicaError) {
          if (replicaError instanceof ChunkReadDamageError) throw new ChunkReadDamageError(error.chunkHashes, error.key, `${error.detail}; the replica's copy is damaged too`);
          throw replicaError;
        }
        bytes = replicaBytes;
        fromFallback = true;
        await fallback.served(first.packKey, error);
      }
      yield raw;
    }
  }
}

/** Chunk `n` of a run read as `bytes` (starting at pack offset `base`; null: the pack is missing), decoded and checked. */
async function checkedChunk(
  bytes: Buffer | null,
  base: number,
  run: readonly Extract<StoredChunk, { kind: 'pack' }>[],
  n: number,
  zstd: ZstdBackend,
  baseChunk: BaseChunkResolver | undefined,
  hashed: boolean,
): Promise<Buffer> {
  const chunk = run[n]!;
  if (bytes === null) throw new ChunkReadDamageError(run.slice(n).map((c) => c.sha256), chunk.packKey, 'the pack is missing');
  const at = chunk.offset - base;
  if (at + chunk.length > bytes.length) {
    throw new ChunkReadDamageError([chunk.sha256], chunk.packKey, `the pack ends ${at + chunk.length - bytes.length} bytes short of this chunk`);
  }
  let raw: Buffer;
  try {
    raw = await decodeChunk(chunk.codec, bytes.subarray(at, at + chunk.length), chunk.rawSize, zstd, baseChunk);
  } catch (error) {
    if (error instanceof ChunkDecodeError) throw new ChunkReadDamageError([chunk.sha256], chunk.packKey, error.message);
    throw error;
  }
  if (!hashed) return raw;
  const actual = createHash('sha256').update(raw).digest('hex');
  if (actual !== chunk.sha256) {
    throw new ChunkReadDamageError([chunk.sha256], chunk.packKey, `the stored bytes decode to a chunk that hashes to ${actual}`);
  }
  return raw;
}

async function* readObjectWithFallback(
  store: BlobStore,
  chunk: Extract<StoredChunk, { kind: 'object' }>,
  verify: boolean,
  fallback: ReadFallback | undefined,
): AsyncGenerator<Buffer> {
  if (!fallback) {
    yield* readObject(store, chunk, verify);
    return;
  }
  // Nothing is yielded before the object is known present (unchecked) or whole and good (checked), so a retry repeats no byte.
  const pieces: Buffer[] = [];
  try {
    for await (const piece of readObject(store, chunk, verify)) {
      if (verify) pieces.push(piece);
      else yield piece;
    }
  } catch (error) {
    if (!(error instanceof ChunkReadDamageError) || (!verify && error.detail !== MISSING_OBJECT)) throw error;
    let served = false;
    try {
      for await (const piece of readObject(fallback.store, chunk, verify)) {
        served = true;
        yield piece;
      }
    } catch (replicaError) {
      if (replicaError instanceof ChunkReadDamageError && !served) throw new ChunkReadDamageError(error.chunkHashes, error.key, `${error.detail}; the replica's copy is damaged or missing too`);
      throw replicaError;
    }
    await fallback.served(chunk.key, error);
    return;
  }
  yield* pieces;
}

const MISSING_OBJECT = 'the stored object is missing';

async function* readObject(store: BlobStore, chunk: Extract<StoredChunk, { kind: 'object' }>, verify: boolean): AsyncGenerator<Buffer> {
  const stream = await store.get(chunk.key);
  if (stream === null) throw new ChunkReadDamageError([chunk.sha256], chunk.key, MISSING_OBJECT);
  if (!verify) {
    yield* stream as AsyncIterable<Buffer>;
    return;
  }
  const pieces: Buffer[] = [];
  for await (const piece of stream as AsyncIterable<Buffer>) pieces.push(piece);
  const raw = Buffer.concat(pieces);
  const actual = createHash('sha256').update(raw).digest('hex');
  if (actual !== chunk.sha256 || raw.length !== chunk.rawSize) {
    throw new ChunkReadDamageError([chunk.sha256], chunk.key, `the stored bytes (${raw.length} of ${chunk.rawSize}) hash to ${actual}`);
  }
  yield raw;
}

async function readRange(store: BlobStore, key: string, start: number, end: number): Promise<Buffer | null> {
  const stream = await store.get(key, { start, end });
  if (stream === null) return null;
  const pieces: Buffer[] = [];
  for await (const piece of stream as AsyncIterable<Buffer>) pieces.push(piece);
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
}
