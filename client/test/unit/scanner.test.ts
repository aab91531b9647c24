import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { link, mkdir, mkdtemp, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashFile, mapConcurrent, READ_BYTES } from '../../src/backup/file-hasher.ts';
import { scanRoots } from '../../src/backup/scanner.ts';
import { readScanCache, writeScanCache, type ScanCache } from '../../src/state/scan-cache.ts';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'cairn-scan-unit-'));
  await mkdir(path.join(root, 'tree/nested/deeper'), { recursive: true });
  await mkdir(path.join(root, 'tree/node_modules/pkg'), { recursive: true });
  await writeFile(path.join(root, 'tree/a.txt'), 'alpha');
  await writeFile(path.join(root, 'tree/nested/deeper/b with space ü.txt'), 'beta');
  await writeFile(path.join(root, 'tree/.hidden'), 'h');
  await writeFile(path.join(root, 'tree/skip.tmp'), 'tmp');
  await writeFile(path.join(root, 'tree/node_modules/pkg/index.js'), 'x');
  await symlink('../outside/target', path.join(root, 'tree/link'));
  await symlink(path.join(root, 'tree/nested'), path.join(root, 'tree/dirlink'));
  execFileSync('mkfifo', [path.join(root, 'tree/pipe')]);
});
afterAll(async () => {
  await chmod(path.join(root, 'tree/nested'), 0o755).catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

describe('scanRoots', () => {
  it('records files, directories (the root too) and symlinks (not followed), skips FIFOs, applies excludes', async () => {
    const result = await scanRoots([path.join(root, 'tree')], ['*.tmp', 'node_modules']);
    const byPath = new Map(result.entries.map((e) => [path.relative(root, e.path), e]));
    expect([...byPath.keys()].sort()).toEqual(
      ['tree', 'tree/nested', 'tree/nested/deeper', 'tree/.hidden', 'tree/a.txt', 'tree/dirlink', 'tree/link', 'tree/nested/deeper/b with space ü.txt'].sort(),
    );
    expect(byPath.get('tree/nested')).toMatchObject({ kind: 'directory', mode: expect.any(Number), uid: process.getuid?.() });
    expect(byPath.get('tree')?.kind).toBe('directory');
    expect(byPath.get('tree/link')).toMatchObject({ kind: 'symlink', linkTarget: '../outside/target' });
    expect(byPath.get('tree/dirlink')).toMatchObject({ kind: 'symlink', linkTarget: path.join(root, 'tree/nested') });
    expect(byPath.get('tree/a.txt')).toMatchObject({ kind: 'file', size: 5 });
    expect(result.skipped.map((s) => [path.relative(root, s.path), s.message])).toEqual([['tree/pipe', 'skipped FIFO']]);
    expect(result.errors).toEqual([]);
  });

  it('reports a missing root and protects it from deletion', async () => {
    const missing = path.join(root, 'nope');
    const result = await scanRoots([missing, path.join(root, 'tree/a.txt')], []);
    expect(result.entries.map((e) => e.path)).toEqual([path.join(root, 'tree/a.txt')]);
    expect(result.errors[0]?.path).toBe(missing);
    expect(result.unseenPrefixes).toEqual([missing]);
  });

  it.skipIf(process.getuid?.() === 0)('reports an unreadable directory and goes on', async () => {
    await chmod(path.join(root, 'tree/nested'), 0o000);
    try {
      const result = await scanRoots([path.join(root, 'tree')], []);
      expect(result.errors.map((e) => e.path)).toEqual([path.join(root, 'tree/nested')]);
      expect(result.unseenPrefixes).toEqual([path.join(root, 'tree/nested')]);
      expect(result.entries.some((e) => e.path.endsWith('a.txt'))).toBe(true);
    } finally {
      await chmod(path.join(root, 'tree/nested'), 0o755);
    }
  });
});

describe('hard links', () => {
  it('gives every name of one inode the same group key, and a file with one link none', async () => {
    const dir = path.join(root, 'links');
    await mkdir(dir);
    await writeFile(path.join(dir, 'one'), 'shared');
    await link(path.join(dir, 'one'), path.join(dir, 'two'));
    await writeFile(path.join(dir, 'alone'), 'single');
    const result = await scanRoots([dir], []);
    const byName = new Map(result.entries.map((e) => [path.basename(e.path), e]));
    expect(byName.get('one')?.hardlinkGroup).toMatch(/^[0-9a-f]{32}$/);
    expect(byName.get('two')?.hardlinkGroup).toBe(byName.get('one')?.hardlinkGroup);
    expect(byName.get('alone')?.hardlinkGroup).toBeUndefined();
    expect(byName.get('links')?.hardlinkGroup).toBeUndefined(); // a directory's links are its subdirectories, not hard links
    expect((await scanRoots([dir], [])).entries.find((e) => e.path.endsWith('/two'))?.hardlinkGroup).toBe(byName.get('one')?.hardlinkGroup);
  });
});

describe('odd names', () => {
  it('finds names with newlines (glob matchers drop them), and excludes still apply to them', async () => {
    const odd = path.join(root, 'odd');
    await mkdir(path.join(odd, 'dir\nwith newline'), { recursive: true });
    await writeFile(path.join(odd, 'new\nline.txt'), '1');
    await writeFile(path.join(odd, 'dir\nwith newline', 'inner.txt'), '2');
    await writeFile(path.join(odd, 'junk\nname.tmp'), '3');
    const result = await scanRoots([odd], ['*.tmp']);
    expect(result.entries.map((e) => path.relative(odd, e.path)).sort()).toEqual(['', 'dir\nwith newline', 'dir\nwith newline/inner.txt', 'new\nline.txt']);
  });
});

describe('hashFile', () => {
  it('hashes with large reads, across several buffers', async () => {
    const file = path.join(root, 'big.bin');
    const data = Buffer.alloc(READ_BYTES * 2 + 123, 7);
    await writeFile(file, data);
    const hashed = await hashFile(file, Buffer.allocUnsafe(READ_BYTES));
    expect(hashed.sha256).toBe(createHash('sha256').update(data).digest('hex'));
    expect(hashed.size).toBe(data.length);
  });

  it('does not follow a symlink that replaced a file', async () => {
    await expect(hashFile(path.join(root, 'tree/link'), Buffer.alloc(16))).rejects.toThrow();
  });

  it('mapConcurrent keeps order', async () => {
    expect(await mapConcurrent([3, 1, 2], 2, async (n) => n * 2)).toEqual([6, 2, 4]);
  });
});

describe('scan cache file', () => {
  it('round-trips, and is ignored when it belongs to another client or is damaged', async () => {
    const file = path.join(root, 'cache.jsonl');
    const cache: ScanCache = new Map([
      ['/a\nnewline', { kind: 'file', size: 1, mtimeMs: 1.5, ctimeMs: 2.5, ino: 3, mode: 0o100644, uid: 0, gid: 0, sha256: 'f'.repeat(64) }],
      ['/l', { kind: 'symlink', size: 2, mtimeMs: 1, ctimeMs: 2, ino: 4, mode: 0o120777, uid: 1000, gid: 100, sha256: null, linkTarget: '../x' }],
      ['/d', { kind: 'directory', size: 4096, mtimeMs: 1, ctimeMs: 2, ino: 5, mode: 0o40750, uid: 4294967294, gid: 5, sha256: null }],
      ['/h', { kind: 'file', size: 1, mtimeMs: 1, ctimeMs: 2, ino: 6, mode: 0o100644, uid: 0, gid: 0, sha256: 'e'.repeat(64), hardlinkGroup: 'ab12' }],
    ]);
    await writeScanCache(file, 'client-1', cache);
    expect(await readScanCache(file, 'client-1')).toEqual(cache);
    expect(await readScanCache(file, 'client-2')).toBeNull();
    expect(await readScanCache(path.join(root, 'absent.jsonl'), 'client-1')).toBeNull();
    await writeFile(file, '{"format":"cairn-scan-cache","version":2,"clientId":"client-1"}\n["/a", "fi');
    expect(await readScanCache(file, 'client-1')).toBeNull();
    // A version-1 cache (no owners, no hard-link groups) is a lost cache: the agent resyncs once.
    await writeFile(file, '{"format":"cairn-scan-cache","version":1,"clientId":"client-1"}\n["/a","file",1,1,2,3,420,"' + 'f'.repeat(64) + '"]\n');
    expect(await readScanCache(file, 'client-1')).toBeNull();
  });
});
