import { applyDelta, createDelta } from 'fossil-delta';
import { describe, expect, it } from 'vitest';
import { applyFossilDelta } from '../../src/storage/fossil-apply.ts';
import { createFossilDelta, fossilChecksum, maxFossilDeltaBytes } from '../../src/storage/fossil-delta-encode.ts';

/** A small seeded generator (mulberry32), so a failing pair can be made again from its seed. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBuffer(random: () => number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i += 1) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

/** Lines of a SQL dump: `INSERT INTO ...` rows of varying length. */
function sqlLine(random: () => number, id: number): string {
  const name = Math.floor(random() * 1e9).toString(36);
  return `INSERT INTO public.accounts VALUES (${id}, '${name}', ${Math.floor(random() * 1e6)}, '2026-12-0${1 + Math.floor(random() * 9)}');\n`;
}

function sqlDump(random: () => number, bytes: number): { lines: string[] } {
  const lines: string[] = [];
  let size = 0;
  for (let id = 1; size < bytes; id += 1) {
    const line = sqlLine(random, id);
    lines.push(line);
    size += line.length;
  }
  return { lines };
}

/** The dump with about `share` of its lines rewritten, and a few lines inserted and deleted. */
function editedDump(random: () => number, lines: readonly string[], share: number): string[] {
  const out: string[] = [];
  for (const [index, line] of lines.entries()) {
    const what = random();
    if (what < share) out.push(sqlLine(random, index + 1));
    else if (what < share * 1.2) continue;
    else if (what < share * 1.4) out.push(line, sqlLine(random, 1_000_000 + index));
    else out.push(line);
  }
  return out;
}

/** Ours and the package's deltas are the same bytes, and both appliers turn either into the target. */
function expectSameDelta(source: Buffer, target: Buffer, label: string): Buffer {
  const ours = createFossilDelta(source, target);
  const theirs = Buffer.from(createDelta(new Uint8Array(source), new Uint8Array(target)));
  expect(ours.equals(theirs), `${label}: ${ours.length} against ${theirs.length} bytes`).toBe(true);
  expect(ours.length, label).toBeLessThanOrEqual(maxFossilDeltaBytes(target.length));
  expect(applyFossilDelta(source, ours).equals(target), label).toBe(true);
  expect(Buffer.from(applyDelta(new Uint8Array(source), new Uint8Array(ours))).equals(target), label).toBe(true);
  return ours;
}

describe('createFossilDelta', () => {
  it('writes the package’s delta for random pairs, which both appliers accept (checksum included)', () => {
    for (let seed = 1; seed <= 150; seed += 1) {
      const random = generator(seed);
      const source = randomBuffer(random, Math.floor(random() * 70_000));
      let target: Buffer;
      const kind = seed % 4;
      if (kind === 0) target = randomBuffer(random, Math.floor(random() * 3000));
      else {
        // Pieces of the source in another order, with random bytes between them.
        const pieces: Buffer[] = [];
        for (let n = Math.floor(random() * 20); n > 0; n -= 1) {
          const at = Math.floor(random() * source.length);
          pieces.push(source.subarray(at, at + Math.floor(random() * 8000)));
          pieces.push(randomBuffer(random, Math.floor(random() * (kind === 1 ? 5 : 200))));
        }
        target = Buffer.concat(pieces);
      }
      expectSameDelta(source, target, `seed ${seed}`);
    }
  });

  it('writes the package’s delta for SQL-like chunks with scattered edits, and it is small', () => {
    for (let seed = 1000; seed < 1040; seed += 1) {
      const random = generator(seed);
      const { lines } = sqlDump(random, 64 * 1024 + Math.floor(random() * 192 * 1024));
      const source = Buffer.from(lines.join(''));
      const edited = Buffer.from(editedDump(random, lines, 0.01 + random() * 0.04).join(''));
      // A chunk of the new version rarely starts where its base does: cut the target somewhere else.
      const start = Math.floor(random() * 2000);
      const target = edited.subarray(start, start + Math.floor(edited.length * (0.6 + random() * 0.4)));
      const delta = expectSameDelta(source, target, `seed ${seed}`);
      expect(delta.length, `seed ${seed}`).toBeLessThan(target.length / 4);
    }
  });

  it('handles the edges: empty and tiny inputs, a source of whole blocks, identical inputs', () => {
    const random = generator(7);
    const text = Buffer.from(sqlDump(random, 5000).lines.join(''));
    const cases: [Buffer, Buffer][] = [
      [Buffer.alloc(0), Buffer.alloc(0)],
      [Buffer.alloc(0), text],
      [text, Buffer.alloc(0)],
      [text.subarray(0, 16), text],
      [text.subarray(0, 17), text.subarray(0, 40)],
      [text, text.subarray(0, 15)],
      [text.subarray(0, 4096), text.subarray(0, 4096)],
      [text, text],
      [Buffer.alloc(100_000, 0x61), Buffer.alloc(90_000, 0x61)],
    ];
    for (const [index, [source, target]] of cases.entries()) expectSameDelta(source, target, `case ${index}`);
  });

  it('computes Fossil’s checksum for every length remainder', () => {
    const random = generator(99);
    for (let length = 0; length < 40; length += 1) {
      const bytes = randomBuffer(random, length);
      // The package's applier checks it: a delta that is one insert of the bytes, with our checksum.
      const size = toBase64Digits(length);
      const delta = Buffer.concat([Buffer.from(`${size}\n${size}:`), bytes, Buffer.from(`${toBase64Digits(fossilChecksum(bytes))};`)]);
      expect(Buffer.from(applyDelta(new Uint8Array(0), new Uint8Array(delta))).equals(bytes), `length ${length}`).toBe(true);
    }
  });
});

function toBase64Digits(value: number): string {
  const digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~';
  let text = '';
  do {
    text = digits[value % 64]! + text;
    value = Math.floor(value / 64);
  } while (value > 0);
  return text;
}
