import { describe, expect, it } from 'vitest';
import { verdictsFor } from '../../bench/report.ts';
import type { Measurement } from '../../bench/scenarios.ts';

const MB = 1_000_000;
const base = { ok: true, seconds: 1, filesScanned: 1, bytesScanned: 1, bytesUploaded: 1 };

describe('bench verdicts', () => {
  it("judges S6/S7 on packs plus index rows, the fresh database's fixed size shown beside, and the last day only", () => {
    const measurements: Measurement[] = [
      { ...base, scenario: 'S6', system: 'restic', day: 7, storedBytes: 100 * MB },
      { ...base, scenario: 'S6', system: 'cairn-disk', day: 6, storedBytes: 10 * MB, metadataBytes: 9 * MB, metadataBaselineBytes: 9 * MB },
      { ...base, scenario: 'S6', system: 'cairn-disk', day: 7, storedBytes: 30 * MB, metadataBytes: 14 * MB, metadataBaselineBytes: 9 * MB },
    ];
    const [stored] = verdictsFor(measurements).filter((v) => v.what === 'stored');
    expect(stored?.ratio).toBeCloseTo(0.21, 5);
    expect(stored?.met).toBe(true);
    expect(stored?.note).toBe("packs + index rows; 0.30x with the fresh database's 9.0 MB counted");
  });

  it('without a measured fresh database, S6/S7 count the whole database', () => {
    const measurements: Measurement[] = [
      { ...base, scenario: 'S7', system: 'restic', day: 7, storedBytes: 100 * MB },
      { ...base, scenario: 'S7', system: 'cairn-s3', day: 7, storedBytes: 30 * MB, metadataBytes: 14 * MB },
    ];
    const [stored] = verdictsFor(measurements).filter((v) => v.what === 'stored');
    expect(stored?.ratio).toBeCloseTo(0.3, 5);
    expect(stored?.met).toBe(false);
    expect(stored?.note).toBeUndefined();
  });
});
