import path from 'node:path';

/**
 * A canonical backup path, as the protocol carries it (decision 44): `/`
 * followed by one or more segments joined by `/`, none of them empty, `.` or
 * `..`, no trailing slash, and only text PostgreSQL can hold (no NUL, no
 * unpaired surrogate; see text.ts). The root itself is not a file's path. A
 * JSON-Schema `pattern`, matched with the `u` flag.
 */
export const CANONICAL_PATH_PATTERN = '^(?:/(?!\\.\\.?(?:/|$))[^/\\u0000\\uD800-\\uDFFF]+)+$';

/** CANONICAL_PATH_PATTERN or the root `/`: a prefix to list below. */
export const CANONICAL_PREFIX_PATTERN = '^(?:/|(?:/(?!\\.\\.?(?:/|$))[^/\\u0000\\uD800-\\uDFFF]+)+)$';

/** What a schema error says when a field breaks CANONICAL_PATH_PATTERN (or CANONICAL_PREFIX_PATTERN). */
export const CANONICAL_PATH_RULE =
  'must be a canonical absolute path: "/" and segments that are not empty, "." or "..", no trailing slash, ' +
  'no NUL (\\u0000) or unpaired surrogate characters';

const CANONICAL_PATH = new RegExp(CANONICAL_PATH_PATTERN, 'u');

/** True when `text` matches CANONICAL_PATH_PATTERN and is at most `maxBytes` bytes of UTF-8. */
export function isCanonicalBackupPath(text: string, maxBytes = 4096): boolean {
  return CANONICAL_PATH.test(text) && Buffer.byteLength(text, 'utf8') <= maxBytes;
}

/**
 * What a person typed as a path (a monitored path, a restore prefix), made
 * canonical: absolute, POSIX separators, no `.`/`..` segments, no trailing
 * slash. Returns null for paths that cannot be stored (relative, NUL bytes,
 * too long). Paths on the wire are never rewritten like this: the server
 * refuses what is not already canonical.
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
