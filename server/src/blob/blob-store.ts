import type { Readable } from 'node:stream';

export interface BlobInfo {
  key: string;
  size: number;
}

export interface PutOptions {
  /** Refuse (PayloadTooLargeError) and keep nothing once more than this many bytes arrive. */
  maxBytes?: number;
  /** Called with each piece of the bytes, in order, as they pass to the store (the upload's compression sample, decision 145); must not change them. */
  observe?: (chunk: Buffer) => void;
}

/**
 * Where chunk bytes live. Keys are lower-case hex SHA-256 strings; the store
 * chooses the physical layout.
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
 *   absent. It never throws for an absent key.
 * - `stat` returns the size, or null when absent.
 * - `delete` removes the object; deleting an absent key is not an error.
 * - `list` yields every stored object (not temp leftovers), in no set order.
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
  get(key: string): Promise<Readable | null>;
  stat(key: string): Promise<BlobInfo | null>;
  delete(key: string): Promise<void>;
  list(): AsyncIterable<BlobInfo>;
  sweepTemp(olderThanMs?: number): Promise<number>;
  check(): Promise<void>;
  close(): Promise<void>;
}
