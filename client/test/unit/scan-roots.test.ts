import { describe, expect, it } from 'vitest';
import { effectiveRoots, ignorePatterns } from '../../src/backup/scan-roots.ts';

describe('effectiveRoots', () => {
  it.each<[string, string[], string[], string[]]>([
    ['local and central paths are united', ['/data', '/data', '/etc'], ['/data', '/etc'], []],
    ['a path below another root is dropped', ['/data', '/data/db', '/etc'], ['/data', '/etc'], []],
    ['a sibling with a common prefix stays', ['/data', '/database'], ['/data', '/database'], []],
    ['paths are normalised', ['/data/./x/../', '//etc//'], ['/data', '/etc'], []],
    ['relative paths are refused', ['data', '/ok'], ['/ok'], ['data']],
    ['the root covers everything', ['/', '/data'], ['/'], []],
  ])('%s', (_name, input, roots, invalid) => {
    expect(effectiveRoots(input)).toEqual({ roots, invalid });
  });
});

describe('ignorePatterns', () => {
  it.each<[string, string, string[], string[]]>([
    ['a bare name matches anywhere, with its contents', '/data', ['node_modules'], ['**/node_modules', '**/node_modules/**']],
    ['a bare glob matches anywhere', '/data', ['*.tmp'], ['**/*.tmp', '**/*.tmp/**']],
    ['an absolute pattern below the root becomes relative', '/data', ['/data/cache'], ['cache', 'cache/**']],
    ['an absolute pattern elsewhere does not apply', '/data', ['/var/cache'], []],
    ['an absolute pattern naming the root excludes all of it', '/data', ['/data'], ['**']],
    ['a relative path pattern applies below each root', '/data', ['logs/*.log'], ['logs/*.log', 'logs/*.log/**']],
    ['a leading /**/ is a bare anywhere pattern', '/data', ['/**/.cache'], ['**/.cache', '**/.cache/**']],
    ['trailing slashes and blanks are ignored', '/data', ['tmp/', '  '], ['**/tmp', '**/tmp/**']],
    ['a pattern already ending in /** is not doubled', '/data', ['build/**'], ['build/**']],
  ])('%s', (_name, root, excludes, expected) => {
    expect(ignorePatterns(root, excludes)).toEqual(expected);
  });
});
