import { sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { rowsOf } from '../db/database.ts';
import { ChunkDecodeError, DELTA_MIN_BYTES, type BaseChunkResolver } from './chunk-codec.ts';
import { ChunkReadDamageError, readChunksInOrder } from './content-reader.ts';
import { baseLocationsOf, chunkLocations, LOCATION_COLUMNS, markChunksDamaged, storedChunkOf, type ChunkLocationRow, type StoredChunk } from './pack-index.ts';
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
    return readBaseChunk(ctx, location);
  };
}

/**
 * A resolver for a read that knows, in order, the bases its deltas will ask
 * for (`order`: the base of each delta of a content, from baseLocationsOf;
 * null where a delta's base has no row): read ahead in runs, so that bases
 * lying together in a pack cost one ranged read, not a lookup and a read
 * each (decision 187). A base asked for out of that order is looked up and
 * read on its own, as baseResolverFor does.
 */
export function orderedBaseResolver(ctx: AppContext, order: readonly (StoredChunk | null)[]): BaseChunkResolver {
  const reader = new BaseReader(ctx, order, READ_AHEAD_BASES);
  const alone = baseResolverFor(ctx);
  let cursor = 0;
  return async (sha256) => {
    for (let at = cursor; at < Math.min(order.length, cursor + READ_AHEAD_BASES); at += 1) {
      if (order[at]?.sha256 !== sha256) continue;
      cursor = at + 1;
      return reader.read(at);
    }
    return alone(sha256);
  };
}

/**
 * The resolver for reading `ordered` (a content's chunks in order): with
 * deltas among them, their bases looked up in one query and read ahead in
 * order (orderedBaseResolver); else baseResolverFor.
 */
export async function contentBaseResolver(ctx: AppContext, ordered: readonly StoredChunk[]): Promise<BaseChunkResolver> {
  const deltas = ordered.filter((c) => c.kind === 'pack' && c.codec === 'delta');
  if (deltas.length === 0) return baseResolverFor(ctx);
  const bases = await baseLocationsOf(ctx.database.db, [...new Set(deltas.map((c) => c.sha256))]);
  return orderedBaseResolver(ctx, deltas.map((c) => bases.get(c.sha256) ?? null));
}

/** How many bases one read fetches at most: their raw bytes (at most 256 KiB each) are held until asked for. */
const READ_AHEAD_BASES = 16;

/**
 * Reads the bases of a list by position, each checked as readBaseChunk
 * checks it. When positions are asked in (nearly) ascending order, each
 * read also fetches the next ones (a window that doubles up to `maxWindow`,
 * back to one when the order breaks), all in one readChunksInOrder, which
 * coalesces neighbours in a pack into one ranged get; what it fetched is
 * held until asked for or passed over. A run that meets damage is dropped
 * and its first base read alone, which marks the damage.
 */
class BaseReader {
  readonly #ctx: AppContext;
  readonly #order: readonly (StoredChunk | null)[];
  readonly #maxWindow: number;
  /** Bases read ahead (or being read: lookups of one upload run at once), by position. */
  readonly #held = new Map<number, Promise<Buffer>>();
  #last = -2;
  #window = 1;

  constructor(ctx: AppContext, order: readonly (StoredChunk | null)[], maxWindow: number) {
    this.#ctx = ctx;
    this.#order = order;
    this.#maxWindow = maxWindow;
  }

  async read(at: number): Promise<Buffer> {
    const location = this.#order[at];
    if (!location) throw new ChunkDecodeError('its base chunk has no row in the index');
    const sequential = at > this.#last && at <= this.#last + 2;
    this.#window = sequential ? Math.min(this.#window * 2, this.#maxWindow) : 1;
    this.#last = at;
    for (const position of this.#held.keys()) if (position < at) this.#held.delete(position);
    const held = this.#held.get(at);
    if (held) {
      this.#held.delete(at);
      return held;
    }
    const run: number[] = [at];
    if (readableInRun(location)) {
      for (let p = at + 1; p < this.#order.length && p < at + this.#window; p += 1) {
        const next = this.#order[p];
        if (next && readableInRun(next) && !this.#held.has(p)) run.push(p);
      }
    }
    if (run.length === 1) return readBaseChunk(this.#ctx, location);
    const raws = this.#readRun(run.map((p) => this.#order[p]!));
    for (let i = 1; i < run.length; i += 1) {
      const later = raws.then((all) => all?.[i] ?? readBaseChunk(this.#ctx, this.#order[run[i]!]!));
      // Held bases that are passed over are never awaited: their failure must not go unhandled.
      later.catch(() => undefined);
      this.#held.set(run[i]!, later);
    }
    return (await raws)?.[0] ?? readBaseChunk(this.#ctx, location);
  }

  /** The bases' raw bytes, checked; null when one is damaged (each is then read alone, which marks it). */
  async #readRun(locations: StoredChunk[]): Promise<Buffer[] | null> {
    const raws: Buffer[] = [];
    try {
      for await (const raw of readChunksInOrder(this.#ctx.blobs, locations, { verifyObjects: true, fallback: readFallbackFor(this.#ctx) })) raws.push(raw);
    } catch (error) {
      if (error instanceof ChunkReadDamageError) return null;
      throw error;
    }
    return raws;
  }
}

/** A base that a run may read: one stored whole in a pack (yielded as one piece; a v1 object and a delta are read alone). */
function readableInRun(location: StoredChunk): boolean {
  return location.kind === 'pack' && location.codec !== 'delta' && !location.damaged;
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
  window: BaseWindow;
  /** New offset minus old offset where a probe last matched: how far the new file has shifted against the old here. */
  shift: number;
  /** Whether a probe has matched yet in this request, and how many lookups in a row found none since. */
  matched: boolean;
  misses: number;
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
 * query per hinted content, not two per chunk; and as the new chunks come
 * in file order, their bases are read ahead in runs (BaseReader).
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

  /**
   * The base for `raw`, the chunk at `offset` of a file whose previous
   * version is `similar`. Edits that insert or remove bytes shift the new
   * file against the old one (by tens of KiB in a 2 GiB dump: decision 197),
   * so the old chunk at the same offset is often the wrong one. The old
   * chunks around the predicted place (offset corrected by the shift seen so
   * far in this content) are searched for a 32-byte probe of `raw` (its
   * start, middle, then end: an edit may hit one; a probe that occurs twice
   * in an old chunk places nothing and is passed over); where one is found, the
   * shift is known exactly and the old chunk covering the middle of the new
   * chunk's true place is the base. Without a match, the chunk at the
   * predicted place.
   */
  async find(similar: string, offset: number, raw: Buffer): Promise<{ sha256: string; raw: Buffer } | undefined> {
    const size = raw.length;
    if (size < DELTA_MIN_BYTES) return undefined;
    let pending = this.#candidates.get(similar);
    if (!pending) {
      pending = candidatesOf(this.#ctx, this.#userId, similar);
      this.#candidates.set(similar, pending);
    }
    const list = await pending;
    if (!list || list.offsets.length === 0) return undefined;
    const half = Math.floor(size / 2);
    const hintKey = `${this.#userId}:${similar}`;
    const shift = list.matched ? list.shift : (hintedShift(hintKey, offset) ?? list.shift);
    const predicted = covering(list.offsets, offset - shift + half);
    // The search reaches further before the first match of a request (it may start deep in a shifted file) and
    // for a few lookups after a miss (the shift may have jumped: a block of rows removed); then every 32nd miss
    // (a stretch of new bytes costs near reads, not wide ones, for each of its chunks).
    const misses = list.misses;
    const wide = (misses < WIDE_SEARCH_CHUNKS && (misses > 0 || !list.matched)) || (misses > 0 && misses % 32 === 0);
    const reach = wide ? WIDE_REACH : NEAR_REACH;
    const around = [predicted];
    for (let d = 1; d <= reach; d += 1) around.push(predicted + d, predicted - d);
    let chosen = predicted;
    let matched = false;
    search: for (const probe of [0, half - PROBE_BYTES / 2, size - PROBE_BYTES]) {
      const needle = raw.subarray(probe, probe + PROBE_BYTES);
      for (const at of around) {
        const old = at >= 0 && at < list.offsets.length ? await list.window.read(at) : null;
        if (!old) continue;
        const found = old.indexOf(needle);
        if (found < 0) continue;
        // A probe that occurs twice (a run of spaces, a repeated line) places nothing: try the next one.
        if (old.lastIndexOf(needle) !== found) continue search;
        const oldStart = (list.offsets[at] as number) + found - probe;
        list.shift = offset - oldStart;
        list.matched = true;
        matched = true;
        noteShift(hintKey, offset, list.shift);
        chosen = covering(list.offsets, oldStart + half);
        break search;
      }
    }
    list.misses = matched ? 0 : list.misses + 1;
    const base = list.bases[chosen];
    const bytes = base ? await list.window.read(chosen) : null;
    return base && bytes ? { sha256: base.sha256, raw: bytes } : undefined;
  }
}

/** Bytes of the new chunk searched for in the old chunks around its predicted place. */
const PROBE_BYTES = 32;
/** Old chunks searched on each side of the predicted one, once the shift is known and before. */
const NEAR_REACH = 2;
const WIDE_REACH = 8;
/** Lookups in a row searched with the wide reach after a miss (or before a request's first match). */
const WIDE_SEARCH_CHUNKS = 8;

/**
 * The shifts seen lately, per uploader and previous content, by 4 MiB region
 * of the new file: the agent's next request for the same file starts from
 * the shift its previous one ended with (decision 197). At most
 * SHIFT_HINT_CONTENTS contents, the least recently noted dropped first.
 */
const shiftHints = new Map<string, Map<number, number>>();
const SHIFT_REGION_BYTES = 4 * 1024 * 1024;
const SHIFT_HINT_CONTENTS = 256;

function noteShift(key: string, offset: number, shift: number): void {
  const regions = shiftHints.get(key) ?? new Map<number, number>();
  shiftHints.delete(key);
  shiftHints.set(key, regions);
  regions.set(Math.floor(offset / SHIFT_REGION_BYTES), shift);
  if (shiftHints.size > SHIFT_HINT_CONTENTS) shiftHints.delete(shiftHints.keys().next().value as string);
}

/** The shift noted in `offset`'s region, else in the nearest region before it (up to 64 regions back). */
function hintedShift(key: string, offset: number): number | undefined {
  const regions = shiftHints.get(key);
  if (!regions) return undefined;
  const region = Math.floor(offset / SHIFT_REGION_BYTES);
  for (let r = region; r >= 0 && r > region - 64; r -= 1) {
    const shift = regions.get(r);
    if (shift !== undefined) return shift;
  }
  return undefined;
}

/** The index of the last of `offsets` (ascending, the first 0) at or before `position`. */
function covering(offsets: readonly number[], position: number): number {
  let low = 0;
  let high = offsets.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if ((offsets[mid] as number) <= position) low = mid;
    else high = mid - 1;
  }
  return low;
}

/**
 * The raw bytes of a content's candidate bases by position, read through its
 * BaseReader and held for the neighbouring lookups that search them too (at
 * most WINDOW_BASES, the lowest positions dropped first); null for a base
 * that is missing or cannot be read.
 */
class BaseWindow {
  readonly #reader: BaseReader;
  readonly #held = new Map<number, Promise<Buffer | null>>();

  constructor(reader: BaseReader) {
    this.#reader = reader;
  }

  read(at: number): Promise<Buffer | null> {
    let bytes = this.#held.get(at);
    if (!bytes) {
      bytes = this.#reader.read(at).catch((error: unknown) => {
        if (error instanceof ChunkDecodeError) return null;
        throw error;
      });
      this.#held.set(at, bytes);
      if (this.#held.size > WINDOW_BASES) this.#held.delete(Math.min(...this.#held.keys()));
    }
    return bytes;
  }
}

const WINDOW_BASES = 32;

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
  const bases = rows.map((row) => (row.sha256 == null || row.chunk_damaged || row.damaged ? null : storedChunkOf(row as ChunkLocationRow)));
  return { offsets: rows.map((row) => Number(row.offset)), bases, window: new BaseWindow(new BaseReader(ctx, bases, READ_AHEAD_BASES)), shift: 0, matched: false, misses: 0 };
}
