/**
 * Content-defined chunking, FastCDC style (Xia et al., "FastCDC", USENIX ATC
 * 2016, and its 2020 TPDS version): a gear rolling hash,
 * `hash = (hash << 1) + GEAR[byte]` in 32 bits, cut where the hash's top bits
 * are all zero. Normalized chunking (level 2): between `minSize` and
 * `avgSize` the mask has two bits more than log2(avgSize) (a cut is 4x less
 * likely), from `avgSize` to `maxSize` two bits fewer (4x more likely), so
 * chunk sizes gather around the average; `maxSize` is a forced cut. The
 * first `minSize` bytes of a chunk are not hashed at all (the hash restarts
 * at 0 after every cut), which is what makes it fast.
 *
 * Pure and deterministic: the same bytes and parameters give the same cut
 * points on every platform and for any way of feeding the bytes. Only 32-bit
 * integer arithmetic (`<< | &` on Int32 values) is used, and the gear table
 * is derived from a fixed seed (gear-table.ts). The top bits are the ones
 * tested because with a left-shifting hash bit k depends on the last k+1
 * bytes only: the top bits see the widest window (up to 32 bytes).
 */
import { GEAR } from './gear-table.ts';

export interface ChunkerParams {
  /** No cut before this many bytes (except the last chunk of the input). */
  minSize: number;
  /** The size chunks gather around; a power of two. */
  avgSize: number;
  /** A cut is forced at this many bytes. */
  maxSize: number;
}

export class ChunkerParamsError extends Error {
  override name = 'ChunkerParamsError';
}

/** The smallest minSize allowed: below the hash's 32-byte window cut points would depend on too few bytes. */
export const MIN_CHUNK_SIZE_FLOOR = 64;
/** The largest maxSize allowed (1 GiB): lengths stay far inside 32-bit ints. */
export const MAX_CHUNK_SIZE_CEILING = 2 ** 30;

/** Top `bits` bits set, as an Int32 (the hash is an Int32 too). */
function topBitsMask(bits: number): number {
  return bits <= 0 ? 0 : (~0 << (32 - bits)) | 0;
}

/** Throws ChunkerParamsError naming the parameter when the set is unusable. */
export function validateChunkerParams(params: ChunkerParams): void {
  const { minSize, avgSize, maxSize } = params;
  for (const [name, value] of Object.entries({ minSize, avgSize, maxSize })) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new ChunkerParamsError(`${name} must be a positive integer, got ${value}`);
  }
  if (minSize < MIN_CHUNK_SIZE_FLOOR) throw new ChunkerParamsError(`minSize must be at least ${MIN_CHUNK_SIZE_FLOOR}, got ${minSize}`);
  if (maxSize > MAX_CHUNK_SIZE_CEILING) throw new ChunkerParamsError(`maxSize must be at most ${MAX_CHUNK_SIZE_CEILING}, got ${maxSize}`);
  if ((avgSize & (avgSize - 1)) !== 0 || avgSize < 256 || avgSize > 2 ** 28) {
    throw new ChunkerParamsError(`avgSize must be a power of two from 256 to 2^28, got ${avgSize}`);
  }
  if (!(minSize <= avgSize && avgSize <= maxSize)) {
    throw new ChunkerParamsError(`need minSize <= avgSize <= maxSize, got ${minSize}, ${avgSize}, ${maxSize}`);
  }
}

/**
 * A streaming chunker: feed the bytes of one stream in pieces of any size
 * with `update`, then call `final` once. Each call returns the lengths of
 * the chunks that ended inside it, in order; together they cover the stream
 * exactly. The cuts do not depend on how the stream was split into pieces.
 * After `final` the chunker is ready for a new stream.
 */
export class ContentChunker {
  readonly params: Readonly<ChunkerParams>;
  readonly #min: number;
  readonly #normal: number;
  readonly #max: number;
  readonly #maskSmall: number;
  readonly #maskLarge: number;
  /** Bytes of the chunk in progress seen so far. */
  #length = 0;
  #hash = 0;

  constructor(params: ChunkerParams) {
    validateChunkerParams(params);
    this.params = Object.freeze({ ...params });
    const bits = Math.log2(params.avgSize);
    this.#min = params.minSize;
    this.#normal = params.avgSize;
    this.#max = params.maxSize;
    this.#maskSmall = topBitsMask(bits + 2);
    this.#maskLarge = topBitsMask(bits - 2);
  }

  update(data: Uint8Array): number[] {
    const cuts: number[] = [];
    const n = data.length;
    const min = this.#min;
    const normal = this.#normal;
    const max = this.#max;
    let length = this.#length;
    let i = 0;
    for (;;) {
      if (length < min) {
        const skip = Math.min(min - length, n - i);
        length += skip;
        i += skip;
        if (length < min) break;
      }
      let cut = false;
      // Normalized chunking: the stricter mask up to the average size, the looser one after it.
      if (length < normal) {
        const end = this.#roll(data, i, i + Math.min(normal - length, n - i), this.#maskSmall);
        cut = this.#cut;
        length += end - i;
        i = end;
        if (!cut && length < normal) break;
      }
      if (!cut) {
        const end = this.#roll(data, i, i + Math.min(max - length, n - i), this.#maskLarge);
        cut = this.#cut;
        length += end - i;
        i = end;
        if (!cut && length < max) break;
      }
      cuts.push(length);
      length = 0;
      this.#hash = 0;
    }
    this.#length = length;
    return cuts;
  }

  /** Whether the last #roll stopped at a cut (rather than at its end). */
  #cut = false;

  /**
   * Rolls the gear hash over data[from, stop) and stops just after the first
   * byte where `hash & mask` is 0 (setting #cut); returns where it stopped.
   */
  #roll(data: Uint8Array, from: number, stop: number, mask: number): number {
    const gear = GEAR;
    let hash = this.#hash;
    let j = from;
    this.#cut = false;
    while (j < stop) {
      hash = ((hash << 1) + gear[data[j]!]!) | 0;
      j += 1;
      if ((hash & mask) === 0) {
        this.#cut = true;
        break;
      }
    }
    this.#hash = hash;
    return j;
  }

  /** Ends the stream: the length of the last chunk, if any bytes are left. */
  final(): number[] {
    const rest = this.#length;
    this.#length = 0;
    this.#hash = 0;
    return rest > 0 ? [rest] : [];
  }
}

/** The chunk lengths of a whole buffer, one shot (the same as one `update` and `final`). */
export function chunkLengths(data: Uint8Array, params: ChunkerParams): number[] {
  const chunker = new ContentChunker(params);
  return [...chunker.update(data), ...chunker.final()];
}

/** The end offsets of the chunks of a whole buffer (the last is data.length; none for empty data). */
export function cutPoints(data: Uint8Array, params: ChunkerParams): number[] {
  let offset = 0;
  return chunkLengths(data, params).map((length) => (offset += length));
}

/**
 * The chunks of a stream of byte pieces, as buffers, in order. A chunk that
 * lies inside one piece is a view of that piece (no copy); one that spans
 * pieces is a new buffer. Memory: at most one chunk (maxSize) plus one piece.
 */
export async function* splitIntoChunks(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, params: ChunkerParams): AsyncGenerator<Buffer> {
  const chunker = new ContentChunker(params);
  let carry: Buffer[] = [];
  let carried = 0;
  for await (const piece of source) {
    const data = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    let position = 0;
    for (const length of chunker.update(data)) {
      const take = length - carried;
      const tail = data.subarray(position, position + take);
      position += take;
      yield carry.length === 0 ? tail : Buffer.concat([...carry, tail], length);
      carry = [];
      carried = 0;
    }
    if (position < data.length) {
      carry.push(data.subarray(position));
      carried += data.length - position;
    }
  }
  if (chunker.final().length > 0) yield carry.length === 1 ? (carry[0] as Buffer) : Buffer.concat(carry, carried);
}
