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
  linkTarget?: string;
}

/** What the agent remembers of a path the server accepted: enough to skip it when nothing changed. */
export interface CacheEntry extends FileStat {
  /** Content hash; null for symlinks. */
  sha256: string | null;
}

export type ScanCache = Map<string, CacheEntry>;

const FORMAT = 'cairn-scan-cache';
const VERSION = 1;

/**
 * The cache file: one header line, then one JSON array per path
 * `[path, kind, size, mtimeMs, ctimeMs, ino, mode, sha256|null, linkTarget?]`.
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
      const row = JSON.parse(line) as [string, FileKind, number, number, number, number, number, string | null, string?];
      const [path, kind, size, mtimeMs, ctimeMs, ino, mode, sha256, linkTarget] = row;
      cache.set(path, { kind, size, mtimeMs, ctimeMs, ino, mode, sha256, ...(linkTarget === undefined ? {} : { linkTarget }) });
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
      const row: unknown[] = [path, e.kind, e.size, e.mtimeMs, e.ctimeMs, e.ino, e.mode, e.sha256];
      if (e.linkTarget !== undefined) row.push(e.linkTarget);
      await write(`${JSON.stringify(row)}\n`);
    }
  });
}
