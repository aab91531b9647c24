import { createHash } from 'node:crypto';
import { PackDamagedError } from '../errors.ts';
import { CHUNK_CODECS, codecOfId, type ChunkCodec } from './chunk-codec.ts';

/*
 * The pack format, version 1 (docs/storage.md, "Packs", has the byte map).
 * All integers are unsigned big-endian.
 *
 *   header  16 bytes        magic "CAIRNPAK", u16 version = 1, 6 bytes of nonce (random per pack
 *                           written; readers ignore them)
 *   data    stored chunks   back to back, in index order, from offset 16
 *   index   48 bytes each   sha256 (32), offset u32, length u32, raw size u32, codec u8, 3 zero bytes
 *   footer  48 bytes        entry count u32, index offset u32,
 *                           SHA-256 of (header, index, footer bytes 0-7), magic "CAIRNPAK"
 *
 * A pack is named by the SHA-256 of all its bytes (key `packs/<sha256>`), so
 * a whole-pack check needs no database; the index checksum lets a reader
 * that fetched only the header, the index and the footer trust them.
 */

export const PACK_MAGIC = Buffer.from('CAIRNPAK', 'ascii');
export const PACK_VERSION = 1;
export const PACK_HEADER_BYTES = 16;
export const PACK_ENTRY_BYTES = 48;
export const PACK_FOOTER_BYTES = 48;
/** Offsets and lengths are u32: a pack is at most 4 GiB - 1 bytes. */
export const PACK_MAX_BYTES = 0xffff_ffff;

/** One chunk as a pack's index lists it. */
export interface PackEntry {
  /** SHA-256 of the raw (decoded) chunk bytes. */
  sha256: string;
  codec: ChunkCodec;
  rawSize: number;
  /** Where the stored (possibly compressed) bytes start, from the start of the pack. */
  offset: number;
  /** How many stored bytes. */
  length: number;
  /**
   * A delta chunk's base (codec `delta`), as the writer chose it. Not a field
   * of the pack's index: the stored bytes name their base themselves (their
   * first 32 bytes), and this copies it into the database's index.
   */
  baseSha256?: string;
}

/** Where a chunk lives: what the database index keeps for it. */
export interface ChunkLocation extends PackEntry {
  /** The pack's store key, `packs/<sha256 of the pack>`. */
  packKey: string;
}

/** A parsed pack index. */
export interface PackIndex {
  entries: PackEntry[];
  /** Offset of the index, i.e. where the chunk data ends. */
  indexOffset: number;
  /** The pack's whole length, as header, data, index and footer add up. */
  packBytes: number;
}

/**
 * `nonce`: 6 bytes that make this pack's bytes, and so its name, its own.
 * The writer passes random ones (decision 130): two puts of the same chunks
 * then never share a key, so a pack GC is deleting can never be the object
 * an upload has just put and is about to record. Default: zeros.
 */
export function encodePackHeader(nonce: Buffer = Buffer.alloc(6)): Buffer {
  if (nonce.length !== 6) throw new RangeError('a pack nonce is 6 bytes');
  const header = Buffer.alloc(PACK_HEADER_BYTES);
  PACK_MAGIC.copy(header, 0);
  header.writeUInt16BE(PACK_VERSION, 8);
  nonce.copy(header, 10);
  return header;
}

/** The index and footer for `entries`, whose data ends at `indexOffset`, after `header` (default: the zero-nonce header). */
export function encodePackTrailer(entries: readonly PackEntry[], indexOffset: number, header: Buffer = encodePackHeader()): Buffer {
  const trailer = Buffer.alloc(entries.length * PACK_ENTRY_BYTES + PACK_FOOTER_BYTES);
  entries.forEach((entry, i) => {
    const at = i * PACK_ENTRY_BYTES;
    trailer.write(entry.sha256, at, 32, 'hex');
    trailer.writeUInt32BE(entry.offset, at + 32);
    trailer.writeUInt32BE(entry.length, at + 36);
    trailer.writeUInt32BE(entry.rawSize, at + 40);
    trailer.writeUInt8(CHUNK_CODECS[entry.codec], at + 44);
  });
  const footerAt = entries.length * PACK_ENTRY_BYTES;
  trailer.writeUInt32BE(entries.length, footerAt);
  trailer.writeUInt32BE(indexOffset, footerAt + 4);
  indexChecksum(header, trailer.subarray(0, footerAt + 8)).copy(trailer, footerAt + 8);
  PACK_MAGIC.copy(trailer, footerAt + 40);
  return trailer;
}

function indexChecksum(header: Buffer, indexAndCounts: Buffer): Buffer {
  return createHash('sha256').update(header).update(indexAndCounts).digest();
}

/** What the footer says: where the index starts and how many entries it has. Throws PackDamagedError. */
export function parsePackFooter(packKey: string, footer: Buffer, packBytes: number): { count: number; indexOffset: number } {
  if (packBytes < PACK_HEADER_BYTES + PACK_FOOTER_BYTES || footer.length !== PACK_FOOTER_BYTES) {
    throw new PackDamagedError(packKey, `${packBytes} bytes is too short for a pack`);
  }
  if (!footer.subarray(40).equals(PACK_MAGIC)) {
    throw new PackDamagedError(packKey, 'no pack magic at the end: truncated, or not a pack');
  }
  const count = footer.readUInt32BE(0);
  const indexOffset = footer.readUInt32BE(4);
  if (indexOffset < PACK_HEADER_BYTES || indexOffset + count * PACK_ENTRY_BYTES + PACK_FOOTER_BYTES !== packBytes) {
    throw new PackDamagedError(
      packKey,
      `footer lists ${count} entries from offset ${indexOffset}, which does not add up to the pack's ${packBytes} bytes`,
    );
  }
  return { count, indexOffset };
}

/**
 * The entries of a pack from its header, index and footer (the parts a
 * reader can fetch without the chunk data). Checks magic, version, the index
 * checksum, and that the entries tile the data exactly, so a pack that
 * parses is one whose every chunk can be located. Throws PackDamagedError.
 */
export function parsePackIndex(packKey: string, header: Buffer, indexAndFooter: Buffer, packBytes: number): PackIndex {
  const footerAt = indexAndFooter.length - PACK_FOOTER_BYTES;
  const footer = indexAndFooter.subarray(Math.max(footerAt, 0));
  const { count, indexOffset } = parsePackFooter(packKey, footer, packBytes);
  if (footerAt !== count * PACK_ENTRY_BYTES) throw new PackDamagedError(packKey, 'index is cut short');
  if (header.length !== PACK_HEADER_BYTES || !header.subarray(0, 8).equals(PACK_MAGIC)) {
    throw new PackDamagedError(packKey, 'no pack magic at the start');
  }
  const version = header.readUInt16BE(8);
  if (version !== PACK_VERSION) throw new PackDamagedError(packKey, `pack version ${version} is not supported`);
  const expected = footer.subarray(8, 40);
  if (!indexChecksum(header, indexAndFooter.subarray(0, footerAt + 8)).equals(expected)) {
    throw new PackDamagedError(packKey, 'index checksum mismatch');
  }
  const entries: PackEntry[] = [];
  let nextOffset = PACK_HEADER_BYTES;
  for (let i = 0; i < count; i += 1) {
    const at = i * PACK_ENTRY_BYTES;
    const codec = codecOfId(indexAndFooter.readUInt8(at + 44));
    const entry = {
      sha256: indexAndFooter.toString('hex', at, at + 32),
      offset: indexAndFooter.readUInt32BE(at + 32),
      length: indexAndFooter.readUInt32BE(at + 36),
      rawSize: indexAndFooter.readUInt32BE(at + 40),
    };
    // The checksum passed, so these can only come from a writer that got them wrong; say which.
    if (codec === null) throw new PackDamagedError(packKey, `entry ${i} has unknown codec ${indexAndFooter.readUInt8(at + 44)}`);
    if (entry.offset !== nextOffset) throw new PackDamagedError(packKey, `entry ${i} starts at ${entry.offset}, not ${nextOffset}`);
    nextOffset += entry.length;
    entries.push({ ...entry, codec });
  }
  if (nextOffset !== indexOffset) {
    throw new PackDamagedError(packKey, `entries end at ${nextOffset}, but the index starts at ${indexOffset}`);
  }
  return { entries, indexOffset, packBytes };
}

/** The index of a whole pack held in memory (see parsePackIndex). */
export function parsePack(packKey: string, pack: Buffer): PackIndex {
  if (pack.length < PACK_HEADER_BYTES + PACK_FOOTER_BYTES) {
    throw new PackDamagedError(packKey, `${pack.length} bytes is too short for a pack`);
  }
  const { indexOffset } = parsePackFooter(packKey, pack.subarray(pack.length - PACK_FOOTER_BYTES), pack.length);
  return parsePackIndex(packKey, pack.subarray(0, PACK_HEADER_BYTES), pack.subarray(indexOffset), pack.length);
}

/**
 * The index of a pack read as a stream (for example `store.get(key)`): the
 * pack is held in memory, so it refuses one longer than `maxBytes` (by
 * default the largest a pack can be) with PackDamagedError.
 */
export async function parsePackStream(packKey: string, stream: AsyncIterable<Buffer>, maxBytes = PACK_MAX_BYTES): Promise<PackIndex> {
  const pieces: Buffer[] = [];
  let bytes = 0;
  for await (const piece of stream) {
    bytes += piece.length;
    if (bytes > maxBytes) throw new PackDamagedError(packKey, `longer than ${maxBytes} bytes`);
    pieces.push(piece);
  }
  return parsePack(packKey, Buffer.concat(pieces, bytes));
}
