import type { Readable } from 'node:stream';
import { isSha256 } from '@cairn/shared';
import { BadRequestError } from '../errors.ts';

export interface BlobInfo {
  key: string;
  size: number;
}

export interface PutOptions {
  /** Refuse (PayloadTooLargeError) and keep nothing once more than this many bytes arrive. */
  maxBytes?: number;
  /** Called with each piece of the bytes, in order, as they pass to the store (the upload's compression sample, decision 120); must not change them. */
  observe?: (chunk: Buffer) => void;
  /**
   * `expectedSha256` was computed by the caller from these very bytes, held
   * in its memory (the pack writer's packs): the store checks their size but
   * does not hash them again (decision 196). Never for bytes from a network
   * or another store, which must be verified on their way in.
   */
  callerHashed?: boolean;
}

/** Bytes `start` (inclusive) to `end` (exclusive) of an object, as in `Buffer.subarray`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Pack objects (many chunks in one object, see storage/pack-format.ts) live under this key prefix. */
export const PACK_KEY_PREFIX = 'packs/';
const PACK_KEY = /^packs\/([a-f0-9]{64})$/;

/** The store key of a pack, named by the SHA-256 of its bytes. */
export function packKeyOf(packSha256: string): string {
  if (!isSha256(packSha256)) throw new BadRequestError('pack id must be a lower-case hex SHA-256');
  return `${PACK_KEY_PREFIX}${packSha256}`;
}

/** The SHA-256 a key names: the key itself for a whole-content object, the pack's hash for a pack; null for anything else. */
export function sha256OfKey(key: string): string | null {
  if (isSha256(key)) return key;
  return PACK_KEY.exec(key)?.[1] ?? null;
}

/** Refuses (BadRequestError) a key that is neither `<sha256>` nor `packs/<sha256>`; returns its SHA-256. */
export function assertBlobKey(key: string): string {
  const sha256 = sha256OfKey(key);
  if (sha256 === null) throw new BadRequestError('blob key must be a lower-case hex SHA-256, or packs/ and one');
  return sha256;
}

/** Throws RangeError for a range that is not two safe integers with 0 <= start <= end. */
export function assertByteRange(range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`invalid byte range [${start}, ${end})`);
  }
}

/**
 * Where chunk bytes live. A key is either a lower-case hex SHA-256 (a v1
 * whole-content object) or `packs/<sha256>` (a pack, named by the SHA-256 of
 * its own bytes); the store chooses the physical layout, and refuses any
 * other key with BadRequestError.
 *
 * Contract (every implementation passes `blob-store.contract.ts`):
 * - `put` streams `source` to the object while hashing it. If the bytes do not
 *   hash to `expectedSha256` it throws `HashMismatchError` and nothing is left
 *   behind. It is atomic: a reader never sees a partial object, and a crash
 *   leaves at most a temp leftover that `sweepTemp` removes. Putting an
 *   existing key again is allowed and leaves one intact object. Out of space
 *   throws `StorageFullError`; too many bytes throws `PayloadTooLargeError`.
 *   If `source` errors, the error is rethrown and nothing is stored.
 * - `get` returns a stream of the whole object, or null when the key is
 *   absent. It never throws for an absent key. With a `range` it streams
 *   bytes [start, min(end, size)) only: a range reaching past the end is cut
 *   at the end, one starting at or past the end (or empty) yields no bytes,
 *   and an absent key is still null. A range that is not 0 <= start <= end
 *   in safe integers throws RangeError.
 * - `stat` returns the size, or null when absent.
 * - `delete` removes the object; deleting an absent key is not an error.
 * - `list` yields every stored object (not temp leftovers), in no set order,
 *   whole-content objects and packs alike, each under the key it was put as.
 * - `sweepTemp` removes leftovers of interrupted puts older than `olderThanMs`
 *   and returns how many it removed.
 * - `check` resolves when the store is reachable and writable enough to serve
 *   (used by /readyz), and throws otherwise.
 */
export interface BlobStore {
  readonly kind: 'disk' | 's3';
  /** Human-readable location for logs (no secrets). */
  readonly location: string;
  put(key: string, source: Readable, expectedSha256: string, options?: PutOptions): Promise<BlobInfo>;
  get(key: string, range?: ByteRange): Promise<Readable | null>;
  stat(key: string): Promise<BlobInfo | null>;
  delete(key: string): Promise<void>;
  list(): AsyncIterable<BlobInfo>;
  sweepTemp(olderThanMs?: number): Promise<number>;
  check(): Promise<void>;
  close(): Promise<void>;
}
