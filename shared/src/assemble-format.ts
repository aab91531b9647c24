/**
 * The body of `POST /contents/assemble` (application/octet-stream): contents
 * of several chunks, each given as its whole-content hash, its size and its
 * ordered chunk hashes, as binary records one after another:
 *
 *   32 bytes  the content's SHA-256
 *    8 bytes  its size, unsigned big-endian (at most 2^53 - 1)
 *    4 bytes  how many chunks, unsigned big-endian (2 to ASSEMBLE_MAX_CHUNKS, and at most the size)
 *   32 bytes  each chunk's SHA-256, in file order
 *
 * Binary and streamed rather than JSON because a content's chunk list grows
 * with its size (about 130,000 chunks per GiB at the 8 KiB average): 32
 * bytes a chunk instead of 67, and the server reads it as it arrives instead
 * of buffering one JSON document (decision 125).
 */
export const ASSEMBLE_CONTENT_TYPE = 'application/octet-stream';
export const ASSEMBLE_HEADER_BYTES = 32 + 8 + 4;
/**
 * Chunks of one content in one record: 2^20, 8 GiB at the 8 KiB average.
 * The server holds a record's list while it checks it (about 90 bytes a
 * chunk); the agent sends a larger file whole, as one part, and the server
 * cuts it itself (decision 125).
 */
export const ASSEMBLE_MAX_CHUNKS = 2 ** 20;

export interface AssembleRecord {
  sha256: string;
  size: number;
  /** Lower-case hex SHA-256 of each chunk, in order. */
  chunks: string[];
}

/** One record's bytes. */
export function encodeAssembleRecord(record: AssembleRecord): Buffer {
  const out = Buffer.alloc(ASSEMBLE_HEADER_BYTES + 32 * record.chunks.length);
  out.write(record.sha256, 0, 32, 'hex');
  out.writeBigUInt64BE(BigInt(record.size), 32);
  out.writeUInt32BE(record.chunks.length, 40);
  record.chunks.forEach((chunk, i) => out.write(chunk, ASSEMBLE_HEADER_BYTES + 32 * i, 32, 'hex'));
  return out;
}

export class AssembleFormatError extends Error {}

/**
 * Reads records from a byte stream as they arrive. Throws AssembleFormatError
 * for a record that is cut short, declares fewer than 2 or more than
 * `maxChunks` chunks, or a size past 2^53 - 1; a record's chunk list is held
 * in memory only while it is yielded.
 */
export async function* decodeAssembleRecords(
  source: AsyncIterable<Uint8Array>,
  maxChunks: number = ASSEMBLE_MAX_CHUNKS,
): AsyncGenerator<AssembleRecord> {
  let buffered = Buffer.alloc(0);
  let record: { sha256: string; size: number; count: number; chunks: string[] } | null = null;
  for await (const piece of source) {
    buffered = buffered.length === 0 ? Buffer.from(piece) : Buffer.concat([buffered, piece]);
    let at = 0;
    for (;;) {
      if (record === null) {
        if (buffered.length - at < ASSEMBLE_HEADER_BYTES) break;
        const size = buffered.readBigUInt64BE(at + 32);
        const count = buffered.readUInt32BE(at + 40);
        if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new AssembleFormatError('a content size is past 2^53 - 1');
        if (count < 2 || count > maxChunks || BigInt(count) > size) {
          throw new AssembleFormatError(`a content must list 2 to ${maxChunks} chunks (one listed ${count}); a content of one chunk is that chunk`);
        }
        record = { sha256: buffered.toString('hex', at, at + 32), size: Number(size), count, chunks: [] };
        at += ASSEMBLE_HEADER_BYTES;
      }
      const want = Math.min(record.count - record.chunks.length, Math.floor((buffered.length - at) / 32));
      for (let i = 0; i < want; i += 1) record.chunks.push(buffered.toString('hex', at + 32 * i, at + 32 * (i + 1)));
      at += 32 * want;
      if (record.chunks.length < record.count) break;
      const done: AssembleRecord = { sha256: record.sha256, size: record.size, chunks: record.chunks };
      record = null;
      yield done;
    }
    buffered = buffered.subarray(at);
  }
  if (record !== null || buffered.length > 0) throw new AssembleFormatError('the body ends inside a content record');
}
