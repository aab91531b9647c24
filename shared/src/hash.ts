import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export const SHA256_HEX = /^[a-f0-9]{64}$/;

export function isSha256(value: string): boolean {
  return SHA256_HEX.test(value);
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * A pass-through stream that hashes and counts what flows through it.
 * `digest()` is valid once the stream has ended.
 */
export class HashingStream extends Transform {
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;
  #digest: string | null = null;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#digest = this.#hash.digest('hex');
    callback();
  }

  get bytes(): number {
    return this.#bytes;
  }

  digest(): string {
    if (this.#digest === null) throw new Error('HashingStream.digest() called before the stream ended');
    return this.#digest;
  }
}
