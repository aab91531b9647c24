import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SqlDump } from '../../bench/dump-datasets.ts';
import { renderText, verdictsFor, type BenchReport } from '../../bench/report.ts';
import type { Measurement } from '../../bench/scenarios.ts';

const MiB = 1024 * 1024;

function dumpBytes(dump: SqlDump): Buffer {
  return Buffer.concat([...dump.pieces()]);
}

function rowLines(bytes: Buffer): string[] {
  return bytes.toString('utf8').split('\n').filter((line) => /^\d+\t/.test(line));
}

describe('S6 generated dump', () => {
  it('is the same bytes for the same seed, day after day, and other bytes for another seed', () => {
    const a = new SqlDump('seed-a', 2 * MiB);
    const b = new SqlDump('seed-a', 2 * MiB);
    const sha = (dump: SqlDump) => createHash('sha256').update(dumpBytes(dump)).digest('hex');
    expect(sha(a)).toBe(sha(b));
    a.nextDay();
    b.nextDay();
    expect(sha(a)).toBe(sha(b));
    expect(sha(new SqlDump('seed-b', 2 * MiB))).not.toBe(sha(a));
  });

  it('has the layout of a plain pg_dump and about the size asked for', () => {
    const bytes = dumpBytes(new SqlDump('layout', 4 * MiB));
    expect(bytes.length).toBeGreaterThan(4 * MiB * 0.95);
    expect(bytes.length).toBeLessThan(4 * MiB * 1.05);
    const text = bytes.toString('utf8');
    for (const table of ['customers', 'orders', 'order_items', 'events']) {
      expect(text).toContain(`CREATE TABLE public.${table} (`);
      expect(text).toMatch(new RegExp(`COPY public\\.${table} \\([a-z_, ]+\\) FROM stdin;\\n1\\t`));
    }
    expect(text.split('\n\\.\n').length).toBe(5);
  });

  it('edits about 1% of the rows a day, scattered, some in place at the same length, with a few inserts and deletes', () => {
    const dump = new SqlDump('edits', 4 * MiB);
    const before = rowLines(dumpBytes(dump));
    const edits = dump.nextDay(0.01);
    const after = rowLines(dumpBytes(dump));
    expect(edits.updated).toBeGreaterThan(before.length * 0.009);
    expect(edits.updated).toBeLessThanOrEqual(Math.round(before.length * 0.01));
    expect(edits.sameLength).toBeGreaterThan(edits.updated * 0.3);
    expect(edits.inserted).toBeGreaterThan(0);
    expect(edits.deleted).toBeGreaterThan(0);
    expect(after.length).toBe(before.length + edits.inserted - edits.deleted);
    const old = new Set(before);
    const changed = after.filter((line) => !old.has(line));
    // A row edited and then deleted on the same day is counted in both and shows in neither.
    expect(changed.length).toBeLessThanOrEqual(edits.updated + edits.inserted);
    expect(changed.length).toBeGreaterThan((edits.updated + edits.inserted) * 0.98);
    // Scattered: the changed rows are spread over the whole file, not bunched at one end.
    const positions = after.map((line, i) => (old.has(line) ? -1 : i)).filter((i) => i >= 0);
    expect(positions.filter((i) => i < after.length / 4).length).toBeGreaterThan(changed.length / 8);
    expect(positions.filter((i) => i > (after.length * 3) / 4).length).toBeGreaterThan(changed.length / 8);
  });
});

describe('bench report: a system that cannot run a scenario yet', () => {
  const base = { filesScanned: 1, bytesScanned: 1, bytesUploaded: 1, seconds: 1 };
  const measurements: Measurement[] = [
    { ...base, scenario: 'S6', system: 'restic', ok: true, day: 0, storedBytes: 100 },
    { ...base, scenario: 'S6', system: 'restic', ok: true, day: 7, storedBytes: 800 },
    { ...base, scenario: 'S6', system: 'cairn-disk', ok: false, notYet: 'needs storage engine v2', storedBytes: 0 },
    { ...base, scenario: 'S7', system: 'restic', ok: true, day: 7, storedBytes: 800 },
    { ...base, scenario: 'S7', system: 'cairn-disk', ok: true, day: 0, storedBytes: 50 },
    { ...base, scenario: 'S7', system: 'cairn-disk', ok: true, day: 7, storedBytes: 160 },
  ];

  it('is judged "not yet", and a measured one on the last day against restic\'s last day', () => {
    const verdicts = verdictsFor(measurements);
    expect(verdicts.find((v) => v.scenario === 'S6')).toMatchObject({ what: 'stored', met: null, notYet: 'needs storage engine v2' });
    expect(verdicts.find((v) => v.scenario === 'S7')).toMatchObject({ what: 'stored', ratio: 0.2, met: true });
  });

  it('shows "not yet" with the reason and no failure line', () => {
    const report: BenchReport = {
      startedAt: '',
      finishedAt: '',
      quick: true,
      machine: { cpus: 2, cpuModel: 'x', memoryBytes: 1, node: 'v20', restic: 'restic', loadAverageAtStart: [0, 0, 0] },
      datasets: {},
      measurements,
      verdicts: verdictsFor(measurements),
      notRun: [],
    };
    const text = renderText(report);
    expect(text).toContain('not yet: needs storage engine v2');
    expect(text).toContain('cairn-disk/restic: stored (target <= 0.25x): not yet');
    expect(text).toContain('restic day 7');
    expect(text).not.toContain('! cairn-disk');
  });
});
