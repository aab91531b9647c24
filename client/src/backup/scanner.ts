import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import fs from 'node:fs';
import { lstat, readlink } from 'node:fs/promises';
import * as fsWalk from '@nodelib/fs.walk';
import { errorMessage } from '../net/http-errors.ts';
import type { FileStat } from '../state/scan-cache.ts';
import { excludeMatcher } from './scan-roots.ts';

export interface ScannedEntry extends FileStat {
  path: string;
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

/** Directories read at once by the walker. */
const WALK_CONCURRENCY = 64;

/** fast-glob's fs adapter calls readdir either as (path, cb) or (path, options, cb). */
type ReaddirCallback = (error: NodeJS.ErrnoException | null, entries: unknown[]) => void;

/**
 * Walks the roots with @nodelib/fs.walk, the walker inside fast-glob, used
 * directly: fast-glob filters every entry through a glob regex in which `*`
 * never matches a newline, so a file (or a whole directory) with a newline in
 * its name would silently not be backed up. lstat only
 * (`followSymbolicLinks: false`); symlinks and special files reach us to be
 * recorded or skipped by name. Directories are walked and recorded; an
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
    await record(root, rootStats, result);
    onEntry?.();
    if (!rootStats.isDirectory()) continue;
    const excluded = excludeMatcher(root, excludes);
    const relative = (entryPath: string) => entryPath.slice(root === '/' ? 1 : root.length + 1);
    const settings = new fsWalk.Settings({
      stats: true,
      followSymbolicLinks: false,
      pathSegmentSeparator: '/',
      // Bounded: unbounded, every directory's lstat calls are queued at once and their
      // fs.Stats all live together (400 MB of RSS for 100,000 files instead of 140).
      concurrency: WALK_CONCURRENCY,
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
    // Entries are recorded as they stream in, so each fs.Stats is garbage at once; symlinks
    // need a readlink and are recorded after the walk. ('close' never comes: wait for 'end'.)
    const links: fsWalk.Entry[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = fsWalk.walkStream(root, settings);
      stream.on('data', (entry: fsWalk.Entry) => {
        if (!entry.stats) return;
        if (entry.stats.isSymbolicLink()) links.push(entry);
        else recordEntry(entry.path, entry.stats, result);
      });
      stream.once('error', reject);
      stream.once('end', () => resolve());
    });
    for (const link of links) if (link.stats) await record(link.path, link.stats, result);
  }
  return result;
}

async function record(filePath: string, stats: Stats, result: ScanResult): Promise<void> {
  if (!stats.isSymbolicLink()) {
    recordEntry(filePath, stats, result);
    return;
  }
  try {
    result.entries.push({ ...statFields(filePath, stats), kind: 'symlink', linkTarget: await readlink(filePath) });
  } catch (error) {
    result.errors.push({ path: filePath, message: `cannot read symlink: ${errorMessage(error)}` });
  }
}

/**
 * Files, directories and special files (symlinks go through `record`).
 * Directories are recorded as entries of their own (mode, mtime, owner) so
 * restore can bring back empty ones and their metadata; `/` itself is not a
 * storable path, so a root of `/` is walked but not recorded.
 */
function recordEntry(filePath: string, stats: Stats, result: ScanResult): void {
  if (stats.isFile()) result.entries.push({ ...statFields(filePath, stats), kind: 'file' });
  else if (stats.isDirectory()) {
    if (filePath !== '/') result.entries.push({ ...statFields(filePath, stats), kind: 'directory' });
  } else if (!stats.isSymbolicLink()) result.skipped.push({ path: filePath, message: `skipped ${specialKind(stats)}` });
}

function statFields(filePath: string, stats: Stats): Omit<ScannedEntry, 'kind'> {
  const fields: Omit<ScannedEntry, 'kind'> = {
    path: filePath,
    size: stats.size,
    mtimeMs: stats.mtimeMs,
    ctimeMs: stats.ctimeMs,
    ino: stats.ino,
    mode: stats.mode,
    uid: stats.uid,
    gid: stats.gid,
  };
  if (stats.isFile() && stats.nlink > 1) fields.hardlinkGroup = hardlinkGroupOf(stats.dev, stats.ino);
  return fields;
}

/**
 * The hard-link key of an inode: a hash of (device, inode), so every name of
 * one inode gets the same key in every scan while the inode lives, and the
 * server gets an opaque token instead of this machine's inode numbers.
 */
function hardlinkGroupOf(dev: number, ino: number): string {
  return createHash('sha256').update(`${dev}:${ino}`).digest('hex').slice(0, 32);
}

function specialKind(stats: Stats): string {
  if (stats.isFIFO()) return 'FIFO';
  if (stats.isSocket()) return 'socket';
  if (stats.isCharacterDevice()) return 'character device';
  if (stats.isBlockDevice()) return 'block device';
  return 'special file';
}
