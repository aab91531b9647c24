import type { Stats } from 'node:fs';
import { lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fsPath, restoreDestination } from '@cairn/shared';

/** Restoring this path would write outside the target or through a symlink; refused. */
export class UnsafePathError extends Error {
  readonly backupPath: string;
  constructor(backupPath: string, reason: string) {
    super(`${backupPath}: refused, ${reason}`);
    this.backupPath = backupPath;
    this.name = 'UnsafePathError';
  }
}

/** lstat of a path's text spelling (decision 41), or null when nothing is there. */
export async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await lstat(fsPath(p));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * Where `backupPath` lands under `targetRoot` (absolute, already created),
 * after making sure nothing on the way is a symlink or a non-directory:
 * every existing component between the target and the file is checked with
 * lstat, and missing ones are created as real directories. The last
 * component is returned unchecked; the writer replaces it by rename, which
 * never follows a symlink.
 */
export async function prepareDestination(targetRoot: string, backupPath: string): Promise<string> {
  const destination = restoreDestination(targetRoot, backupPath);
  if (destination === null) throw new UnsafePathError(backupPath, 'it would land outside the target');
  const relative = path.relative(targetRoot, destination);
  const parts = relative.split(path.sep);
  let current = targetRoot;
  for (const part of parts.slice(0, -1)) {
    current = path.join(current, part);
    const stats = await lstatOrNull(current);
    if (stats === null) {
      await mkdir(fsPath(current), { mode: 0o755 }).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
        const again = await lstat(fsPath(current));
        if (!again.isDirectory() || again.isSymbolicLink()) throw new UnsafePathError(backupPath, `${current} appeared as a non-directory`);
      });
    } else if (stats.isSymbolicLink()) {
      throw new UnsafePathError(backupPath, `${current} is a symlink inside the target`);
    } else if (!stats.isDirectory()) {
      throw new UnsafePathError(backupPath, `${current} is not a directory`);
    }
  }
  return destination;
}
