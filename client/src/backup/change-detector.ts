import { type FileUpsert, type FileVersion } from '@cairn/shared';
import { cacheEntry, type CacheEntry } from '../state/scan-cache.ts';
import type { ScannedEntry } from './scanner.ts';

/**
 * A path is unchanged when its kind, size, mtime, ctime and inode all match
 * what the server accepted last time (and, for a symlink, its target). ctime
 * catches a content change that restored the mtime, and chmod; the inode
 * catches a file replaced by another with the same times.
 */
export function isUnchanged(entry: ScannedEntry, cached: CacheEntry | undefined): boolean {
  return (
    cached !== undefined &&
    cached.kind === entry.kind &&
    cached.size === entry.size &&
    cached.mtimeMs === entry.mtimeMs &&
    cached.ctimeMs === entry.ctimeMs &&
    cached.ino === entry.ino &&
    (entry.kind !== 'symlink' || cached.linkTarget === entry.linkTarget)
  );
}

/**
 * Paths the server knows that this scan did not see, except below a prefix
 * the scan could not look into (a missing root, an unreadable directory):
 * those are kept, not deleted.
 */
export function deletedPaths(known: Iterable<string>, seen: ReadonlySet<string>, unseenPrefixes: readonly string[]): string[] {
  // Every entry that failed is a prefix of its own, so there may be many: look up each candidate's ancestors in a set.
  const unseen = new Set(unseenPrefixes);
  const deleted: string[] = [];
  for (const candidate of known) {
    if (seen.has(candidate)) continue;
    if (unseen.has('/') || isBelowAny(candidate, unseen)) continue;
    deleted.push(candidate);
  }
  return deleted.sort();
}

/** True when `candidate` or one of its ancestor directories is in `prefixes`. */
function isBelowAny(candidate: string, prefixes: ReadonlySet<string>): boolean {
  for (let end = candidate.length; end > 0; end = candidate.lastIndexOf('/', end - 1)) {
    if (prefixes.has(candidate.slice(0, end))) return true;
  }
  return false;
}

/** After a lost cache: true when the server's current version already says exactly this (it keeps whole milliseconds; a version stored as read while changing is not the same as a clean read), so no upsert is needed. */
export function sameAsServerVersion(upsert: FileUpsert, version: FileVersion | undefined): boolean {
  return (
    version !== undefined &&
    version.kind === upsert.kind &&
    version.sha256 === upsert.sha256 &&
    version.size === upsert.size &&
    version.mtimeMs === Math.trunc(upsert.mtimeMs) &&
    version.mode === upsert.mode &&
    (version.linkTarget ?? undefined) === upsert.linkTarget &&
    (version.uid ?? undefined) === upsert.uid &&
    (version.gid ?? undefined) === upsert.gid &&
    (version.hardlinkGroup ?? undefined) === upsert.hardlinkGroup &&
    (version.changedWhileRead ?? false) === (upsert.changedWhileRead ?? false)
  );
}

/**
 * The upsert and the cache entry for a path whose content (if any) the
 * server holds. `content` is what hashing measured, for a file; symlinks
 * and directories have none (a directory is sent with size 0: its size is
 * the filesystem's bookkeeping, and the server keeps 0 anyway).
 */
export function upsertOf(entry: ScannedEntry, content?: { sha256: string; size: number; mtimeMs: number; ctimeMs: number; ino: number; mode: number }): { upsert: FileUpsert; cached: CacheEntry } {
  const stat = content ?? entry;
  const sha256 = content?.sha256 ?? null;
  const owner = { uid: entry.uid, gid: entry.gid };
  const link = entry.kind === 'symlink' ? { linkTarget: entry.linkTarget ?? '' } : {};
  const group = entry.kind === 'file' && entry.hardlinkGroup !== undefined ? { hardlinkGroup: entry.hardlinkGroup } : {};
  return {
    upsert: {
      path: entry.path,
      kind: entry.kind,
      sha256,
      size: entry.kind === 'directory' ? 0 : stat.size,
      mtimeMs: stat.mtimeMs,
      mode: stat.mode,
      ...link,
      ...owner,
      ...group,
    },
    cached: cacheEntry({ kind: entry.kind, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, ino: stat.ino, mode: stat.mode, sha256, ...owner, ...link, ...group }),
  };
}

/** Splits `items` into consecutive slices of at most `size`. */
export function chunked<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/**
 * Groups uploads into requests of at most `maxParts` parts and about
 * `maxBytes` bytes; a part larger than `maxBytes` travels alone.
 */
export function uploadBatches<T extends { size: number }>(items: readonly T[], maxBytes: number, maxParts: number): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    if (current.length > 0 && (current.length >= maxParts || bytes + item.size > maxBytes)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += item.size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/**
 * Groups contents into assemble requests of about `maxBytes` of records
 * (`bytesOf` each), in order; a record larger than `maxBytes` travels alone.
 */
export function assembleBatches<T>(items: readonly T[], bytesOf: (item: T) => number, maxBytes: number): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = bytesOf(item);
    if (current.length > 0 && bytes + size > maxBytes) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
