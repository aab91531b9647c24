import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { FileKind } from '@cairn/shared';
import { writeFileAtomic } from './atomic-write.ts';

/** What the scan learns of one path from lstat (and readlink for symlinks). */
export interface FileStat {
  kind: FileKind;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  linkTarget?: string;
  /** A regular file with more than one link: the same key for every name of its inode. */
  hardlinkGroup?: string;
}

/** What the agent remembers of a path the server accepted: enough to skip it when nothing changed. */
export interface CacheEntry extends FileStat {
  /** Content hash; null for symlinks and directories. */
  sha256: string | null;
}

export type ScanCache = Map<string, CacheEntry>;

/**
 * A cache entry with every field present, always in the same order, and its
 * integers unboxed (`smallNumber`): 100,000 of them share one hidden class
 * instead of one each (decision 192). Every entry the agent keeps is made here.
 */
export function cacheEntry(e: CacheEntry): CacheEntry {
  return {
    kind: e.kind,
    size: smallNumber(e.size),
    mtimeMs: e.mtimeMs,
    ctimeMs: e.ctimeMs,
    ino: smallNumber(e.ino),
    mode: smallNumber(e.mode),
    sha256: e.sha256,
    uid: smallNumber(e.uid),
    gid: smallNumber(e.gid),
    linkTarget: e.linkTarget,
    hardlinkGroup: e.hardlinkGroup,
  };
}

/**
 * Numbers from `fs.Stats` are doubles; kept as they come, each is a boxed
 * number on the heap of its own. As an int32 (when it is one) V8 keeps it
 * in the object itself.
 */
export function smallNumber(n: number): number {
  return (n | 0) === n ? n | 0 : n;
}

const FORMAT = 'cairn-scan-cache';
/** 2: owners and hard-link groups (a version-1 cache is a lost cache: one resync, decision 55). */
const VERSION = 2;

/**
 * The cache file: one header line, then one JSON array per path
 * `[path, kind, size, mtimeMs, ctimeMs, ino, mode, sha256|null, uid, gid, linkTarget|null, hardlinkGroup?]`.
 * Line-based so it is written and read as a stream; tied to the client id so a
 * re-pointed agent never trusts another client's cache.
 */
export async function readScanCache(file: string, clientId: string): Promise<ScanCache | null> {
  const cache: ScanCache = new Map();
  const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let header = true;
  try {
    for await (const line of lines) {
      if (line === '') continue;
      if (header) {
        const parsed = JSON.parse(line) as { format?: string; version?: number; clientId?: string };
        if (parsed.format !== FORMAT || parsed.version !== VERSION || parsed.clientId !== clientId) return null;
        header = false;
        continue;
      }
      const row = JSON.parse(line) as [string, FileKind, number, number, number, number, number, string | null, number, number, string | null, string?];
      const [path, kind, size, mtimeMs, ctimeMs, ino, mode, sha256, uid, gid, linkTarget, hardlinkGroup] = row;
      cache.set(path, cacheEntry({ kind, size, mtimeMs, ctimeMs, ino, mode, sha256, uid, gid, linkTarget: linkTarget ?? undefined, hardlinkGroup }));
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    if (error instanceof SyntaxError) return null; // a damaged cache is a lost cache: resync from the server
    throw error;
  } finally {
    lines.close();
    stream.destroy();
  }
  return header ? null : cache;
}

export async function writeScanCache(file: string, clientId: string, cache: ScanCache): Promise<void> {
  await writeFileAtomic(file, async (write) => {
    await write(`${JSON.stringify({ format: FORMAT, version: VERSION, clientId, entries: cache.size })}\n`);
    for (const [path, e] of cache) {
      const row: unknown[] = [path, e.kind, e.size, e.mtimeMs, e.ctimeMs, e.ino, e.mode, e.sha256, e.uid, e.gid, e.linkTarget ?? null];
      if (e.hardlinkGroup !== undefined) row.push(e.hardlinkGroup);
      await write(`${JSON.stringify(row)}\n`);
    }
  });
}
