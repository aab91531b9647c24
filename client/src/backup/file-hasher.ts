import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { fsPath } from '@cairn/shared';

/** Reads of 1 MiB: hashing speed halves with 64 KiB stream chunks. */
export const READ_BYTES = 1 << 20;

/** The file changed between being seen and being read, or while being read. */
export class FileChangedError extends Error {
  constructor(readonly path: string, detail: string) {
    super(`${path} changed while being read (${detail})`);
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
 */
export async function hashFile(filePath: string, buffer: Buffer): Promise<HashedFile> {
  const handle = await openNoFollow(filePath);
  try {
    const before = await handle.stat();
    if (!before.isFile()) throw new FileChangedError(filePath, 'no longer a regular file');
    const hash = createHash('sha256');
    let total = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      total += bytesRead;
    }
    const after = await handle.stat();
    if (total !== before.size || after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
      throw new FileChangedError(filePath, `size ${before.size} -> ${after.size}, read ${total}`);
    }
    return { sha256: hash.digest('hex'), size: total, mtimeMs: before.mtimeMs, ctimeMs: before.ctimeMs, ino: before.ino, mode: before.mode };
  } finally {
    await handle.close();
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
