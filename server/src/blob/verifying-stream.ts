import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { HashMismatchError, PayloadTooLargeError } from '../errors.ts';

/** Chunk size for blob reads and writes: 64 KiB pieces halve SHA-256 throughput. */
export const BLOB_IO_CHUNK_BYTES = 1024 * 1024;

export interface VerifyingOptions {
  /** More bytes than this fail the stream as soon as they arrive. */
  maxBytes?: number;
  /**
   * The error to fail with. By default an upload's faults: PayloadTooLargeError
   * for too many bytes, HashMismatchError (a 400) for a wrong hash. Readers of
   * stored bytes pass their own, since there the fault is the store's.
   */
  failure?: (problem: { kind: 'too-large'; maxBytes: number } | { kind: 'mismatch'; actual: string; bytes: number }) => Error;
  /** Sees each chunk as it passes, after the size check; must not change it. */
  observe?: (chunk: Buffer) => void;
  /**
   * The caller computed `expectedSha256` from these very bytes, which it
   * holds in memory (a pack the pack writer built): only the size is
   * checked, the bytes are not hashed a second time (decision 196).
   */
  callerHashed?: boolean;
}

/**
 * Passes bytes through while hashing and counting them. It fails the stream
 * as soon as more than `maxBytes` arrive, and at the end when the bytes do
 * not hash to `expectedSha256`.
 *
 * The newest chunk is held back until the next one arrives or the hash is
 * checked, so downstream never receives the last chunk of wrong bytes:
 * - a store commits only after a clean end, so it never commits wrong bytes;
 * - a response that carries the stream can never complete with wrong bytes
 *   (its last chunk, and so its end, never comes); and bytes that fit in one
 *   chunk are checked before the first byte, i.e. before any header, is sent.
 */
export class VerifyingStream extends Transform {
  readonly #hash: Hash = createHash('sha256');
  readonly #expected: string;
  readonly #maxBytes: number;
  readonly #failure: NonNullable<VerifyingOptions['failure']>;
  readonly #observe: VerifyingOptions['observe'];
  readonly #callerHashed: boolean;
  #held: Buffer | undefined;
  #bytes = 0;

  constructor(expectedSha256: string, options: VerifyingOptions = {}) {
    super({ readableHighWaterMark: BLOB_IO_CHUNK_BYTES, writableHighWaterMark: BLOB_IO_CHUNK_BYTES });
    this.#expected = expectedSha256;
    this.#maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    this.#failure = options.failure ?? uploadFailure(expectedSha256);
    this.#observe = options.observe;
    this.#callerHashed = options.callerHashed ?? false;
  }

  get bytes(): number {
    return this.#bytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.#maxBytes) {
      callback(this.#failure({ kind: 'too-large', maxBytes: this.#maxBytes }));
      return;
    }
    if (!this.#callerHashed) this.#hash.update(chunk);
    this.#observe?.(chunk);
    const previous = this.#held;
    this.#held = chunk;
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#callerHashed) {
      callback(null, this.#held);
      return;
    }
    const actual = this.#hash.digest('hex');
    if (actual !== this.#expected) {
      this.#held = undefined;
      callback(this.#failure({ kind: 'mismatch', actual, bytes: this.#bytes }));
      return;
    }
    callback(null, this.#held);
  }
}

function uploadFailure(expected: string): NonNullable<VerifyingOptions['failure']> {
  return (problem) =>
    problem.kind === 'too-large'
      ? new PayloadTooLargeError(`blob is larger than the limit of ${problem.maxBytes} bytes`)
      : new HashMismatchError(expected, problem.actual);
}
