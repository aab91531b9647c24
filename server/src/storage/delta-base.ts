import { sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { rowsOf } from '../db/database.ts';
import { ChunkDecodeError, DELTA_MIN_BYTES, type BaseChunkResolver } from './chunk-codec.ts';
import { ChunkReadDamageError, readChunksInOrder } from './content-reader.ts';
import { chunkLocations, markChunksDamaged } from './pack-index.ts';
import { readFallbackFor } from './replica-repair.ts';

/**
 * How every read of the server finds a delta chunk's base (decision 171):
 * by hash in the database's index, read and checked like any chunk (with
 * the replica as fall-back), and only if it is stored whole: a base that
 * is itself a delta is refused, so no read follows a chain. A base found
 * damaged is marked damaged here, so the next backup that holds its bytes
 * re-uploads it; the delta that needed it surfaces as damaged through the
 * ChunkDecodeError, and its caller marks it.
 */
export function baseResolverFor(ctx: AppContext): BaseChunkResolver {
  return async (sha256) => {
    const location = (await chunkLocations(ctx.database.db, [sha256])).get(sha256);
    if (!location) throw new ChunkDecodeError(`its base chunk ${sha256} is not in the index`);
    if (location.kind === 'pack' && location.codec === 'delta') throw new ChunkDecodeError(`its base chunk ${sha256} is itself a delta`);
    const pieces: Buffer[] = [];
    try {
      for await (const piece of readChunksInOrder(ctx.blobs, [location], { verifyObjects: true, fallback: readFallbackFor(ctx) })) pieces.push(piece);
    } catch (error) {
      if (!(error instanceof ChunkReadDamageError)) throw error;
      await markChunksDamaged(ctx.database.db, [sha256]);
      throw new ChunkDecodeError(`its base chunk ${sha256} is damaged: ${error.detail}`);
    }
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
  };
}

interface ChunkListOf {
  offsets: number[];
  hashes: string[];
}

/**
 * Chooses, for the bytes of one upload part, the base chunk to store them
 * as a delta against (decision 171): in the content the part's hint names
 * (the previous version of its file), which the uploading user must hold
 * (owner_contents; a hint naming anything else is ignored, so the choice
 * depends on this user's data alone and answers nothing about anyone
 * else's), the chunk covering the middle of the new chunk's place in the
 * file; if that chunk is itself a delta, its base. A damaged or unreadable
 * candidate gives no base: the chunk is stored whole. One per upload
 * request.
 */
export class DeltaBaseFinder {
  readonly #ctx: AppContext;
  readonly #userId: string;
  /** Whether the uploader holds each content a hint named. */
  readonly #held = new Map<string, boolean>();
  readonly #read: BaseChunkResolver;

  constructor(ctx: AppContext, userId: string) {
    this.#ctx = ctx;
    this.#userId = userId;
    this.#read = baseResolverFor(ctx);
  }

  async find(similar: string, offset: number, size: number): Promise<{ sha256: string; raw: Buffer } | undefined> {
    if (size < DELTA_MIN_BYTES) return undefined;
    const list = await this.#listOf(similar);
    if (!list || list.offsets.length === 0) return undefined;
    const middle = offset + Math.floor(size / 2);
    let low = 0;
    let high = list.offsets.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((list.offsets[mid] as number) <= middle) low = mid;
      else high = mid - 1;
    }
    const candidate = list.hashes[low] as string;
    const [row] = rowsOf<{ base: string | null; damaged: boolean }>(
      await this.#ctx.database.db.execute(sql`
        select encode(base_sha256, 'hex') as base, damaged_at is not null as damaged from chunks
        where sha256 = decode(${candidate}, 'hex')`),
    );
    if (!row || row.damaged) return undefined;
    const root = row.base ?? candidate;
    try {
      return { sha256: root, raw: await this.#read(root) };
    } catch (error) {
      if (error instanceof ChunkDecodeError) return undefined;
      throw error;
    }
  }

  async #listOf(content: string): Promise<ChunkListOf | null> {
    if (this.#held.has(content)) return this.#held.get(content) ? chunkListOf(this.#ctx, content) : null;
    const [row] = rowsOf<{ held: boolean }>(
      await this.#ctx.database.db.execute(sql`
        select exists (select 1 from owner_contents where content_sha256 = decode(${content}, 'hex') and user_id = ${this.#userId}::uuid) as held`),
    );
    const held = row?.held === true;
    this.#held.set(content, held);
    return held ? chunkListOf(this.#ctx, content) : null;
  }
}

/**
 * Chunk lists of recently hinted contents, shared by every upload: a
 * content's list never changes (its hash names its bytes), and a large
 * file's parts arrive in many requests, each of which would otherwise read
 * the same list again. Bounded by entries, not contents.
 */
const LIST_CACHE_ENTRIES = 1 << 20;
const listCache = new Map<string, ChunkListOf>();
let listCacheEntries = 0;

async function chunkListOf(ctx: AppContext, content: string): Promise<ChunkListOf> {
  const cached = listCache.get(content);
  if (cached) {
    listCache.delete(content);
    listCache.set(content, cached);
    return cached;
  }
  const rows = rowsOf<{ offset: number | string; sha256: string }>(
    await ctx.database.db.execute(sql`
      select "offset", encode(chunk_sha256, 'hex') as sha256 from content_chunks
      where content_sha256 = decode(${content}, 'hex') order by seq`),
  );
  // A content of one chunk has no content_chunks rows: it is that chunk (decision 91).
  const list = rows.length > 0 ? { offsets: rows.map((r) => Number(r.offset)), hashes: rows.map((r) => r.sha256) } : { offsets: [0], hashes: [content] };
  listCache.set(content, list);
  listCacheEntries += list.offsets.length;
  while (listCacheEntries > LIST_CACHE_ENTRIES && listCache.size > 1) {
    const [oldest, evicted] = listCache.entries().next().value as [string, ChunkListOf];
    listCache.delete(oldest);
    listCacheEntries -= evicted.offsets.length;
  }
  return list;
}
