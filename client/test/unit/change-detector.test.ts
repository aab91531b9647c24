import { describe, expect, it } from 'vitest';
import type { FileUpsert, FileVersion } from '@cairn/shared';
import { chunked, deletedPaths, isUnchanged, sameAsServerVersion, uploadBatches, upsertOf } from '../../src/backup/change-detector.ts';
import type { ScannedEntry } from '../../src/backup/scanner.ts';
import type { CacheEntry } from '../../src/state/scan-cache.ts';

const scanned: ScannedEntry = { path: '/data/a.txt', kind: 'file', size: 10, mtimeMs: 1000.5, ctimeMs: 2000.25, ino: 42, mode: 0o100644, uid: 1000, gid: 100 };
const cached: CacheEntry = { kind: 'file', size: 10, mtimeMs: 1000.5, ctimeMs: 2000.25, ino: 42, mode: 0o100644, uid: 1000, gid: 100, sha256: 'a'.repeat(64) };

describe('isUnchanged', () => {
  it.each<[string, Partial<ScannedEntry> | null, Partial<CacheEntry> | null, boolean]>([
    ['identical size, mtime, ctime and inode', {}, {}, true],
    ['not in the cache', {}, null, false],
    ['size differs', { size: 11 }, {}, false],
    ['mtime differs', { mtimeMs: 1001 }, {}, false],
    ['ctime differs (content rewritten, mtime restored; or chmod)', { ctimeMs: 2001 }, {}, false],
    ['inode differs (file replaced)', { ino: 43 }, {}, false],
    ['kind differs (file became a symlink)', { kind: 'symlink', linkTarget: 'x' }, {}, false],
    ['mode alone does not count (chmod moves ctime)', { mode: 0o100600 }, {}, true],
    ['symlink with the same target', { kind: 'symlink', linkTarget: '../b' }, { kind: 'symlink', sha256: null, linkTarget: '../b' }, true],
    ['symlink re-pointed', { kind: 'symlink', linkTarget: '../c' }, { kind: 'symlink', sha256: null, linkTarget: '../b' }, false],
    ['directory untouched', { kind: 'directory', size: 4096 }, { kind: 'directory', size: 4096, sha256: null }, true],
    ['directory with a name added or removed (mtime moves)', { kind: 'directory', size: 4096, mtimeMs: 1200 }, { kind: 'directory', size: 4096, sha256: null }, false],
    ['directory chmod or chown (ctime moves)', { kind: 'directory', size: 4096, ctimeMs: 2100 }, { kind: 'directory', size: 4096, sha256: null }, false],
    ['a directory replaced a file', { kind: 'directory' }, {}, false],
  ])('%s', (_name, entryPatch, cachePatch, expected) => {
    const entry = { ...scanned, ...entryPatch };
    const cache = cachePatch === null ? undefined : { ...cached, ...cachePatch };
    expect(isUnchanged(entry, cache)).toBe(expected);
  });
});

describe('deletedPaths', () => {
  it.each<[string, string[], string[], string[], string[]]>([
    ['nothing vanished', ['/a', '/b'], ['/a', '/b'], [], []],
    ['a vanished file is deleted', ['/a', '/b'], ['/a'], [], ['/b']],
    ['files under an unreadable directory are kept', ['/d/x', '/d/y', '/e'], [], ['/d'], ['/e']],
    ['a prefix does not cover a sibling with a longer name', ['/d/x', '/dd/x'], [], ['/d'], ['/dd/x']],
    ['a missing root keeps everything below it', ['/mnt/usb/a'], [], ['/mnt/usb'], []],
    ['result is sorted', ['/z', '/a', '/m'], [], [], ['/a', '/m', '/z']],
    ['a failed entry keeps only itself, its siblings go', ['/d/bad', '/d/gone'], [], ['/d/bad'], ['/d/gone']],
    ['a failed directory entry keeps what is below it', ['/d/bad/x/y', '/d/badly'], [], ['/d/bad'], ['/d/badly']],
    ['an unseen root of / keeps everything', ['/a', '/b/c'], [], ['/'], []],
  ])('%s', (_name, known, seen, unseen, expected) => {
    expect(deletedPaths(known, new Set(seen), unseen)).toEqual(expected);
  });
});

describe('sameAsServerVersion', () => {
  const upsert: FileUpsert = { path: '/a', kind: 'file', sha256: 'b'.repeat(64), size: 3, mtimeMs: 1234.9, mode: 0o100644 };
  const version: FileVersion = {
    versionId: '1',
    path: '/a',
    kind: 'file',
    sha256: 'b'.repeat(64),
    size: 3,
    mtimeMs: 1234,
    mode: 0o100644,
    linkTarget: null,
    validFrom: new Date(0).toISOString(),
    validTo: null,
  };
  it.each<[string, Partial<FileVersion> | null, boolean]>([
    ['same content, size, whole-ms mtime and mode', {}, true],
    ['no server version', null, false],
    ['other content', { sha256: 'c'.repeat(64) }, false],
    ['other mtime', { mtimeMs: 1235 }, false],
    ['other mode', { mode: 0o100600 }, false],
    ['neither names an owner (null on the server, absent in the upsert)', { uid: null, gid: null }, true],
    ['the server version was stored as read while changing, this read was clean', { changedWhileRead: true }, false],
  ])('%s', (_name, patch, expected) => {
    expect(sameAsServerVersion(upsert, patch === null ? undefined : { ...version, ...patch })).toBe(expected);
  });

  const owned: FileUpsert = { ...upsert, uid: 1000, gid: 100, hardlinkGroup: 'g1' };
  it.each<[string, Partial<FileVersion>, boolean]>([
    ['same owner and hard-link group', { uid: 1000, gid: 100, hardlinkGroup: 'g1' }, true],
    ['owner unknown on the server', { uid: null, gid: null, hardlinkGroup: 'g1' }, false],
    ['other owner', { uid: 0, gid: 100, hardlinkGroup: 'g1' }, false],
    ['other group', { uid: 1000, gid: 0, hardlinkGroup: 'g1' }, false],
    ['not a hard link on the server', { uid: 1000, gid: 100, hardlinkGroup: null }, false],
  ])('with owners: %s', (_name, patch, expected) => {
    expect(sameAsServerVersion(owned, { ...version, ...patch })).toBe(expected);
  });
});

describe('upsertOf', () => {
  const hashed = { sha256: 'd'.repeat(64), size: 12, mtimeMs: 1500.5, ctimeMs: 2500.5, ino: 42, mode: 0o100640 };
  it('a file takes its stats from what was hashed, owner and hard-link group from the scan', () => {
    const { upsert, cached: entry } = upsertOf({ ...scanned, hardlinkGroup: 'g1' }, hashed);
    expect(upsert).toEqual({ path: '/data/a.txt', kind: 'file', sha256: hashed.sha256, size: 12, mtimeMs: 1500.5, mode: 0o100640, uid: 1000, gid: 100, hardlinkGroup: 'g1' });
    expect(entry).toEqual({ kind: 'file', size: 12, mtimeMs: 1500.5, ctimeMs: 2500.5, ino: 42, mode: 0o100640, uid: 1000, gid: 100, sha256: hashed.sha256, hardlinkGroup: 'g1' });
  });

  it('a directory has no content and size 0 on the wire, its real size in the cache', () => {
    const { upsert, cached: entry } = upsertOf({ ...scanned, path: '/data', kind: 'directory', size: 4096, mode: 0o40750 });
    expect(upsert).toEqual({ path: '/data', kind: 'directory', sha256: null, size: 0, mtimeMs: 1000.5, mode: 0o40750, uid: 1000, gid: 100 });
    expect(entry).toMatchObject({ kind: 'directory', size: 4096, sha256: null });
  });

  it('a symlink keeps its target', () => {
    const { upsert } = upsertOf({ ...scanned, kind: 'symlink', size: 4, mode: 0o120777, linkTarget: '../b' });
    expect(upsert).toEqual({ path: '/data/a.txt', kind: 'symlink', sha256: null, size: 4, mtimeMs: 1000.5, mode: 0o120777, linkTarget: '../b', uid: 1000, gid: 100 });
  });
});

describe('sameAsServerVersion and changedWhileRead', () => {
  const upsert: FileUpsert = { path: '/data/a.txt', kind: 'file', sha256: 'a'.repeat(64), size: 10, mtimeMs: 1234.9, mode: 0o100644 };
  const version: FileVersion = {
    versionId: '1', path: '/data/a.txt', kind: 'file', sha256: 'a'.repeat(64), size: 10, mtimeMs: 1234, mode: 0o100644, linkTarget: null,
    validFrom: '2026-01-01T00:00:00.000Z', validTo: null,
  };
  it('a version stored as read while changing matches an upsert that says so', () => {
    expect(sameAsServerVersion({ ...upsert, changedWhileRead: true }, { ...version, changedWhileRead: true })).toBe(true);
    expect(sameAsServerVersion({ ...upsert, changedWhileRead: true }, version)).toBe(false);
  });
});

describe('batching', () => {
  it('chunks keep order and size', () => {
    expect(chunked([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(chunked([], 3)).toEqual([]);
  });

  it.each<[string, number[], number, number, number[][]]>([
    ['many small files share a request', [1, 1, 1], 10, 100, [[1, 1, 1]]],
    ['the byte budget splits', [4, 4, 4], 10, 100, [[4, 4], [4]]],
    ['the part count splits', [1, 1, 1], 10, 2, [[1, 1], [1]]],
    ['a file larger than the budget travels alone', [1, 50, 1], 10, 100, [[1], [50], [1]]],
    ['empty files still count as parts', [0, 0, 0], 10, 2, [[0, 0], [0]]],
  ])('%s', (_name, sizes, maxBytes, maxParts, expected) => {
    const batches = uploadBatches(sizes.map((size) => ({ size })), maxBytes, maxParts);
    expect(batches.map((b) => b.map((i) => i.size))).toEqual(expected);
  });
});
