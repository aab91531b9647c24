import path from 'node:path';
import picomatch from 'picomatch';
import { isUnderPrefix, normaliseBackupPath } from '@cairn/shared';

/**
 * The roots to walk: the union of local and central monitored paths,
 * normalised, with any path below another root dropped (it is walked anyway).
 */
export function effectiveRoots(paths: readonly string[]): { roots: string[]; invalid: string[] } {
  const valid = new Set<string>();
  const invalid: string[] = [];
  for (const candidate of paths) {
    const normalised = normaliseBackupPath(candidate);
    if (normalised === null) invalid.push(candidate);
    else valid.add(normalised);
  }
  const sorted = [...valid].sort((a, b) => a.length - b.length || (a < b ? -1 : 1));
  const roots: string[] = [];
  for (const candidate of sorted) {
    if (!roots.some((root) => isUnderPrefix(candidate, root))) roots.push(candidate);
  }
  return { roots: roots.sort(), invalid };
}

/**
 * Glob patterns (relative to `root`) for the configured
 * excludes. A pattern without a slash matches a name anywhere (`*.tmp`,
 * `node_modules`); an absolute one applies below its own root only; any other
 * is relative to each root. A matched directory is excluded with everything
 * under it.
 */
export function ignorePatterns(root: string, excludes: readonly string[]): string[] {
  const patterns = new Set<string>();
  for (const raw of excludes) {
    let pattern = raw.trim();
    while (pattern.length > 1 && pattern.endsWith('/')) pattern = pattern.slice(0, -1);
    if (pattern === '' || pattern === '/') continue;
    if (pattern.startsWith('/**/')) pattern = pattern.slice(1);
    if (pattern.startsWith('/')) {
      const normalised = path.posix.normalize(pattern);
      if (normalised === root) {
        patterns.add('**');
        continue;
      }
      if (!isUnderPrefix(normalised, root)) continue;
      pattern = path.posix.relative(root, normalised);
    } else if (!pattern.includes('/')) {
      pattern = `**/${pattern}`;
    }
    patterns.add(pattern);
    if (!pattern.endsWith('/**')) patterns.add(`${pattern}/**`);
  }
  return [...patterns];
}

/**
 * A test for paths relative to `root`: true when an exclude matches. The
 * regexes get the `s` flag so that `*` also matches a newline in a name
 * (glob matchers leave such names out otherwise).
 */
export function excludeMatcher(root: string, excludes: readonly string[]): (relativePath: string) => boolean {
  const regexes = ignorePatterns(root, excludes).map((pattern) => picomatch.makeRe(pattern, { dot: true, flags: 's' }));
  if (regexes.length === 0) return () => false;
  return (relativePath) => regexes.some((re) => re.test(relativePath));
}
