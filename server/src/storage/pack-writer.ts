import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { packKeyOf, type BlobStore } from '../blob/blob-store.ts';
import { HashMismatchError } from '../errors.ts';
import { defaultZstdBackend, encodeChunkAgainst, type ZstdBackend } from './chunk-codec.ts';
import {
  encodePackHeader,
  encodePackTrailer,
  PACK_ENTRY_BYTES,
  PACK_FOOTER_BYTES,
  PACK_HEADER_BYTES,
  PACK_MAX_BYTES,
  type ChunkLocation,
  type PackEntry,
} from './pack-format.ts';

/**
 * A pack is flushed before it would grow past this: 4 MiB is under the S3
 * store's single-PutObject limit (S3_SINGLE_PUT_MAX_BYTES), so a pack is
 * one PUT, and is what the writer holds in memory at most (decision 116;
 * 4 MiB instead of 8 since decision 200: each upload request has its own).
 */
export const PACK_TARGET_BYTES = 4 * 1024 * 1024;

export interface PackWriterOptions {
  /** Flush before the pack would exceed this many bytes (header, data, index and footer). Default PACK_TARGET_BYTES. */
  targetBytes?: number;
  /** Default: node:zlib where the runtime has zstd, else the WebAssembly build. */
  zstd?: ZstdBackend;
  level?: number;
}

/**
 * Collects chunks into packs. `add` re-hashes and compresses a chunk and
 * appends it to the open pack; the open pack is written with one `put` when
 * the next chunk would take it past `targetBytes` (before that chunk is
 * appended), or on `flush`. A chunk larger than the target gets a pack of
 * its own. Memory: the open pack's stored bytes (at most `targetBytes`, or
 * one oversized chunk) and its index.
 *
 * The locations a call returns are those of the one pack it wrote, and only
 * once that pack is stored: record them in the index after, never before.
 * Until then a chunk is only in memory (`has` tells). When a put fails, the
 * open pack's chunks stay in it, the chunk being added is not added, and the
 * error is rethrown; `flush` (or add) again to retry. A chunk is deduplicated
 * within the open pack only: the caller asks the database index first.
 * Calls are run one at a time in call order, so concurrent callers are safe.
 */
export class PackWriter {
  readonly #store: BlobStore;
  readonly #targetBytes: number;
  readonly #level: number | undefined;
  readonly #zstd: Promise<ZstdBackend>;
  #queue: Promise<unknown> = Promise.resolve();
  #entries: PackEntry[] = [];
  #parts: Buffer[] = [];
  #pending = new Set<string>();
  #dataBytes = 0;

  constructor(store: BlobStore, options: PackWriterOptions = {}) {
    this.#store = store;
    this.#targetBytes = Math.min(options.targetBytes ?? PACK_TARGET_BYTES, PACK_MAX_BYTES);
    this.#level = options.level;
    this.#zstd = options.zstd ? Promise.resolve(options.zstd) : defaultZstdBackend();
  }

  /** Whether a chunk is in the open (not yet stored) pack. */
  has(sha256: string): boolean {
    return this.#pending.has(sha256);
  }

  /** Bytes the open pack would take if flushed now (0 when it holds no chunk). */
  get openPackBytes(): number {
    return this.#entries.length === 0 ? 0 : this.#packBytesWith(0, 0);
  }

  /**
   * Adds one chunk. Unless `hashed`, throws HashMismatchError when `raw` does not hash to
   * `sha256`; a chunk already in the open pack is not added twice. With a
   * `base` (a chunk stored whole, its raw bytes already checked against its
   * hash), the chunk is stored as a delta against it when that pays
   * (encodeChunkAgainst). Resolves to the locations of the pack this call
   * wrote (empty when it wrote none).
   */
  add(sha256: string, raw: Buffer, options: { hashed?: boolean; base?: { sha256: string; raw: Buffer } } = {}): Promise<ChunkLocation[]> {
    return this.#serially(async () => {
      // `hashed`: the caller named the chunk by hashing these very bytes; a second SHA-256 would only cost time.
      if (!options.hashed) {
        const actual = createHash('sha256').update(raw).digest('hex');
        if (actual !== sha256) throw new HashMismatchError(sha256, actual);
      }
      if (this.#pending.has(sha256)) return [];
      const base = options.base && options.base.sha256 !== sha256 ? options.base : undefined;
      const { codec, stored, baseSha256 } = await encodeChunkAgainst(raw, base, await this.#zstd, this.#level);
      const packBytes = this.#packBytesWith(stored.length, 1);
      if (raw.length > PACK_MAX_BYTES || PACK_HEADER_BYTES + stored.length + PACK_ENTRY_BYTES + PACK_FOOTER_BYTES > PACK_MAX_BYTES) {
        throw new RangeError(`a chunk of ${raw.length} bytes does not fit in a pack`);
      }
      // At most one pack per call, so a failed put never hides the locations of one that was stored.
      const written = this.#entries.length > 0 && packBytes > this.#targetBytes ? await this.#writePack() : [];
      const entry: PackEntry = { sha256, codec, rawSize: raw.length, offset: PACK_HEADER_BYTES + this.#dataBytes, length: stored.length };
      if (baseSha256 !== undefined) entry.baseSha256 = baseSha256;
      this.#entries.push(entry);
      this.#parts.push(stored);
      this.#pending.add(sha256);
      this.#dataBytes += stored.length;
      return written;
    });
  }

  /** Writes the open pack now, if it holds any chunk; resolves to its locations. */
  flush(): Promise<ChunkLocation[]> {
    return this.#serially(() => (this.#entries.length > 0 ? this.#writePack() : Promise.resolve([])));
  }

  #packBytesWith(moreData: number, moreEntries: number): number {
    return (
      PACK_HEADER_BYTES +
      this.#dataBytes +
      moreData +
      (this.#entries.length + moreEntries) * PACK_ENTRY_BYTES +
      PACK_FOOTER_BYTES
    );
  }

  async #writePack(): Promise<ChunkLocation[]> {
    const header = encodePackHeader(randomBytes(6));
    const trailer = encodePackTrailer(this.#entries, PACK_HEADER_BYTES + this.#dataBytes, header);
    const pieces = [header, ...this.#parts.filter((part) => part.length > 0), trailer];
    const hash = createHash('sha256');
    for (const piece of pieces) hash.update(piece);
    const packSha256 = hash.digest('hex');
    const packKey = packKeyOf(packSha256);
    // The pieces were just hashed here, in memory: the store need not hash them again (decision 196).
    await this.#store.put(packKey, Readable.from(pieces, { objectMode: false }), packSha256, { callerHashed: true });
    const locations = this.#entries.map((entry) => ({ ...entry, packKey }));
    this.#entries = [];
    this.#parts = [];
    this.#pending = new Set();
    this.#dataBytes = 0;
    return locations;
  }

  #serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
