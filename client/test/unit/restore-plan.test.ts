import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileVersion } from '@cairn/shared';
import { planRestore } from '../../src/restore/restore-plan.ts';
import { SPARSE_BLOCK, SparseWriter } from '../../src/restore/sparse-writer.ts';

const version = (path: string, patch: Partial<FileVersion> = {}): FileVersion => ({
  versionId: path,
  path,
  kind: 'file',
  sha256: 'a'.repeat(64),
  size: 1,
  mtimeMs: 0,
  mode: 0o100644,
  linkTarget: null,
  validFrom: new Date(0).toISOString(),
  validTo: null,
  ...patch,
});
const dir = (p: string) => version(p, { kind: 'directory', sha256: null, size: 0, mode: 0o40755 });

describe('planRestore', () => {
  it('creates directories parents first and finishes them deepest first, after everything inside', () => {
    const plan = planRestore([dir('/a/b c'), dir('/a/b/c'), dir('/a'), dir('/a/b'), version('/a/b/c/f')]);
    expect(plan.directories.map((d) => d.path)).toEqual(['/a', '/a/b', '/a/b c', '/a/b/c']);
    const finished = plan.directoriesDeepestFirst.map((d) => d.path);
    // Every directory comes after every directory below it.
    for (const [i, p] of finished.entries()) for (const later of finished.slice(i + 1)) expect(later.startsWith(`${p}/`)).toBe(false);
    expect(plan.files.map((f) => f.path)).toEqual(['/a/b/c/f']);
  });

  it.each<[string, FileVersion[], string[], [string, string][]]>([
    ['no group: every file written', [version('/x'), version('/y')], ['/x', '/y'], []],
    ['one group: the first by path is written, the others linked to it', [version('/z', { hardlinkGroup: 'g' }), version('/m', { hardlinkGroup: 'g' }), version('/a', { hardlinkGroup: 'g' })], ['/a'], [['/m', '/a'], ['/z', '/a']]],
    ['two groups stay apart', [version('/a', { hardlinkGroup: 'g1' }), version('/b', { hardlinkGroup: 'g2' }), version('/c', { hardlinkGroup: 'g1' })], ['/a', '/b'], [['/c', '/a']]],
    ['same group, other content (changed between backups): separate files', [version('/a', { hardlinkGroup: 'g' }), version('/b', { hardlinkGroup: 'g', sha256: 'b'.repeat(64) })], ['/a', '/b'], []],
  ])('hard links: %s', (_name, versions, written, linked) => {
    const plan = planRestore(versions);
    expect(plan.files.map((f) => f.path)).toEqual(written);
    expect(plan.followers.map((f) => [f.file.path, f.leader.path])).toEqual(linked);
  });

  it('keeps symlinks for after the files', () => {
    const plan = planRestore([version('/l', { kind: 'symlink', sha256: null, linkTarget: 'f' }), version('/f')]);
    expect(plan.files.map((f) => f.path)).toEqual(['/f']);
    expect(plan.symlinks.map((f) => f.path)).toEqual(['/l']);
  });
});

describe('SparseWriter', () => {
  let dirPath: string;
  beforeAll(async () => {
    dirPath = await mkdtemp(path.join(os.tmpdir(), 'cairn-sparse-'));
  });
  afterAll(async () => {
    await rm(dirPath, { recursive: true, force: true });
  });

  /** Writes `data` in chunks of `chunkSize` (so blocks straddle chunks) and returns the file's bytes and allocation. */
  async function writeSparse(name: string, data: Buffer, chunkSize: number) {
    const file = path.join(dirPath, name);
    const handle = await open(file, 'wx');
    const writer = new SparseWriter(handle);
    for (let at = 0; at < data.length; at += chunkSize) await writer.write(data.subarray(at, at + chunkSize));
    await writer.finish();
    await handle.close();
    return { bytes: await readFile(file), allocated: (await stat(file)).blocks * 512 };
  }

  it.each<[string, () => Buffer, number, (allocated: number, size: number) => boolean]>([
    ['data only at both ends: a hole between', () => withData(4 << 20, [0, (4 << 20) - 100]), 65_536 + 17, (a) => a <= 64 * 1024],
    ['ends in zeros: the length is still right', () => withData(1 << 20, [0]), 10_000, (a) => a <= 64 * 1024],
    ['all zeros', () => Buffer.alloc(1 << 20), 1 << 16, (a) => a <= 16 * 1024],
    ['no zero block: dense', () => Buffer.alloc(1 << 20, 1), 4096 * 3 + 1, (a, size) => a >= size],
    ['shorter than one block', () => Buffer.from('tiny'), 2, () => true],
    ['a zero block between data, unaligned chunk sizes', () => withData(SPARSE_BLOCK * 5, [0, SPARSE_BLOCK * 4 + 1]), 1000, () => true],
  ])('%s', async (name, make, chunkSize, allocationOk) => {
    const data = make();
    const { bytes, allocated } = await writeSparse(name.replace(/\W+/g, '-'), data, chunkSize);
    expect(bytes.equals(data)).toBe(true);
    expect(allocationOk(allocated, data.length)).toBe(true);
  });
});

/** `size` zero bytes with 100 non-zero bytes at each offset. */
function withData(size: number, offsets: number[]): Buffer {
  const data = Buffer.alloc(size);
  for (const offset of offsets) data.fill(0xab, offset, Math.min(size, offset + 100));
  return data;
}
