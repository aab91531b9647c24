import { sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { rowsOf } from '../db/database.ts';
import { ChunkDecodeError, DELTA_MIN_BYTES, type BaseChunkResolver } from './chunk-codec.ts';
import { ChunkReadDamageError, readChunksInOrder } from './content-reader.ts';
import { chunkLocations, LOCATION_COLUMNS, markChunksDamaged, storedChunkOf, type ChunkLocationRow, type StoredChunk } from './pack-index.ts';
import { readFallbackFor } from './replica-repair.ts';

/**
 * How every read of the server finds a delta chunk's base (decision 171):
 * by hash in the database's index, read and checked like any chunk (with
 * the replica as fall-back), and only if it is stored whole: a base that
 * is itself a delta is refused, so no read follows a chain. A base found
 * damaged is marked damaged here, so the next backup that holds its bytes
 * re-uploads it; the delta that needed it surfaces as damaged through the
 * ChunkDecodeError, and its caller marks it. `known`: locations already
 * looked up (baseLocationsOf, one query for a whole read: decision 187);
 * a base not in it is looked up on its own.
 */
export function baseResolverFor(ctx: AppContext, known?: ReadonlyMap<string, StoredChunk>): BaseChunkResolver {
  return async (sha256) => {
    const location = known?.get(sha256) ?? (await chunkLocations(ctx.database.db, [sha256])).get(sha256);
    if (!location) throw new ChunkDecodeError(`its base chunk ${sha256} is not in the index`);
    return readBaseChunk(ctx, location);
  };
}

/** The raw bytes of the base chunk at `location`, read and checked; see baseResolverFor. */
async function readBaseChunk(ctx: AppContext, location: StoredChunk): Promise<Buffer> {
  const sha256 = location.sha256;
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
}

/** A hinted content's chunks by offset, each with the base a chunk at its place would be stored against (or none). */
interface CandidatesOf {
  offsets: number[];
  bases: (StoredChunk | null)[];
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
 * request; the first lookup in a hinted content reads, in one query, its
 * chunk list with every chunk's base and that base's location, for every
 * later lookup in it to use (decision 187): a request's lookups cost one
 * query per hinted content, not two per chunk.
 */
export class DeltaBaseFinder {
  readonly #ctx: AppContext;
  readonly #userId: string;
  /** Per hinted content: its candidates, or null when the uploader does not hold it. */
  readonly #candidates = new Map<string, Promise<CandidatesOf | null>>();

  constructor(ctx: AppContext, userId: string) {
    this.#ctx = ctx;
    this.#userId = userId;
  }

  async find(similar: string, offset: number, size: number): Promise<{ sha256: string; raw: Buffer } | undefined> {
    if (size < DELTA_MIN_BYTES) return undefined;
    let pending = this.#candidates.get(similar);
    if (!pending) {
      pending = candidatesOf(this.#ctx, this.#userId, similar);
      this.#candidates.set(similar, pending);
    }
    const list = await pending;
    if (!list || list.offsets.length === 0) return undefined;
    const middle = offset + Math.floor(size / 2);
    let low = 0;
    let high = list.offsets.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((list.offsets[mid] as number) <= middle) low = mid;
      else high = mid - 1;
    }
    const base = list.bases[low];
    if (!base) return undefined;
    try {
      return { sha256: base.sha256, raw: await readBaseChunk(this.#ctx, base) };
    } catch (error) {
      if (error instanceof ChunkDecodeError) return undefined;
      throw error;
    }
  }
}

/**
 * In one query: `content`'s chunks in order, if `userId` holds it (else
 * none), each with the chunk a delta at its place would name as base (the
 * chunk itself, or its base when it is a delta) and that base's location.
 * A chunk gives no base when its row is gone, it or its base is damaged.
 */
async function candidatesOf(ctx: AppContext, userId: string, content: string): Promise<CandidatesOf | null> {
  const rows = rowsOf<Partial<ChunkLocationRow> & { offset: number | string; chunk_damaged: boolean | null }>(
    await ctx.database.db.execute(sql`
      with list as (
        select cc.seq, cc."offset", cc.chunk_sha256 as sha256 from content_chunks cc
        where cc.content_sha256 = decode(${content}, 'hex')
        union all
        -- A content of one chunk has no content_chunks rows: it is that chunk (decision 91).
        select 0, 0, decode(${content}, 'hex')
        where not exists (select 1 from content_chunks where content_sha256 = decode(${content}, 'hex'))
      )
      select l."offset", c.damaged_at is not null as chunk_damaged, ${LOCATION_COLUMNS}
      from list l
      left join chunks c on c.sha256 = l.sha256
      left join chunks ch on ch.sha256 = coalesce(c.base_sha256, c.sha256)
      left join packs p on p.id = ch.pack_id
      where exists (select 1 from owner_contents where content_sha256 = decode(${content}, 'hex') and user_id = ${userId}::uuid)
      order by l.seq`),
  );
  if (rows.length === 0) return null;
  return {
    offsets: rows.map((row) => Number(row.offset)),
    bases: rows.map((row) => (row.sha256 == null || row.chunk_damaged || row.damaged ? null : storedChunkOf(row as ChunkLocationRow))),
  };
}
