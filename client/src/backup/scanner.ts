import type { Stats } from 'node:fs';
import fs from 'node:fs';
import { lstat, readlink } from 'node:fs/promises';
import * as fsWalk from '@nodelib/fs.walk';
import type { FileKind } from '@cairn/shared';
import { errorMessage } from '../net/http-errors.ts';
import { excludeMatcher } from './scan-roots.ts';

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
 * Walks the roots with @nodelib/fs.walk, the walker inside fast-glob, used
 * directly: fast-glob filters every entry through a glob regex in which `*`
 * never matches a newline, so a file (or a whole directory) with a newline in
 * its name would silently not be backed up. lstat only
 * (`followSymbolicLinks: false`); symlinks and special files reach us to be
 * recorded or skipped by name. Directories are walked, not recorded; an
 * excluded directory is not entered. A directory that cannot be read is
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
    const excluded = excludeMatcher(root, excludes);
    const relative = (entryPath: string) => entryPath.slice(root === '/' ? 1 : root.length + 1);
    const settings = new fsWalk.Settings({
      stats: true,
      followSymbolicLinks: false,
      pathSegmentSeparator: '/',
      fs: { readdir: readdir as unknown as typeof fs.readdir },
      deepFilter: (entry) => !excluded(relative(entry.path)),
      entryFilter: (entry) => {
        const keep = !excluded(relative(entry.path));
        if (keep) onEntry?.();
        return keep;
      },
      // A path that vanished between listing and lstat is simply gone.
      errorFilter: (error) => error.code === 'ENOENT' || error.code === 'ENOTDIR',
    });
    // The callback form: the stream form never emits 'close', which `for await` waits for.
    const entries = await new Promise<fsWalk.Entry[]>((resolve, reject) =>
      fsWalk.walk(root, settings, (error, found) => (error ? reject(error) : resolve(found))),
    );
    for (const entry of entries) if (entry.stats) await record(entry.path, entry.stats, result);
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
