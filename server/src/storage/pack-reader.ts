import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { sha256OfKey, type BlobStore, type ByteRange } from '../blob/blob-store.ts';
import { PackChunkDamagedError, PackDamagedError } from '../errors.ts';
import { ChunkDecodeError, decodeChunk, defaultZstdBackend, type BaseChunkResolver, type ZstdBackend } from './chunk-codec.ts';
import {
  PACK_FOOTER_BYTES,
  PACK_HEADER_BYTES,
  PACK_MAX_BYTES,
  parsePack,
  parsePackFooter,
  parsePackIndex,
  type ChunkLocation,
  type PackEntry,
  type PackIndex,
} from './pack-format.ts';

/**
 * One chunk's raw bytes, read with one ranged get of its stored bytes,
 * decoded, and checked against `sha256` (the hash the caller wants, by
 * default the location's own) and the recorded raw size. Any fault (the
 * pack missing or cut short, bytes that do not decode, another hash or
 * size) throws PackChunkDamagedError naming this chunk and its pack; other
 * chunks of the same pack are not touched. A delta chunk's base comes from
 * `base` (storage/delta-base.ts); without one a delta reads as damaged.
 */
export async function readChunk(
  store: BlobStore,
  location: ChunkLocation,
  sha256: string = location.sha256,
  zstd?: ZstdBackend,
  base?: BaseChunkResolver,
): Promise<Buffer> {
  const damaged = (problem: string) => new PackChunkDamagedError(sha256, location.packKey, problem);
  if (location.sha256 !== sha256) throw damaged(`the index entry is for chunk ${location.sha256}`);
  const { offset, length } = location;
  if (offset < PACK_HEADER_BYTES || length > PACK_MAX_BYTES) throw damaged(`the index entry [${offset}, +${length}) is impossible`);
  const stored = await readRange(store, location.packKey, { start: offset, end: offset + length });
  if (stored === null) throw damaged('the pack is missing');
  if (stored.length !== length) throw damaged(`the pack ends ${length - stored.length} bytes short of this chunk`);
  let raw: Buffer;
  try {
    raw = await decodeChunk(location.codec, stored, location.rawSize, zstd ?? (await defaultZstdBackend()), base);
  } catch (error) {
    if (error instanceof ChunkDecodeError) throw damaged(error.message);
    throw error;
  }
  const actual = createHash('sha256').update(raw).digest('hex');
  if (actual !== sha256) throw damaged(`the stored bytes decode to a chunk that hashes to ${actual}`);
  return raw;
}

/**
 * A pack's index read from the store without its chunk data (three ranged
 * gets: footer, index, header), for rebuilding the database index from packs
 * alone. Null when the pack is absent; PackDamagedError when its index
 * cannot be trusted.
 */
export async function readPackIndex(store: BlobStore, packKey: string): Promise<PackIndex | null> {
  const info = await store.stat(packKey);
  if (!info) return null;
  const gone = () => new PackDamagedError(packKey, 'the pack went away while its index was read');
  const footer = await readRange(store, packKey, { start: Math.max(info.size - PACK_FOOTER_BYTES, 0), end: info.size });
  if (footer === null) throw gone();
  const { indexOffset } = parsePackFooter(packKey, footer, info.size);
  const indexAndFooter = await readRange(store, packKey, { start: indexOffset, end: info.size });
  const header = await readRange(store, packKey, { start: 0, end: PACK_HEADER_BYTES });
  if (indexAndFooter === null || header === null) throw gone();
  return parsePackIndex(packKey, header, indexAndFooter, info.size);
}

/** What `verifyPack` found. */
export interface PackVerification {
  packKey: string;
  /** Bytes read from the store. */
  bytesRead: number;
  /** Whether the pack's bytes hash to its name. */
  packHashMatches: boolean;
  /** The pack's own index, null when it is damaged (see `indexProblem`). */
  entries: PackEntry[] | null;
  indexProblem: string | null;
  /** Chunks of the index that fail their check, with why; empty when every chunk is good. */
  damaged: { sha256: string; problem: string }[];
}

/**
 * Reads a whole pack (one get) and checks everything in it: the pack's hash
 * against its name, its index, and every chunk (decoded, hashed, sized).
 * Null when the pack is absent. It reports rather than throws, so a verify
 * job can record all the damage of a pack at once; chunks that cannot be
 * located because the index itself is damaged are for the caller to check
 * one by one from the database index (`readChunk`). A delta chunk is checked
 * against its base from `base`; a damaged base shows as the delta's damage.
 */
export async function verifyPack(
  store: BlobStore,
  packKey: string,
  zstd?: ZstdBackend,
  base?: BaseChunkResolver,
): Promise<PackVerification | null> {
  const pack = await readRange(store, packKey);
  if (pack === null) return null;
  const packHashMatches = createHash('sha256').update(pack).digest('hex') === sha256OfKey(packKey);
  const result: PackVerification = { packKey, bytesRead: pack.length, packHashMatches, entries: null, indexProblem: null, damaged: [] };
  try {
    result.entries = parsePack(packKey, pack).entries;
  } catch (error) {
    if (!(error instanceof PackDamagedError)) throw error;
    result.indexProblem = error.detail;
    return result;
  }
  const backend = zstd ?? (await defaultZstdBackend());
  for (const entry of result.entries) {
    const stored = pack.subarray(entry.offset, entry.offset + entry.length);
    try {
      const raw = await decodeChunk(entry.codec, stored, entry.rawSize, backend, base);
      const actual = createHash('sha256').update(raw).digest('hex');
      if (actual !== entry.sha256) result.damaged.push({ sha256: entry.sha256, problem: `decodes to a chunk that hashes to ${actual}` });
    } catch (error) {
      if (!(error instanceof ChunkDecodeError)) throw error;
      result.damaged.push({ sha256: entry.sha256, problem: error.message });
    }
  }
  return result;
}

async function readRange(store: BlobStore, key: string, range?: ByteRange): Promise<Buffer | null> {
  const stream: Readable | null = await store.get(key, range);
  if (stream === null) return null;
  const pieces: Buffer[] = [];
  for await (const piece of stream) pieces.push(piece as Buffer);
  return Buffer.concat(pieces);
}
