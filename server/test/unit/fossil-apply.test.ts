import { randomBytes } from 'node:crypto';
import { applyDelta, createDelta } from 'fossil-delta';
import { describe, expect, it } from 'vitest';
import { applyFossilDelta, FossilDeltaError } from '../../src/storage/fossil-apply.ts';

/** A target made from the base by a few edits, inserts and deletes (seeded by Math.random: any pair must round-trip). */
function edited(base: Buffer): Buffer {
  const pieces: Buffer[] = [];
  let at = 0;
  while (at < base.length) {
    const keep = Math.floor(Math.random() * 5000);
    pieces.push(base.subarray(at, at + keep));
    at += keep;
    const what = Math.random();
    if (what < 0.4) pieces.push(randomBytes(Math.floor(Math.random() * 40)));
    else if (what < 0.7) at += Math.floor(Math.random() * 40);
    else pieces.push(Buffer.from(`row ${at}\n`));
  }
  return Buffer.concat(pieces);
}

describe('applyFossilDelta', () => {
  it('gives what fossil-delta gives, for deltas fossil-delta makes', () => {
    for (let round = 0; round < 200; round += 1) {
      const base = round % 3 === 0 ? randomBytes(Math.floor(Math.random() * 70_000)) : Buffer.from('some text of a dump\n'.repeat(Math.floor(Math.random() * 4000)));
      const target = round % 7 === 0 ? randomBytes(Math.floor(Math.random() * 2000)) : edited(base);
      const delta = Buffer.from(createDelta(base, target));
      const ours = applyFossilDelta(base, delta);
      expect(ours.equals(target)).toBe(true);
      expect(ours.equals(Buffer.from(applyDelta(base, delta)))).toBe(true);
    }
  });

  it('refuses malformed deltas instead of reading or writing out of bounds', () => {
    const base = Buffer.from('0123456789'.repeat(100));
    const target = Buffer.concat([base.subarray(0, 500), Buffer.from('new'), base.subarray(600)]);
    const delta = Buffer.from(createDelta(base, target));
    expect(applyFossilDelta(base, delta).equals(target)).toBe(true);
    const bad = (text: string) => () => applyFossilDelta(base, Buffer.from(text));
    expect(bad('')).toThrow(FossilDeltaError);
    expect(bad('A\n')).toThrow(/not terminated/);
    expect(bad('A\nA@0,')).toThrow(/not terminated/);
    expect(bad('1\n2@0,;')).toThrow(FossilDeltaError);
    expect(bad('A\nA@zz,0;')).toThrow(/past the end of the base/);
    expect(bad('3\n5:ab;')).toThrow(FossilDeltaError);
    expect(bad('2\n2:ab0;')).not.toThrow();
    expect(bad('2\n2#ab0;')).toThrow(/unknown delta operator/);
    expect(bad('~~~~~~~\n')).toThrow(/too large/);
    expect(() => applyFossilDelta(base.subarray(0, 100), delta)).toThrow(/past the end of the base/);
  });
});
