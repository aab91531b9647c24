import path from 'node:path';

/**
 * Normalises a path as stored in a backup: absolute, POSIX separators, no
 * `.`/`..` segments, no trailing slash. Returns null for paths that cannot be
 * stored (relative, NUL bytes, too long).
 */
export function normaliseBackupPath(input: string, maxBytes = 4096): string | null {
  if (input.includes('\0')) return null;
  // A backslash is an ordinary character in POSIX file names: never a separator here.
  if (!input.startsWith('/')) return null;
  const normalised = path.posix.normalize(input);
  const trimmed = normalised.length > 1 && normalised.endsWith('/') ? normalised.slice(0, -1) : normalised;
  if (Buffer.byteLength(trimmed, 'utf8') > maxBytes) return null;
  return trimmed;
}

/**
 * Where a backed-up absolute path lands inside a restore target, or null when
 * it would escape the target (the caller must still refuse symlinks that
 * already exist inside the target).
 */
export function restoreDestination(targetDir: string, backupPath: string): string | null {
  const normalised = normaliseBackupPath(backupPath);
  if (normalised === null || normalised === '/') return null;
  const root = path.resolve(targetDir);
  const destination = path.resolve(root, '.' + normalised);
  const relative = path.relative(root, destination);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) return null;
  return destination;
}

/** True when `candidate` equals `prefix` or lies below it (both normalised). */
export function isUnderPrefix(candidate: string, prefix: string): boolean {
  if (prefix === '/' || prefix === '') return true;
  return candidate === prefix || candidate.startsWith(prefix.endsWith('/') ? prefix : prefix + '/');
}
