import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import { applyFossilDelta } from './fossil-apply.ts';
import { createFossilDelta } from './fossil-delta-encode.ts';

/**
 * How a chunk's bytes are stored in a pack. The numbers are written into
 * every pack's index (one byte each): never renumber or reuse one.
 */
export const CHUNK_CODECS = { raw: 0, zstd: 1, delta: 2 } as const;
export type ChunkCodec = keyof typeof CHUNK_CODECS;

export function codecOfId(id: number): ChunkCodec | null {
  for (const [name, value] of Object.entries(CHUNK_CODECS)) if (value === id) return name as ChunkCodec;
  return null;
}

/**
 * Level 1, not zstd's default 3: on 64 KiB chunks of dumps it compresses as
 * well (pg_dump 87x either way) and 1.3-1.7x faster, and only source code
 * gains from 3 (about 6%) (decision 113, `bench/codec.ts`).
 */
export const ZSTD_LEVEL = 1;
/**
 * A chunk is kept compressed only when that saves at least 1/32 (about 3%)
 * of its size; otherwise it is stored raw and later reads skip decompression.
 * Chunks this small or smaller are stored raw without trying: a zstd frame
 * alone costs 9 or more bytes.
 */
export const MIN_SAVING_FRACTION = 1 / 32;
export const MIN_COMPRESS_BYTES = 64;

/** A zstd implementation; both write standard single frames with the content size, and read each other's. */
export interface ZstdBackend {
  readonly name: 'node:zlib' | '@bokuweb/zstd-wasm';
  compress(raw: Uint8Array, level: number): Promise<Buffer>;
  /** One frame back to its bytes; throws when the frame is bad or holds more than `rawSize` bytes. */
  decompress(frame: Uint8Array, rawSize: number): Promise<Buffer>;
}

/** The zstd functions of node:zlib (Node >= 22.15 / 23.8); @types/node 20 does not declare them. */
interface NodeZstd {
  zstdCompress(
    buffer: Uint8Array,
    options: { pledgedSrcSize: number; params: Record<number, number> },
    callback: (error: Error | null, result: Buffer) => void,
  ): void;
  zstdDecompress(buffer: Uint8Array, options: { maxOutputLength: number }, callback: (error: Error | null, result: Buffer) => void): void;
  constants: { ZSTD_c_compressionLevel: number };
}

function nodeZstdFunctions(): NodeZstd | null {
  const candidate = zlib as unknown as Partial<NodeZstd>;
  return typeof candidate.zstdCompress === 'function' && typeof candidate.zstdDecompress === 'function'
    ? (candidate as NodeZstd)
    : null;
}

/** node:zlib's zstd (runs on libuv's thread pool, off the event loop), or null on a runtime without it. */
export function nodeZstdBackend(): ZstdBackend | null {
  const native = nodeZstdFunctions();
  if (!native) return null;
  return {
    name: 'node:zlib',
    compress: (raw, level) =>
      new Promise((resolve, reject) => {
        // Without the pledged size the streaming encoder leaves the content size out of the frame header.
        const options = { pledgedSrcSize: raw.length, params: { [native.constants.ZSTD_c_compressionLevel]: level } };
        native.zstdCompress(raw, options, (error, result) => (error ? reject(error) : resolve(result)));
      }),
    decompress: (frame, rawSize) =>
      new Promise((resolve, reject) => {
        native.zstdDecompress(frame, { maxOutputLength: Math.max(rawSize, 1) }, (error, result) =>
          error ? reject(error) : resolve(result),
        );
      }),
  };
}

interface ZstdWasm {
  init(): Promise<void>;
  compress(buffer: Uint8Array, level?: number): Uint8Array;
  createCCtx(): number;
  compressUsingDict(cctx: number, buffer: Uint8Array, dict: Uint8Array, level?: number): Uint8Array;
  decompress(buffer: Uint8Array, options?: { defaultHeapSize?: number }): Uint8Array;
}

let wasmBackend: Promise<ZstdBackend> | undefined;

/**
 * zstd compiled to WebAssembly (@bokuweb/zstd-wasm: no install script, no
 * native binary, nothing fetched at install). Synchronous on the event loop:
 * a chunk of 1 MiB takes a few milliseconds. Loaded once per process.
 */
export function wasmZstdBackend(): Promise<ZstdBackend> {
  wasmBackend ??= (async () => {
    // The package is CommonJS whose ESM view hides the named exports behind `default`.
    const wasm = createRequire(import.meta.url)('@bokuweb/zstd-wasm') as ZstdWasm;
    await wasm.init();
    const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // One compression context for the process, reused by every call (calls are synchronous, so never shared
    // at once): `compress` sets one up and tears it down per call, which for 8 KiB chunks cost more than
    // compressing them (60-83 against 129-160 MiB/s here, byte-identical frames; decision 129).
    const cctx = wasm.createCCtx();
    const noDictionary = new Uint8Array(0);
    return {
      name: '@bokuweb/zstd-wasm',
      compress: (raw, level) => Promise.resolve(asBuffer(wasm.compressUsingDict(cctx, raw, noDictionary, level))),
      decompress: (frame, rawSize) =>
        // The output buffer is sized from the frame's content size (checked against rawSize before
        // this is called), or from rawSize when a frame lacks it; a frame holding more fails.
        Promise.resolve().then(() => asBuffer(wasm.decompress(frame, { defaultHeapSize: Math.max(rawSize, 1) }))),
    };
  })();
  return wasmBackend;
}

let chosen: Promise<ZstdBackend> | undefined;

/** node:zlib where the runtime has zstd, else the WebAssembly build (decision 113). */
export function defaultZstdBackend(): Promise<ZstdBackend> {
  chosen ??= Promise.resolve(nodeZstdBackend() ?? wasmZstdBackend());
  return chosen;
}

export interface EncodedChunk {
  codec: ChunkCodec;
  stored: Buffer;
}

/** Compresses a chunk, or keeps it raw when compression does not pay (see MIN_SAVING_FRACTION). */
export async function encodeChunk(raw: Buffer, zstd: ZstdBackend, level = ZSTD_LEVEL): Promise<EncodedChunk> {
  if (raw.length <= MIN_COMPRESS_BYTES) return { codec: 'raw', stored: raw };
  const compressed = await zstd.compress(raw, level);
  if (compressed.length > raw.length - raw.length * MIN_SAVING_FRACTION) return { codec: 'raw', stored: raw };
  return { codec: 'zstd', stored: compressed };
}

/**
 * A delta chunk (codec `delta`, decision 171) is stored as the 32-byte
 * SHA-256 of its base chunk followed by a zstd frame of a Fossil delta
 * (made by fossil-delta-encode.ts, decision 186) that turns the base's raw
 * bytes into the chunk's. The base
 * is always a chunk stored whole (raw or zstd), never another delta, so a
 * read costs at most two chunk reads. It is kept only when it takes at most
 * this share of the chunk's ordinary encoding: below that the second read is
 * not worth what it saves.
 */
export const DELTA_MAX_SHARE = 1 / 2;
/** Chunks smaller than this are never stored as deltas: the 32-byte base name and a second read cost more than they save. */
export const DELTA_MIN_BYTES = 4096;
const BASE_NAME_BYTES = 32;

/** The raw bytes of a chunk stored whole, by its hash; throws ChunkDecodeError when they cannot be had. */
export type BaseChunkResolver = (sha256: string) => Promise<Buffer>;

/**
 * `raw`'s ordinary encoding, or a delta against `base` (whose raw bytes hash
 * to `base.sha256`) when that is at most DELTA_MAX_SHARE of it. A delta is
 * decoded again, exactly as a read will, before it is returned, and kept
 * only when it gives back `raw` byte for byte (decision 188): a delta is
 * stored only once proven to decode right, whatever the encoder did.
 * `makeDelta` is for tests.
 */
export async function encodeChunkAgainst(
  raw: Buffer,
  base: { sha256: string; raw: Buffer } | undefined,
  zstd: ZstdBackend,
  level = ZSTD_LEVEL,
  makeDelta: (source: Buffer, target: Buffer) => Buffer = createFossilDelta,
): Promise<EncodedChunk & { baseSha256?: string }> {
  const plain = await encodeChunk(raw, zstd, level);
  if (!base || raw.length < DELTA_MIN_BYTES || base.raw.length === 0) return plain;
  const delta = makeDelta(base.raw, raw);
  if (BASE_NAME_BYTES + delta.length / 8 > plain.stored.length * DELTA_MAX_SHARE) return plain;
  const frame = await zstd.compress(delta, level);
  const stored = Buffer.concat([Buffer.from(base.sha256, 'hex'), frame.length < delta.length ? frame : delta]);
  if (stored.length > plain.stored.length * DELTA_MAX_SHARE) return plain;
  let decoded: Buffer;
  try {
    decoded = await decodeDelta(stored, raw.length, zstd, async () => base.raw);
  } catch (error) {
    if (error instanceof ChunkDecodeError) return plain;
    throw error;
  }
  if (!decoded.equals(raw)) return plain;
  return { codec: 'delta', stored, baseSha256: base.sha256 };
}

/** The base chunk a stored delta names (its first 32 bytes), or null when `stored` is too short to name one. */
export function deltaBaseOf(stored: Buffer): string | null {
  return stored.length > BASE_NAME_BYTES ? stored.toString('hex', 0, BASE_NAME_BYTES) : null;
}

/** Why stored bytes cannot be decoded; the pack reader turns it into a damage error naming the chunk. */
export class ChunkDecodeError extends Error {}

/**
 * The raw bytes of a stored chunk. Throws ChunkDecodeError when a zstd frame
 * is malformed, declares a content size other than `rawSize`, or decodes to
 * another length, and for a delta when `base` cannot give its base chunk
 * (or none is given) or the delta does not apply; the caller still checks
 * the bytes' SHA-256.
 */
export async function decodeChunk(
  codec: ChunkCodec,
  stored: Buffer,
  rawSize: number,
  zstd: ZstdBackend,
  base?: BaseChunkResolver,
): Promise<Buffer> {
  if (codec === 'raw') {
    if (stored.length !== rawSize) throw new ChunkDecodeError(`raw chunk is ${stored.length} bytes, not ${rawSize}`);
    return stored;
  }
  if (codec === 'delta') return decodeDelta(stored, rawSize, zstd, base);
  return decodeZstd(stored, rawSize, zstd);
}

async function decodeZstd(stored: Buffer, rawSize: number, zstd: ZstdBackend): Promise<Buffer> {
  const declared = zstdFrameContentSize(stored);
  if (declared === 'malformed') throw new ChunkDecodeError('not a zstd frame');
  if (declared !== null && declared !== rawSize) {
    throw new ChunkDecodeError(`zstd frame declares ${declared} bytes, not ${rawSize}`);
  }
  let raw: Buffer;
  try {
    raw = await zstd.decompress(stored, rawSize);
  } catch (error) {
    throw new ChunkDecodeError(`zstd frame does not decode: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (raw.length !== rawSize) throw new ChunkDecodeError(`zstd frame decodes to ${raw.length} bytes, not ${rawSize}`);
  return raw;
}

async function decodeDelta(stored: Buffer, rawSize: number, zstd: ZstdBackend, base: BaseChunkResolver | undefined): Promise<Buffer> {
  const baseSha256 = deltaBaseOf(stored);
  if (baseSha256 === null) throw new ChunkDecodeError('delta chunk too short to name its base');
  if (!base) throw new ChunkDecodeError(`delta chunk against ${baseSha256} read where bases cannot be resolved`);
  const body = stored.subarray(BASE_NAME_BYTES);
  // The delta is a zstd frame unless compressing it did not pay; a delta never exceeds the chunk by much.
  let delta: Buffer = body;
  if (zstdFrameContentSize(body) !== 'malformed') {
    const declared = zstdFrameContentSize(body);
    const bound = rawSize + (rawSize >> 3) + 1024;
    if (declared !== null && (declared as number) > bound) throw new ChunkDecodeError(`delta frame declares ${declared} bytes`);
    try {
      delta = await zstd.decompress(body, (declared as number | null) ?? bound);
    } catch (error) {
      throw new ChunkDecodeError(`delta frame does not decode: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const baseRaw = await base(baseSha256);
  let raw: Buffer;
  try {
    raw = applyFossilDelta(baseRaw, delta);
  } catch (error) {
    throw new ChunkDecodeError(`delta against ${baseSha256} does not apply: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (raw.length !== rawSize) throw new ChunkDecodeError(`delta decodes to ${raw.length} bytes, not ${rawSize}`);
  return raw;
}

const ZSTD_MAGIC = 0xfd2fb528;

/**
 * The content size a zstd frame header declares (RFC 8878, 3.1.1.1), null
 * when it declares none, 'malformed' when this is not a frame header. Read
 * before decoding so that a damaged header cannot make the decoder allocate
 * gigabytes.
 */
export function zstdFrameContentSize(frame: Buffer): number | null | 'malformed' {
  if (frame.length < 5 || frame.readUInt32LE(0) !== ZSTD_MAGIC) return 'malformed';
  const descriptor = frame[4]!;
  const sizeFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  if ((descriptor >> 3) & 1) return 'malformed'; // reserved bit
  const dictionaryIdBytes = [0, 1, 2, 4][descriptor & 3]!;
  const sizeBytes = sizeFlag === 0 ? singleSegment : [0, 2, 4, 8][sizeFlag]!;
  const at = 5 + (singleSegment ? 0 : 1) + dictionaryIdBytes;
  if (frame.length < at + sizeBytes) return 'malformed';
  switch (sizeBytes) {
    case 0:
      return null;
    case 1:
      return frame[at]!;
    case 2:
      return frame.readUInt16LE(at) + 256;
    case 4:
      return frame.readUInt32LE(at);
    default: {
      const size = frame.readBigUInt64LE(at);
      return size > BigInt(Number.MAX_SAFE_INTEGER) ? 'malformed' : Number(size);
    }
  }
}
