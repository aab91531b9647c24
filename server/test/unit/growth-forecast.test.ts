import { describe, expect, it } from 'vitest';
import { growthTrend } from '../../src/stats/growth-forecast.ts';

const DAY = 86_400_000;
const t = (day: number) => Date.UTC(2026, 10, 1) + day * DAY;

describe('growthTrend', () => {
  it.each([
    ['no samples', [], null],
    ['one sample', [[0, 5]], null],
    ['all at one time', [[0, 5], [0, 7]], null],
  ] as const)('%s: no trend', (_name, points, expected) => {
    expect(growthTrend(points.map(([day, value]) => ({ atMs: t(day), value })))).toBe(expected);
  });

  it('a steady 10 per day reaches 100 from 40 in 6 days', () => {
    const trend = growthTrend([0, 1, 2, 3, 4].map((day) => ({ atMs: t(day), value: day * 10 })))!;
    expect(trend.perDay).toBeCloseTo(10, 9);
    expect(trend.valueAt(t(4))).toBeCloseTo(40, 9);
    expect(trend.daysUntil(100, t(4))).toBeCloseTo(6, 9);
  });

  it('noise around a line still finds the line', () => {
    const values = [100, 112, 118, 131, 139, 152];
    const trend = growthTrend(values.map((value, day) => ({ atMs: t(day), value })))!;
    expect(trend.perDay).toBeGreaterThan(9);
    expect(trend.perDay).toBeLessThan(11);
  });

  it('flat or shrinking never fills; already over the limit is 0 days', () => {
    expect(growthTrend([{ atMs: t(0), value: 50 }, { atMs: t(3), value: 50 }])!.daysUntil(100, t(3))).toBeNull();
    expect(growthTrend([{ atMs: t(0), value: 80 }, { atMs: t(3), value: 50 }])!.daysUntil(100, t(3))).toBeNull();
    expect(growthTrend([{ atMs: t(0), value: 80 }, { atMs: t(1), value: 120 }])!.daysUntil(100, t(1))).toBe(0);
  });
});
