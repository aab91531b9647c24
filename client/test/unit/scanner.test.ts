import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { link, mkdir, mkdtemp, readFile, rm, symlink, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileChangedError, hashFile, keepArena, KEEP_BYTES_MAX, mapConcurrent, READ_BYTES } from '../../src/backup/file-hasher.ts';
import { encodePosixPath } from '@cairn/shared';
import { nodeScanFs, scanRoots, type ScanFs } from '../../src/backup/scanner.ts';
import { upsertOf } from '../../src/backup/change-detector.ts';
import { readScanCache, smallNumber, writeScanCache, type ScanCache } from '../../src/state/scan-cache.ts';

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

  it('keeps a small file\'s bytes in the batch arena while there is room, and only a small file\'s (decision 202)', async () => {
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    const texts = ['first small file\n', 'second, a little longer\n', 'third: no room left for it\n'];
    const files = texts.map((_, i) => path.join(root, `keep-${i}.txt`));
    for (const [i, file] of files.entries()) await writeFile(file, texts[i] as string);
    const keep = keepArena(Buffer.alloc(Buffer.byteLength(texts[0] as string) + Buffer.byteLength(texts[1] as string)));
    const hashed = [];
    for (const file of files) hashed.push(await hashFile(file, buffer, undefined, keep));
    expect(hashed.map((h) => h.bytes?.toString())).toEqual([texts[0], texts[1], undefined]);
    for (const [i, h] of hashed.entries()) expect(h.sha256).toBe(createHash('sha256').update(texts[i] as string).digest('hex'));
    // The worker's buffer is reused by later reads; the kept bytes are not.
    await hashFile(files[2] as string, buffer, undefined, keep);
    expect(hashed[0]?.bytes?.toString()).toBe(texts[0]);

    const large = path.join(root, 'keep-large.bin');
    await writeFile(large, Buffer.alloc(KEEP_BYTES_MAX + 1, 3));
    const big = await hashFile(large, buffer, undefined, keepArena(Buffer.alloc(4 * KEEP_BYTES_MAX)));
    expect(big.bytes).toBeUndefined();
    expect(big.sha256).toBe(createHash('sha256').update(Buffer.alloc(KEEP_BYTES_MAX + 1, 3)).digest('hex'));
    // Nor on a spooling try, whose copy is what the upload reads.
    const spooled = await hashFile(files[0] as string, buffer, path.join(root, 'keep.spool'), keepArena(Buffer.alloc(1024)));
    expect(spooled.bytes).toBeUndefined();
    expect(spooled.spool).toBeUndefined();
  });

  it('does not follow a symlink that replaced a file', async () => {
    await expect(hashFile(path.join(root, 'tree/link'), Buffer.alloc(16))).rejects.toThrow();
  });

  it('a file appended to while read ends at its size at open: fails without a spool; with one, the bytes as read are kept and hash to the result', async () => {
    const file = path.join(root, 'growing.log');
    await writeFile(file, Buffer.alloc(READ_BYTES * 4, 1));
    // Appends between every two reads: each read awaits the thread pool, so setImmediate callbacks run in between.
    let appending = true;
    const append = () => {
      appendFileSync(file, 'more\n');
      if (appending) setImmediate(append);
    };
    setImmediate(append);
    try {
      await expect(hashFile(file, Buffer.allocUnsafe(READ_BYTES))).rejects.toBeInstanceOf(FileChangedError);
      const spoolPath = path.join(root, 'growing.spool');
      const hashed = await hashFile(file, Buffer.allocUnsafe(READ_BYTES), spoolPath);
      appending = false;
      expect(hashed.spool?.path).toBe(spoolPath);
      const spooled = await readFile(spoolPath);
      expect(hashed.size).toBe(spooled.length);
      expect(hashed.sha256).toBe(createHash('sha256').update(spooled).digest('hex'));
      expect(spooled.length).toBeGreaterThanOrEqual(READ_BYTES * 4);
      // The size seen at open: a prefix of what the file became, its growth not chased.
      const final = await readFile(file);
      expect(final.length).toBeGreaterThan(spooled.length);
      expect(final.subarray(0, spooled.length).equals(spooled)).toBe(true);
    } finally {
      appending = false;
    }
  });

  it('a spool for a file that did not change is removed and not returned', async () => {
    const spoolPath = path.join(root, 'calm.spool');
    const hashed = await hashFile(path.join(root, 'tree/a.txt'), Buffer.allocUnsafe(READ_BYTES), spoolPath);
    expect(hashed.spool).toBeUndefined();
    await expect(readFile(spoolPath)).rejects.toMatchObject({ code: 'ENOENT' });
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

describe('compact entries (decision 192)', () => {
  it('every scanned entry has the same fields in the same order, whatever its kind', async () => {
    await link(path.join(root, 'tree/a.txt'), path.join(root, 'tree-a-link.txt')).catch(() => undefined);
    const result = await scanRoots([path.join(root, 'tree'), path.join(root, 'tree-a-link.txt')], []);
    const kinds = new Set(result.entries.map((e) => e.kind));
    expect([...kinds].sort()).toEqual(['directory', 'file', 'symlink']);
    expect(result.entries.some((e) => e.hardlinkGroup !== undefined)).toBe(true);
    const shapes = new Set(result.entries.map((e) => Object.keys(e).join(',')));
    expect([...shapes]).toEqual(['path,kind,size,mtimeMs,ctimeMs,ino,mode,uid,gid,linkTarget,hardlinkGroup']);
  });

  it('every cache entry, read from the file or made after an upload, has the same fields in the same order', async () => {
    const scan = await scanRoots([path.join(root, 'tree')], []);
    const cache: ScanCache = new Map();
    for (const entry of scan.entries) {
      const content = entry.kind === 'file' ? { ...entry, sha256: 'a'.repeat(64) } : undefined;
      cache.set(entry.path, upsertOf(entry, content).cached);
    }
    const file = path.join(root, 'shape-cache.jsonl');
    await writeScanCache(file, 'client-1', cache);
    const read = (await readScanCache(file, 'client-1')) as ScanCache;
    expect(read).toEqual(cache);
    const shapes = new Set([...cache.values(), ...read.values()].map((e) => Object.keys(e).join(',')));
    expect([...shapes]).toEqual(['kind,size,mtimeMs,ctimeMs,ino,mode,sha256,uid,gid,linkTarget,hardlinkGroup']);
  });

  it('smallNumber keeps every value, only its representation changes', () => {
    for (const n of [0, 1, -1, 0o100644, 2 ** 30, 2 ** 31 - 1, 2 ** 31, 4294967294, 2 ** 40 + 3, 2 ** 53 - 1, 1.5, 1796658653259.347]) {
      expect(smallNumber(n)).toBe(n);
    }
  });
});

describe('entries that fail on their own (issue 9)', () => {
  // Directories are recorded too (tested above); these cases are about the entries beside them.
  const notDirectories = (result: { entries: { kind: string; path: string }[] }) => result.entries.filter((e) => e.kind !== 'directory');

  it('backs up a name that is not valid UTF-8 under its byte-escape spelling, next to its siblings', async () => {
    const dir = path.join(root, 'latin1');
    await mkdir(dir);
    await writeFile(path.join(dir, 'plain.txt'), 'p');
    // r\xe9sum\xe9.txt in Latin-1: not UTF-8; node's utf8 readdir would turn it into U+FFFD and lose it.
    const raw = Buffer.concat([Buffer.from(`${dir}/r`), Buffer.of(0xe9), Buffer.from('sum'), Buffer.of(0xe9), Buffer.from('.txt')]);
    await writeFile(raw, 'latin-1 name');
    const result = await scanRoots([dir], []);
    const spelled = encodePosixPath(raw);
    expect(notDirectories(result).map((e) => e.path).sort()).toEqual([path.join(dir, 'plain.txt'), spelled].sort());
    expect(result.entries.find((e) => e.path === spelled)).toMatchObject({ kind: 'file', size: 12 });
    expect(result.errors).toEqual([]);
    expect((await hashFile(spelled, Buffer.alloc(64))).size).toBe(12);
  });

  it('keeps a symlink target that is not valid UTF-8 byte-exact', async () => {
    const dir = path.join(root, 'latin1-link');
    await mkdir(dir);
    const target = Buffer.concat([Buffer.from('caf'), Buffer.of(0xe9)]);
    await symlink(target, path.join(dir, 'link'));
    const result = await scanRoots([dir], []);
    expect(notDirectories(result)).toMatchObject([{ kind: 'symlink', linkTarget: encodePosixPath(target) }]);
  });

  it('a file that vanishes between readdir and lstat is gone; its siblings are still recorded', async () => {
    const dir = path.join(root, 'vanishing');
    await mkdir(path.join(dir, 'sub'), { recursive: true });
    for (const name of ['a', 'b', 'ghost', 'sub/c']) await writeFile(path.join(dir, name), name);
    // The race, made deterministic: the listing names `ghost`, which is deleted before its lstat.
    const racing: ScanFs = {
      ...nodeScanFs,
      lstat: async (p) => {
        if (p.toString().endsWith('/ghost')) await rm(path.join(dir, 'ghost'), { force: true });
        return nodeScanFs.lstat(p);
      },
    };
    const result = await scanRoots([dir], [], undefined, racing);
    expect(result.entries.map((e) => path.relative(dir, e.path)).sort()).toEqual(['', 'a', 'b', 'sub', 'sub/c']);
    expect(result.errors).toEqual([]);
    expect(result.unseenPrefixes).toEqual([]);
  });

  it('an entry whose lstat fails for another reason is a per-file error that protects only that path', async () => {
    const dir = path.join(root, 'eio');
    await mkdir(path.join(dir, 'broken'), { recursive: true });
    await writeFile(path.join(dir, 'broken/inside'), 'x');
    await writeFile(path.join(dir, 'fine'), 'f');
    const failing: ScanFs = {
      ...nodeScanFs,
      lstat: async (p) => {
        if (p.toString().endsWith('/broken')) throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
        return nodeScanFs.lstat(p);
      },
    };
    const result = await scanRoots([dir], [], undefined, failing);
    expect(result.entries.map((e) => path.relative(dir, e.path))).toEqual(['', 'fine']);
    expect(result.errors).toEqual([{ path: path.join(dir, 'broken'), message: expect.stringContaining('EIO') }]);
    expect(result.unseenPrefixes).toEqual([path.join(dir, 'broken')]);
  });

  it('a path longer than PATH_MAX is a per-file error; the rest of the tree is recorded', async () => {
    const dir = path.join(root, 'deep');
    await mkdir(dir);
    await writeFile(path.join(dir, 'shallow.txt'), 's');
    // 20 levels of 250-byte names: 5,000+ bytes, more than PATH_MAX, built with relative steps.
    const segment = 'd'.repeat(250);
    execFileSync('bash', ['-c', `cd "$1" && for i in $(seq 1 20); do mkdir ${segment} && cd ${segment}; done && echo deep > leaf.txt`, 'bash', dir]);
    try {
      const result = await scanRoots([dir], []);
      expect(notDirectories(result).map((e) => path.relative(dir, e.path))).toEqual(['shallow.txt']);
      expect(result.errors).toHaveLength(1);
      expect(result.errors[0]?.message).toMatch(/ENAMETOOLONG/);
      expect(Buffer.byteLength(result.errors[0]?.path ?? '')).toBeGreaterThan(4095);
      expect(result.unseenPrefixes).toEqual([result.errors[0]?.path]);
      // The directories above the one that is too long are recorded as entries.
      expect(result.entries.filter((e) => e.kind === 'directory').length).toBeGreaterThan(10);
    } finally {
      execFileSync('bash', ['-c', `cd "$1" && for i in $(seq 1 20); do cd ${segment}; done; rm leaf.txt; for i in $(seq 1 20); do cd .. && rmdir ${segment}; done`, 'bash', dir]);
    }
  });
});
