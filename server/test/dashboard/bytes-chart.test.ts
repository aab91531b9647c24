import { describe, expect, it } from 'vitest';
import { buildBytesChart, lastDays } from '../../src/dashboard/bytes-chart.ts';

describe('lastDays', () => {
  it('lists the UTC days ending today, oldest first, across a month end', () => {
    expect(lastDays(new Date('2026-03-02T23:30:00Z'), 4)).toEqual(['2026-02-27', '2026-02-28', '2026-03-01', '2026-03-02']);
  });
});

describe('buildBytesChart', () => {
  it('draws two bars a day scaled to the largest value, on a shared baseline', () => {
    const chart = buildBytesChart([
      { day: '2026-03-01', uploaded: 0, stored: 0 },
      { day: '2026-03-02', uploaded: 1024, stored: 256 },
    ]);
    expect(chart.empty).toBe(false);
    expect(chart.bars).toHaveLength(4);
    const [, , uploaded, stored] = chart.bars;
    const baseline = chart.gridLines[0]!.y;
    expect(uploaded!.y + uploaded!.height).toBeCloseTo(baseline);
    expect(stored!.y + stored!.height).toBeCloseTo(baseline);
    expect(stored!.height / uploaded!.height).toBeCloseTo(0.25);
    expect(chart.gridLines.map((g) => g.label)).toEqual(['0 B', '512 B', '1.00 KiB']);
    expect(uploaded!.title).toBe('2026-03-02: 1.00 KiB uploaded');
  });

  it('says when there is nothing to draw', () => {
    expect(buildBytesChart([{ day: '2026-03-01', uploaded: 0, stored: 0 }]).empty).toBe(true);
  });
});
