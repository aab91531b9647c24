import type { FileVersion } from '@cairn/shared';

/** A file restored as another name of an inode this restore already wrote. */
export interface HardLinkFollower {
  file: FileVersion;
  /** The group member written with its content (the first by path). */
  leader: FileVersion;
}

/**
 * The order a restore works in, so nothing is written below a symlink the
 * restore made and no directory's mtime is moved after it was set:
 * 1. `directories`, parents before children (path order), created;
 * 2. `files` written with their content;
 * 3. `followers`, each hard-linked to its leader (one of `files`);
 * 4. `symlinks`;
 * 5. `directories` again, deepest first (`directoriesDeepestFirst`), given
 *    their owner, mode and mtime after everything inside them exists.
 */
export interface RestorePlan {
  directories: FileVersion[];
  files: FileVersion[];
  followers: HardLinkFollower[];
  symlinks: FileVersion[];
  directoriesDeepestFirst: FileVersion[];
}

const byPath = (a: FileVersion, b: FileVersion) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/**
 * Sorts versions into a plan. Files of one hard-link group with the same
 * content become one inode: the first by path is written, the others linked
 * to it. Members with different content (the file changed between the
 * backups that saw each name) are restored as separate files, because one
 * inode cannot hold both.
 */
export function planRestore(versions: readonly FileVersion[]): RestorePlan {
  const sorted = [...versions].sort(byPath);
  const directories = sorted.filter((v) => v.kind === 'directory');
  const files: FileVersion[] = [];
  const followers: HardLinkFollower[] = [];
  const leaders = new Map<string, FileVersion>();
  for (const version of sorted) {
    if (version.kind !== 'file') continue;
    const key = version.hardlinkGroup ? `${version.hardlinkGroup}\0${version.sha256 ?? ''}` : null;
    const leader = key === null ? undefined : leaders.get(key);
    if (leader) followers.push({ file: version, leader });
    else {
      if (key !== null) leaders.set(key, version);
      files.push(version);
    }
  }
  // A path's descendants sort after it, so reversed path order puts every directory after everything below it.
  return { directories, files, followers, symlinks: sorted.filter((v) => v.kind === 'symlink'), directoriesDeepestFirst: [...directories].reverse() };
}
