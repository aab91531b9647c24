/** The part of a FileHandle the writer uses. */
export interface PositionalSink {
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  truncate(length: number): Promise<void>;
}

/** Holes are made in whole blocks of this size, aligned to the file's start (the common filesystem block). */
export const SPARSE_BLOCK = 4096;

const ZERO_BLOCK = Buffer.alloc(SPARSE_BLOCK);

/**
 * Writes a file's bytes as they stream in, skipping every aligned block of
 * SPARSE_BLOCK zero bytes instead of writing it, so the filesystem leaves a
 * hole there; `finish` sets the final length (a file ending in zeros ends
 * in a hole too). The bytes read back are exactly the bytes given; only the
 * allocation differs. Consecutive non-zero blocks go out in one write.
 */
export class SparseWriter {
  /** File offset of `#pending[0]`; always a multiple of SPARSE_BLOCK. */
  #offset = 0;
  /** Less than one block, waiting for the rest of it. */
  #pending: Buffer = Buffer.alloc(0);

  private readonly sink: PositionalSink;
  constructor(sink: PositionalSink) {
    this.sink = sink;
  }

  async write(chunk: Buffer): Promise<void> {
    const data = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const whole = data.length - (data.length % SPARSE_BLOCK);
    let runStart = -1;
    for (let at = 0; at < whole; at += SPARSE_BLOCK) {
      const zero = data.compare(ZERO_BLOCK, 0, SPARSE_BLOCK, at, at + SPARSE_BLOCK) === 0;
      if (!zero && runStart < 0) runStart = at;
      else if (zero && runStart >= 0) {
        await this.#writeAll(data, runStart, at);
        runStart = -1;
      }
    }
    if (runStart >= 0) await this.#writeAll(data, runStart, whole);
    // A copy: the caller may reuse `chunk`'s memory.
    this.#pending = Buffer.from(data.subarray(whole));
    this.#offset += whole;
  }

  /** Writes what is left and sets the file's length to every byte given. */
  async finish(): Promise<void> {
    const tail = this.#pending;
    if (tail.length > 0 && tail.some((byte) => byte !== 0)) await this.#writeAll(tail, 0, tail.length);
    await this.sink.truncate(this.#offset + tail.length);
  }

  async #writeAll(data: Buffer, start: number, end: number): Promise<void> {
    let at = start;
    while (at < end) at += (await this.sink.write(data, at, end - at, this.#offset + at)).bytesWritten;
  }
}
