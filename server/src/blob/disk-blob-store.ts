import { randomUUID } from 'node:crypto';
import { constants as fsConstants, createWriteStream, type Dirent } from 'node:fs';
import { access, mkdir, open, opendir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isSha256 } from '@cairn/shared';
import { StorageFullError } from '../errors.ts';
import {
  assertBlobKey,
  assertByteRange,
  packKeyOf,
  type BlobInfo,
  type BlobStore,
  type ByteRange,
  type PutOptions,
} from './blob-store.ts';
import { BLOB_IO_CHUNK_BYTES, VerifyingStream } from './verifying-stream.ts';

const TEMP_DIR = 'tmp';
const PACK_DIR = 'packs';
const FANOUT_DIR = /^[a-f0-9]{2}$/;

/**
 * Blobs as files under `root/ab/cd/<sha256>`, packs under
 * `root/packs/ab/<sha256>` (one fan-out level: packs are few). A put streams into
 * `root/tmp/<uuid>` (same filesystem, so the final rename is atomic), hashing
 * on the way; only verified, fsynced bytes are renamed into place, and the
 * directory entry is fsynced after. One process owns `root`: temp files older
 * than zero milliseconds at start-up can only be crash leftovers.
 */
export class DiskBlobStore implements BlobStore {
  readonly kind = 'disk' as const;
  readonly location: string;
  readonly #root: string;
  readonly #tempDir: string;
  #tempDirReady: Promise<unknown> | undefined;

  constructor(root: string) {
    this.#root = path.resolve(root);
    this.#tempDir = path.join(this.#root, TEMP_DIR);
    this.location = this.#root;
  }

  /** Where a key's file lives; exposed for diagnostics and tests. */
  pathOf(key: string): string {
    const sha256 = assertBlobKey(key);
    if (sha256 !== key) return path.join(this.#root, PACK_DIR, sha256.slice(0, 2), sha256);
    return path.join(this.#root, key.slice(0, 2), key.slice(2, 4), key);
  }

  /** Where puts stage their bytes; tests write fake crash leftovers here. */
  get tempDir(): string {
    return this.#tempDir;
  }

  async put(key: string, source: Readable, expectedSha256: string, options: PutOptions = {}): Promise<BlobInfo> {
    const finalPath = this.pathOf(key);
    await this.#ensureTempDir();
    const tempPath = path.join(this.#tempDir, randomUUID());
    const verifier = new VerifyingStream(expectedSha256, { maxBytes: options.maxBytes, observe: options.observe, callerHashed: options.callerHashed });
    // `flush` fsyncs before the close that pipeline waits for: the bytes are durable before the rename.
    const sink = createWriteStream(tempPath, { flags: 'wx', mode: 0o644, highWaterMark: BLOB_IO_CHUNK_BYTES, flush: true });
    try {
      await pipeline(source, verifier, sink);
      const finalDir = path.dirname(finalPath);
      const firstCreated = await mkdir(finalDir, { recursive: true });
      await rename(tempPath, finalPath);
      await fsyncDir(finalDir);
      if (firstCreated !== undefined) {
        // New fan-out directories need their own entries made durable too.
        await fsyncDir(path.dirname(finalDir));
        await fsyncDir(this.#root);
      }
      return { key, size: verifier.bytes };
    } catch (error) {
      // A put that fails before its first write (a one-chunk body with a wrong hash) can reject
      // while the file is still being opened; unlinking before that open ends would leave it behind.
      if (!sink.closed) await new Promise<void>((resolve) => sink.once('close', () => resolve()));
      await unlink(tempPath).catch(() => undefined);
      throw isOutOfSpace(error) ? new StorageFullError() : error;
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable | null> {
    if (range) assertByteRange(range);
    try {
      // Opening first (not stat-then-open) leaves no window for a delete in between.
      const handle = await open(this.pathOf(key), 'r');
      if (range && range.start === range.end) {
        // createReadStream cannot express an empty range (its `end` is inclusive).
        await handle.close();
        return Readable.from([]);
      }
      // A ranged stream reads with positioned reads (pread) from `start`; past the end it simply ends.
      return handle.createReadStream({
        highWaterMark: BLOB_IO_CHUNK_BYTES,
        ...(range && { start: range.start, end: range.end - 1 }),
      });
    } catch (error) {
      if (isAbsent(error)) return null;
      throw error;
    }
  }

  async stat(key: string): Promise<BlobInfo | null> {
    try {
      const info = await stat(this.pathOf(key));
      return { key, size: info.size };
    } catch (error) {
      if (isAbsent(error)) return null;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.pathOf(key));
    } catch (error) {
      if (!isAbsent(error)) throw error;
    }
  }

  /** Walks `ab/cd/` and `packs/ab/` directory by directory; memory stays flat however many blobs there are. */
  async *list(): AsyncIterable<BlobInfo> {
    yield* this.#listBlobs();
    const packsRoot = path.join(this.#root, PACK_DIR);
    for await (const first of openDirIfPresent(packsRoot)) {
      if (!first.isDirectory() || !FANOUT_DIR.test(first.name)) continue;
      for await (const entry of openDirIfPresent(path.join(packsRoot, first.name))) {
        if (!entry.isFile() || !isSha256(entry.name) || entry.name.slice(0, 2) !== first.name) continue;
        const info = await this.stat(packKeyOf(entry.name));
        if (info) yield info;
      }
    }
  }

  async *#listBlobs(): AsyncIterable<BlobInfo> {
    for await (const first of openDirIfPresent(this.#root)) {
      if (!first.isDirectory() || !FANOUT_DIR.test(first.name)) continue;
      const firstPath = path.join(this.#root, first.name);
      for await (const second of openDirIfPresent(firstPath)) {
        if (!second.isDirectory() || !FANOUT_DIR.test(second.name)) continue;
        const secondPath = path.join(firstPath, second.name);
        for await (const entry of openDirIfPresent(secondPath)) {
          const key = entry.name;
          if (!entry.isFile() || !isSha256(key) || key.slice(0, 2) !== first.name || key.slice(2, 4) !== second.name) {
            continue;
          }
          const info = await this.stat(key);
          if (info) yield info;
        }
      }
    }
  }

  async sweepTemp(olderThanMs = 0): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    for await (const entry of openDirIfPresent(this.#tempDir)) {
      const entryPath = path.join(this.#tempDir, entry.name);
      try {
        const info = await stat(entryPath);
        if (olderThanMs > 0 && info.mtimeMs > cutoff) continue;
        await unlink(entryPath);
        removed += 1;
      } catch (error) {
        if (!isAbsent(error)) throw error;
      }
    }
    return removed;
  }

  async check(): Promise<void> {
    await this.#ensureTempDir();
    await access(this.#tempDir, fsConstants.W_OK);
    await access(this.#root, fsConstants.W_OK);
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }

  #ensureTempDir(): Promise<unknown> {
    this.#tempDirReady ??= mkdir(this.#tempDir, { recursive: true }).catch((error: unknown) => {
      this.#tempDirReady = undefined;
      throw error;
    });
    return this.#tempDirReady;
  }
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}

function isAbsent(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function isOutOfSpace(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function* openDirIfPresent(dir: string): AsyncIterable<Dirent> {
  let handle;
  try {
    handle = await opendir(dir, { bufferSize: 256 });
  } catch (error) {
    if (isAbsent(error)) return;
    throw error;
  }
  yield* handle;
}
