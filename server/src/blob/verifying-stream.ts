import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { HashMismatchError, PayloadTooLargeError } from '../errors.ts';

/** Chunk size for blob reads and writes: 64 KiB pieces halve SHA-256 throughput. */
export const BLOB_IO_CHUNK_BYTES = 1024 * 1024;

/**
 * Passes bytes through while hashing and counting them. It fails the stream
 * with PayloadTooLargeError as soon as more than `maxBytes` arrive, and with
 * HashMismatchError at the end when the bytes do not hash to `expectedSha256`.
 * Failing at the end (before signalling end-of-stream downstream) is what
 * makes a store's commit step conditional on the hash: a consumer that only
 * commits after a clean end never commits wrong bytes.
 */
export class VerifyingStream extends Transform {
  readonly #hash: Hash = createHash('sha256');
  readonly #expected: string;
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(expectedSha256: string, maxBytes = Number.POSITIVE_INFINITY) {
    super({ readableHighWaterMark: BLOB_IO_CHUNK_BYTES, writableHighWaterMark: BLOB_IO_CHUNK_BYTES });
    this.#expected = expectedSha256;
    this.#maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.#maxBytes) {
      callback(new PayloadTooLargeError(`blob is larger than the limit of ${this.#maxBytes} bytes`));
      return;
    }
    this.#hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.#hash.digest('hex');
    callback(actual === this.#expected ? null : new HashMismatchError(this.#expected, actual));
  }
}
