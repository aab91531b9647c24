import { createHash, type Hash } from 'node:crypto';
import { ASSEMBLE_HEADER_BYTES, ASSEMBLE_MAX_CHUNKS, ContentChunker, DEFAULT_CHUNKER_PARAMS } from '@cairn/shared';

/**
 * The chunks of one content, in file order: each chunk's SHA-256 as its 32
 * bytes and its size, 36 bytes a chunk (about 0.45% of the content at the
 * 8 KiB average), never the chunk's bytes. A chunk's bytes are read again
 * from the file by range when it has to be uploaded.
 */
export class ChunkList {
  #hashes: Buffer = Buffer.allocUnsafe(32 * 64);
  #sizes: Uint32Array = new Uint32Array(64);
  #count = 0;

  get count(): number {
    return this.#count;
  }

  push(sha256: Buffer, size: number): void {
    if (this.#count === this.#sizes.length) {
      const hashes = Buffer.allocUnsafe(this.#hashes.length * 2);
      this.#hashes.copy(hashes);
      this.#hashes = hashes;
      const sizes = new Uint32Array(this.#sizes.length * 2);
      sizes.set(this.#sizes);
      this.#sizes = sizes;
    }
    sha256.copy(this.#hashes, 32 * this.#count);
    this.#sizes[this.#count] = size;
    this.#count += 1;
  }

  /** Lower-case hex SHA-256 of chunk `index`. */
  sha256(index: number): string {
    return this.#hashes.toString('hex', 32 * index, 32 * (index + 1));
  }

  size(index: number): number {
    return this.#sizes[index] as number;
  }

  /** The 32-byte hashes of chunks [from, to), one after another (a view, no copy). */
  hashBytes(from = 0, to = this.#count): Buffer {
    return this.#hashes.subarray(32 * from, 32 * to);
  }

  /** Every chunk with its offset in the content, in order. */
  *entries(): Generator<{ index: number; sha256: string; offset: number; size: number }> {
    let offset = 0;
    for (let index = 0; index < this.#count; index += 1) {
      const size = this.size(index);
      yield { index, sha256: this.sha256(index), offset, size };
      offset += size;
    }
  }
}

/**
 * Cuts a stream with the shared chunker (DEFAULT_CHUNKER_PARAMS) while it is
 * read and hashes each chunk as it passes: feed the pieces in order with
 * `update` (the piece may be reused by the caller afterwards: nothing is
 * kept), then `final` once for the list. Past `maxChunks` (what one assemble
 * record may list) it gives up and `final` returns null: such a file is sent
 * whole and the server cuts it.
 */
export class ChunkingHasher {
  readonly #chunker = new ContentChunker(DEFAULT_CHUNKER_PARAMS);
  #list: ChunkList | null = new ChunkList();
  #hash: Hash = createHash('sha256');
  /** Bytes of the current chunk already fed to #hash. */
  #pending = 0;

  readonly maxChunks: number;
  constructor(maxChunks: number = ASSEMBLE_MAX_CHUNKS) {
    this.maxChunks = maxChunks;
  }

  update(data: Buffer): void {
    const list = this.#list;
    if (list === null) return;
    if (list.count > this.maxChunks) {
      // Sent whole: no use keeping (or hashing) more.
      this.#list = null;
      return;
    }
    let position = 0;
    for (const length of this.#chunker.update(data)) {
      const take = length - this.#pending;
      this.#hash.update(data.subarray(position, position + take));
      position += take;
      list.push(this.#hash.digest(), length);
      this.#hash = createHash('sha256');
      this.#pending = 0;
    }
    if (position < data.length) {
      this.#hash.update(data.subarray(position));
      this.#pending += data.length - position;
    }
  }

  final(): ChunkList | null {
    const list = this.#list;
    if (list === null) return null;
    for (const length of this.#chunker.final()) list.push(this.#hash.digest(), length);
    return list.count <= this.maxChunks ? list : null;
  }
}

/**
 * One content's record of `POST /contents/assemble` (shared/src/assemble-format.ts)
 * as pieces to send one after another: the 44-byte header and a view of the
 * chunk list's hashes, so a large content's list is not copied.
 */
export function assembleRecordPieces(sha256: string, size: number, chunks: ChunkList): Buffer[] {
  const header = Buffer.alloc(ASSEMBLE_HEADER_BYTES);
  header.write(sha256, 0, 32, 'hex');
  header.writeBigUInt64BE(BigInt(size), 32);
  header.writeUInt32BE(chunks.count, 40);
  return [header, chunks.hashBytes()];
}

/** Bytes of one content's assemble record. */
export function assembleRecordBytes(chunks: ChunkList): number {
  return ASSEMBLE_HEADER_BYTES + 32 * chunks.count;
}
