import type { Stats } from 'node:fs';
import fs from 'node:fs';
import { lstat, readlink } from 'node:fs/promises';
import path from 'node:path';
import fg from 'fast-glob';
import type { FileKind } from '@cairn/shared';
import { errorMessage } from '../net/http-errors.ts';
import { ignorePatterns } from './scan-roots.ts';

export interface ScannedEntry {
  path: string;
  kind: FileKind;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  mode: number;
  linkTarget?: string;
}

export interface ScanProblem {
  path: string;
  message: string;
}

export interface ScanResult {
  entries: ScannedEntry[];
  /** FIFOs, sockets and devices: not backed up, each logged. */
  skipped: ScanProblem[];
  /** Unreadable directories and missing roots. */
  errors: ScanProblem[];
  /**
   * Paths below which this scan saw nothing for a bad reason (missing root,
   * unreadable directory): files recorded there must not be taken as deleted.
   */
  unseenPrefixes: string[];
}

/** fast-glob's fs adapter calls readdir either as (path, cb) or (path, options, cb). */
type ReaddirCallback = (error: NodeJS.ErrnoException | null, entries: unknown[]) => void;

/**
 * Walks the roots with fast-glob: lstat only (`followSymbolicLinks: false`),
 * `onlyFiles: false` so symlinks and special files reach us to be recorded or
 * skipped by name (fast-glob's onlyFiles would silently drop symlinks).
 * Directories are walked, not recorded. A directory that cannot be read is
 * reported and the walk goes on.
 */
export async function scanRoots(roots: readonly string[], excludes: readonly string[], onEntry?: () => void): Promise<ScanResult> {
  const result: ScanResult = { entries: [], skipped: [], errors: [], unseenPrefixes: [] };
  const reportUnreadable = (directory: string, error: NodeJS.ErrnoException) => {
    result.errors.push({ path: directory, message: `cannot read directory: ${error.code ?? error.message}` });
    result.unseenPrefixes.push(directory);
  };
  const readdir = (directory: string, ...rest: unknown[]) => {
    const callback = rest[rest.length - 1] as ReaddirCallback;
    const wrapped: ReaddirCallback = (error, entries) => {
      if (error && error.code !== 'ENOENT' && error.code !== 'ENOTDIR') {
        reportUnreadable(directory, error);
        callback(null, []);
        return;
      }
      callback(error, entries);
    };
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- forwards fs.readdir's overloaded arguments unchanged
    (fs.readdir as any)(directory, ...rest.slice(0, -1), wrapped);
  };

  for (const root of roots) {
    let rootStats: Stats;
    try {
      rootStats = await lstat(root);
    } catch (error) {
      result.errors.push({ path: root, message: `monitored path not readable: ${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}` });
      result.unseenPrefixes.push(root);
      continue;
    }
    if (!rootStats.isDirectory()) {
      await record(root, rootStats, result);
      onEntry?.();
      continue;
    }
    const stream = fg.stream('**', {
      cwd: root,
      dot: true,
      onlyFiles: false,
      followSymbolicLinks: false,
      stats: true,
      unique: false,
      ignore: ignorePatterns(root, excludes),
      fs: { readdir: readdir as unknown as typeof fs.readdir },
    });
    for await (const item of stream) {
      const entry = item as unknown as { path: string; stats: Stats };
      await record(path.posix.join(root, entry.path), entry.stats, result);
      onEntry?.();
    }
  }
  return result;
}

async function record(filePath: string, stats: Stats, result: ScanResult): Promise<void> {
  const base = { path: filePath, size: stats.size, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs, ino: stats.ino, mode: stats.mode };
  if (stats.isFile()) {
    result.entries.push({ ...base, kind: 'file' });
  } else if (stats.isSymbolicLink()) {
    try {
      result.entries.push({ ...base, kind: 'symlink', linkTarget: await readlink(filePath) });
    } catch (error) {
      result.errors.push({ path: filePath, message: `cannot read symlink: ${errorMessage(error)}` });
    }
  } else if (!stats.isDirectory()) {
    result.skipped.push({ path: filePath, message: `skipped ${specialKind(stats)}` });
  }
}

function specialKind(stats: Stats): string {
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isSocket()) return 'socket';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  return 'special file';
}
