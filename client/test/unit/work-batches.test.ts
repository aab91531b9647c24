import { describe, expect, it } from 'vitest';
import { workBatches } from '../../src/backup/backup-cycle.ts';
import type { ScannedEntry } from '../../src/backup/scanner.ts';

const file = (i: number, size = 100): ScannedEntry => ({
  path: `/data/f${String(i).padStart(6, '0')}`,
  kind: 'file',
  size,
  mtimeMs: 1,
  ctimeMs: 1,
  ino: i,
  mode: 0o100644,
  uid: 0,
  gid: 0,
});

describe('workBatches', () => {
  it('starts with smaller batches (250, 500, 1,000 files) and then takes 2,000 at a time, keeping every entry once, in order', () => {
    const todo = Array.from({ length: 10_000 }, (_, i) => file(i));
    const batches = workBatches(todo);
    expect(batches.map((b) => b.files.length)).toEqual([250, 500, 1000, 2000, 2000, 2000, 2000, 250]);
    expect(batches.flatMap((b) => b.files)).toEqual(todo);
  });

  it('bounds the bytes of a batch the same way (32 MiB first), and a file larger than the bound travels alone', () => {
    const MiB = 1024 * 1024;
    const todo = [file(0, 20 * MiB), file(1, 20 * MiB), file(2, 300 * MiB), file(3, 1)];
    expect(workBatches(todo).map((b) => b.files.map((f) => f.ino))).toEqual([[0], [1], [2], [3]]);
  });

  it('keeps symlinks in the batch of their place in the order, counted like files', () => {
    const link: ScannedEntry = { ...file(1), kind: 'symlink', linkTarget: 'x' };
    const batches = workBatches([file(0), link, file(2)]);
    expect(batches).toEqual([{ files: [file(0), file(2)], symlinks: [link] }]);
  });
});
