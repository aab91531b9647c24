import { mkdir, mkdtemp, readdir, rm, symlink, writeFile, lstat, readlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { restoreDestination } from '@cairn/shared';
import { ApiClient } from '../../src/net/api-client.ts';
import { createDirectory, finishDirectory, linkToWritten, restoreFile } from '../../src/restore/restore-command.ts';
import { prepareDestination, UnsafePathError } from '../../src/restore/restore-target.ts';
import { parseRestoreArgs } from '../../src/restore/restore-args.ts';

let base: string;
let target: string;
let outside: string;

beforeEach(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), 'cairn-restore-unit-'));
  target = path.join(base, 'target');
  outside = path.join(base, 'outside');
  await mkdir(target);
  await mkdir(outside);
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('restoreDestination (pure)', () => {
  it.each<[string, string | null]>([
    ['/etc/passwd', 'etc/passwd'],
    ['/a/../../../../etc/passwd', 'etc/passwd'],
    ['/with space/ünïcødé.txt', 'with space/ünïcødé.txt'],
    ['relative/path', null],
    ['/', null],
    ['/a\0b', null],
  ])('%s', (input, expected) => {
    const result = restoreDestination('/restore', input);
    expect(result).toBe(expected === null ? null : path.join('/restore', expected));
  });
});

describe('prepareDestination', () => {
  it('creates missing directories below the target', async () => {
    const destination = await prepareDestination(target, '/x/y/z.txt');
    expect(destination).toBe(path.join(target, 'x/y/z.txt'));
    expect((await lstat(path.join(target, 'x/y'))).isDirectory()).toBe(true);
  });

  it('refuses to go through a symlink planted in the target', async () => {
    await symlink(outside, path.join(target, 'data'));
    await expect(prepareDestination(target, '/data/secret.txt')).rejects.toBeInstanceOf(UnsafePathError);
    await expect(prepareDestination(target, '/data/deeper/secret.txt')).rejects.toThrow(/symlink inside the target/);
    expect(await readdir(outside)).toEqual([]);
  });

  it('refuses a planted symlink deeper down, too', async () => {
    await mkdir(path.join(target, 'a/b'), { recursive: true });
    await symlink('/', path.join(target, 'a/b/c'));
    await expect(prepareDestination(target, '/a/b/c/etc/passwd')).rejects.toThrow(/symlink/);
  });

  it('refuses a file where a directory is needed', async () => {
    await writeFile(path.join(target, 'f'), 'x');
    await expect(prepareDestination(target, '/f/inner.txt')).rejects.toThrow(/not a directory/);
  });
});

describe('restoreFile', () => {
  // Symlink versions need no download: the client is never asked for bytes here.
  const api = new ApiClient({ serverUrl: 'http://127.0.0.1:9' });
  const link = (p: string, linkTarget: string) => ({
    versionId: '1',
    path: p,
    kind: 'symlink' as const,
    sha256: null,
    size: linkTarget.length,
    mtimeMs: 1_600_000_000_000,
    mode: 0o120777,
    linkTarget,
    validFrom: new Date().toISOString(),
    validTo: null,
  });

  it('never writes through a symlink planted where a parent should be', async () => {
    await symlink(outside, path.join(target, 'evil'));
    await expect(restoreFile(api, target, link('/evil/planted', '/etc/passwd'), { force: true, owners: false }, () => {})).rejects.toThrow(/symlink/);
    expect(await readdir(outside)).toEqual([]);
  });

  it('replaces a planted symlink at the destination itself (with --force) instead of following it', async () => {
    await symlink(path.join(outside, 'victim'), path.join(target, 'name'));
    await restoreFile(api, target, link('/name', 'restored-target'), { force: true, owners: false }, () => {});
    expect(await readlink(path.join(target, 'name'))).toBe('restored-target');
    expect(await readdir(outside)).toEqual([]);
  });

  it('refuses to overwrite an existing file without --force', async () => {
    await writeFile(path.join(target, 'keep'), 'mine');
    await expect(restoreFile(api, target, link('/keep', 'x'), { force: false, owners: false }, () => {})).rejects.toThrow(/--force/);
  });
});

describe('directories and hard links in the target', () => {
  const options = { force: false, owners: false };
  const directory = (p: string, mode = 0o40750) => ({
    versionId: '1',
    path: p,
    kind: 'directory' as const,
    sha256: null,
    size: 0,
    mtimeMs: 1_000_000_000_000,
    mode,
    linkTarget: null,
    validFrom: new Date().toISOString(),
    validTo: null,
  });

  it('creates a directory owner-only, then gives it its mode and mtime', async () => {
    expect(await createDirectory(target, directory('/d', 0o40555), options)).toBe(true);
    expect((await lstat(path.join(target, 'd'))).mode & 0o7777).toBe(0o700);
    await finishDirectory(target, directory('/d', 0o40555), options);
    const stats = await lstat(path.join(target, 'd'));
    expect(stats.mode & 0o7777).toBe(0o555);
    expect(Math.trunc(stats.mtimeMs)).toBe(1_000_000_000_000);
  });

  it('uses an existing directory but leaves its metadata alone unless --force', async () => {
    await mkdir(path.join(target, 'there'));
    expect(await createDirectory(target, directory('/there'), options)).toBe(false);
    expect(await createDirectory(target, directory('/there'), { ...options, force: true })).toBe(true);
  });

  it('refuses a symlink or a file where a directory goes, and never follows one when finishing', async () => {
    await symlink(outside, path.join(target, 'link'));
    await expect(createDirectory(target, directory('/link'), options)).rejects.toThrow(/symlink inside the target/);
    await writeFile(path.join(target, 'file'), 'x');
    await expect(createDirectory(target, directory('/file'), options)).rejects.toThrow(/non-directory/);
    const before = (await lstat(outside)).mode;
    await expect(finishDirectory(target, directory('/link', 0o40700), options)).rejects.toThrow();
    expect((await lstat(outside)).mode).toBe(before);
  });

  it('links a later name to the inode it wrote, and refuses when that name was swapped meanwhile', async () => {
    const first = path.join(target, 'first');
    await writeFile(first, 'content');
    const written = { destination: first, dev: (await lstat(first)).dev, ino: (await lstat(first)).ino };
    const file = { ...directory('/sub/second'), kind: 'file' as const, sha256: 'a'.repeat(64), size: 7, mode: 0o100644 };
    expect(await linkToWritten(target, file, written, options)).toBe(true);
    expect((await lstat(path.join(target, 'sub/second'))).ino).toBe(written.ino);

    await rm(first);
    await writeFile(first, 'another file with the same name');
    await expect(linkToWritten(target, { ...file, path: '/third' }, written, options)).rejects.toThrow(/replaced/);
    expect((await readdir(target)).sort()).toEqual(['first', 'sub']);
  });
});

describe('parseRestoreArgs', () => {
  it.each<[string[], string | null]>([
    [['--target', '/tmp/r'], null],
    [['--target=/tmp/r', '--prefix', '/data', '--as-of', '2026-01-02T03:04:05Z', '--force'], null],
    [[], '--target DIR is required'],
    [['--target', '/r', '--prefix', 'relative'], '--prefix must be an absolute path'],
    [['--target', '/r', '--as-of', 'yesterday'], '--as-of must be an ISO time'],
    [['--target', '/r', '--server', 'http://s'], '--server and --token go together'],
    [['--target', '/r', '--bogus'], 'unknown option'],
  ])('%j', (argv, problem) => {
    const { args, problems } = parseRestoreArgs(argv);
    if (problem === null) {
      expect(problems).toEqual([]);
      expect(args?.target).toBeTruthy();
    } else expect(problems.join('\n')).toContain(problem);
  });
});
