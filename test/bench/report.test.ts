import { describe, expect, it } from 'vitest';
import { cairnNodeText, verdictsFor } from '../../bench/report.ts';
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

describe('the node that ran Cairn, in the report', () => {
  const machine = { cpus: 2, cpuModel: 'x', memoryBytes: 1, node: 'v20.20.2', restic: null, loadAverageAtStart: [0] };

  it('names the --node binary and that it ran without tsx', () => {
    expect(cairnNodeText({ ...machine, cairnNode: { version: 'v24.22.3', stripsTypes: true } })).toBe('Cairn ran on node v24.22.3, types stripped by node (no tsx, as the images)');
  });

  it("names the bench's own node through tsx when no --node was given, or the report predates the field", () => {
    expect(cairnNodeText({ ...machine, cairnNode: { version: 'v20.20.2', stripsTypes: false } })).toBe('Cairn ran on node v20.20.2, through tsx');
    expect(cairnNodeText(machine)).toBe('Cairn ran on node v20.20.2, through tsx');
  });
});
