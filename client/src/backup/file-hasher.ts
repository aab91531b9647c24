import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { fsPath, isChunkedSize } from '@cairn/shared';
import { ChunkingHasher, type ChunkList } from './chunk-list.ts';

/** Reads of 1 MiB: hashing speed halves with 64 KiB stream chunks. */
export const READ_BYTES = 1 << 20;

/** Files of at most this size may keep their bytes from the hash read for the upload (decision 202). */
export const KEEP_BYTES_MAX = 64 * 1024;

/**
 * Where a small file's bytes are read when they are kept for the upload:
 * hands out `size` bytes of a batch's arena, or undefined once it is full.
 */
export type KeepBytes = (size: number) => Buffer | undefined;

/**
 * Hands out an arena's bytes front to back for one hashing pass (decision
 * 202); undefined once it is full or for a file over KEEP_BYTES_MAX. The
 * arena is the caller's to reuse once nothing reads the views any more.
 */
export function keepArena(arena: Buffer): KeepBytes {
  let used = 0;
  return (size) => {
    if (size > KEEP_BYTES_MAX || used + size > arena.length) return undefined;
    const view = arena.subarray(used, used + size);
    used += size;
    return view;
  };
}

/** The file changed between being seen and being read, or while being read. */
export class FileChangedError extends Error {
  readonly path: string;
  constructor(path: string, detail: string) {
    super(`${path} changed while being read (${detail})`);
    this.path = path;
    this.name = 'FileChangedError';
  }
}

export interface HashedFile {
  sha256: string;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  mode: number;
  /**
   * Set when the file changed while it was read and its bytes as read were
   * copied here (decision 64): `sha256` is the hash of this copy, and the
   * upload must read it, not the file.
   */
  spool?: { path: string; mtimeMs: number };
  /**
   * For a content larger than the chunking threshold (isChunkedSize): its
   * chunks as cut by the shared chunker while it was hashed, in order.
   * Absent for smaller contents, which are one chunk named by `sha256`, and
   * for one of more than ASSEMBLE_MAX_CHUNKS chunks (8 GiB at the average),
   * which is sent whole for the server to cut.
   */
  chunks?: ChunkList;
  /**
   * The bytes hashed, kept for the upload when the file is small and its
   * batch's arena had room (decision 202): the upload sends these instead of
   * opening and reading the file again. Dropped once the batch is uploaded.
   */
  bytes?: Buffer | undefined;
}

/** Opens a regular file, by its text spelling (decision 41), without following a symlink that replaced it since the scan. */
export function openNoFollow(filePath: string): Promise<FileHandle> {
  return open(fsPath(filePath), constants.O_RDONLY | constants.O_NOFOLLOW);
}

/**
 * Hashes a file with large reads into `buffer` (one per worker, reused).
 * The stats returned are those of the bytes hashed: taken from the open
 * descriptor before reading, and checked again after, so a file written to
 * while being read is caught (FileChangedError) rather than recorded with a
 * hash that matches neither version.
 *
 * At most the size seen at open is read, so a file appended to faster than
 * it can be read still ends. With `spoolPath` (the last try for a file that
 * keeps changing), every byte read is also written to a new file there; if the file changed meanwhile,
 * the result keeps that copy (`spool`) instead of throwing, so what is
 * uploaded is exactly what was hashed. If it did not change, the copy is
 * removed and the result is an ordinary one.
 *
 * A file larger than the chunking threshold is also cut into chunks as it is
 * read, each hashed on its own (`chunks`): the same single read serves both.
 *
 * With `keep`, a small file (KEEP_BYTES_MAX) is read into the bytes `keep`
 * hands out instead of `buffer`, and the result keeps them (`bytes`), so the
 * upload need not read the file again. Not on a spooling try.
 */
export async function hashFile(filePath: string, buffer: Buffer, spoolPath?: string, keep?: KeepBytes): Promise<HashedFile> {
  const handle = await openNoFollow(filePath);
  let spool: FileHandle | undefined;
  let keepSpool = false;
  try {
    const before = await handle.stat();
    if (!before.isFile()) throw new FileChangedError(filePath, 'no longer a regular file');
    if (spoolPath !== undefined) spool = await open(spoolPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    const hash = createHash('sha256');
    const chunker = isChunkedSize(before.size) ? new ChunkingHasher() : undefined;
    const kept = spool === undefined && before.size <= KEEP_BYTES_MAX ? keep?.(before.size) : undefined;
    let total = 0;
    // Never past the size seen at open: a file appended to faster than it is read would otherwise never end.
    while (total < before.size) {
      // Kept bytes are read in place, one after another; other reads reuse the worker's buffer.
      const target = kept ?? buffer;
      const offset = kept === undefined ? 0 : total;
      const { bytesRead } = await handle.read(target, offset, Math.min(target.length - offset, before.size - total), null);
      if (bytesRead === 0) break;
      const read = target.subarray(offset, offset + bytesRead);
      hash.update(read);
      chunker?.update(read);
      if (spool !== undefined) {
        let written = 0;
        while (written < bytesRead) written += (await spool.write(read, written, bytesRead - written)).bytesWritten;
      }
      total += bytesRead;
    }
    const after = await handle.stat();
    // `bytes` always present (undefined when not kept), so dropping them later keeps the object's shape.
    const bytes = kept === undefined ? undefined : kept.subarray(0, total);
    const hashed: HashedFile = { sha256: hash.digest('hex'), size: total, mtimeMs: before.mtimeMs, ctimeMs: before.ctimeMs, ino: before.ino, mode: before.mode, bytes };
    // By the bytes read: a file that shrank while read to the threshold or less is one chunk after all.
    const chunks = chunker !== undefined && isChunkedSize(total) ? chunker.final() : null;
    if (chunks !== null) hashed.chunks = chunks;
    if (total === before.size && after.size === before.size && after.mtimeMs === before.mtimeMs) return hashed;
    if (spool === undefined || spoolPath === undefined) throw new FileChangedError(filePath, `size ${before.size} -> ${after.size}, read ${total}`);
    keepSpool = true;
    return { ...hashed, spool: { path: spoolPath, mtimeMs: (await spool.stat()).mtimeMs } };
  } finally {
    await handle.close();
    if (spool !== undefined) {
      await spool.close();
      if (!keepSpool && spoolPath !== undefined) await unlink(spoolPath).catch(() => undefined);
    }
  }
}

/** Maps `items` with at most `limit` calls of `fn` in flight; results keep the input order. */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T, worker: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async (_, worker) => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, worker);
    }
  });
  await Promise.all(workers);
  return results;
}
