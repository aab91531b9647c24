import { describe, expect, it } from 'vitest';
import { formatBytes } from '@cairn/shared';
import { buildBarChart } from '../../src/dashboard/charts/bar-chart.ts';
import { labelIndexes, niceCeiling, PLOT, PLOT_HEIGHT } from '../../src/dashboard/charts/chart-scale.ts';
import { buildLineChart } from '../../src/dashboard/charts/line-chart.ts';
import { storedSeries } from '../../src/dashboard/stats.routes.ts';
import { growthTrend } from '../../src/stats/growth-forecast.ts';

const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-03-01T00:00:00Z');
const BASELINE = PLOT.top + PLOT_HEIGHT;
const dayLabel = (atMs: number) => new Date(atMs).toISOString().slice(5, 10);

describe('niceCeiling', () => {
  it('rounds byte maxima to KiB/MiB steps and counts to steps with a whole middle line', () => {
    expect(niceCeiling(0, 'bytes')).toBe(1024);
    expect(niceCeiling(3 * 1024 * 1024, 'bytes')).toBe(3 * 1024 * 1024);
    expect(niceCeiling(3.1 * 1024 * 1024, 'bytes')).toBe(4 * 1024 * 1024);
    expect(niceCeiling(0, 'decimal')).toBe(2);
    expect(niceCeiling(3, 'decimal')).toBe(4);
    expect(niceCeiling(15, 'decimal')).toBe(20);
    expect(niceCeiling(4500, 'decimal')).toBe(6000);
  });

  it('labels at most six x positions, always the newest', () => {
    expect(labelIndexes(3)).toEqual([0, 1, 2]);
    const many = labelIndexes(90);
    expect(many.length).toBeLessThanOrEqual(6);
    expect(many.at(-1)).toBe(89);
  });
});

describe('buildBarChart', () => {
  const base = { title: 'Files', desc: 'Files per day', format: String, scale: 'decimal' as const };

  it('draws bars of heights proportional to their values on one baseline, oldest left', () => {
    const chart = buildBarChart({
      ...base,
      series: [{ name: 'files', className: 'bar-files' }],
      groups: [
        { label: '03-01', values: [10] },
        { label: '03-02', values: [20] },
        { label: '03-03', values: [5] },
      ],
    });
    expect(chart.empty).toBe(false);
    expect(chart.gridLines.map((g) => g.label)).toEqual(['0', '10', '20']);
    const [a, b, c] = chart.bars;
    expect(b!.height).toBeCloseTo(PLOT_HEIGHT);
    expect(a!.height).toBeCloseTo(PLOT_HEIGHT / 2);
    expect(c!.height).toBeCloseTo(PLOT_HEIGHT / 4);
    for (const bar of chart.bars) expect(bar.y + bar.height).toBeCloseTo(BASELINE);
    expect(a!.x).toBeLessThan(b!.x);
    expect(b!.x).toBeLessThan(c!.x);
    expect(c!.x + c!.width).toBeLessThanOrEqual(chart.plotRight);
    expect(b!.title).toBe('03-02: 20 files');
  });

  it('leaves a gap where a value is missing and keeps a fixed maximum for percentages', () => {
    const chart = buildBarChart({
      ...base,
      format: (v) => `${v}%`,
      max: 100,
      series: [{ name: 'succeeded', className: 'bar-success' }],
      groups: [
        { label: '03-01', values: [null] },
        { label: '03-02', values: [50] },
      ],
    });
    expect(chart.bars).toHaveLength(1);
    expect(chart.bars[0]!.height).toBeCloseTo(PLOT_HEIGHT / 2);
    expect(chart.gridLines.at(-1)!.label).toBe('100%');
    // 0% is a real value: a day whose runs all failed is data, not "no data".
    expect(buildBarChart({ ...base, max: 100, series: [{ name: 's', className: 'x' }], groups: [{ label: 'a', values: [0] }] }).empty).toBe(false);
  });

  it('says "no data" for an empty series, for all-missing values and for all zeros', () => {
    const series = [{ name: 'files', className: 'bar-files' }];
    expect(buildBarChart({ ...base, series, groups: [] }).empty).toBe(true);
    expect(buildBarChart({ ...base, series, groups: [{ label: 'a', values: [null] }] }).empty).toBe(true);
    expect(buildBarChart({ ...base, series, groups: [{ label: 'a', values: [0] }] }).empty).toBe(true);
  });
});

describe('buildLineChart', () => {
  const points = [0, 1, 2, 3].map((i) => ({ atMs: T0 + i * DAY_MS, value: (10 + 2 * i) * 1024 * 1024 }));

  it('draws the measured line and the dashed trend through it to the end of the axis, where the trend says', () => {
    const trend = growthTrend(points)!;
    const endMs = T0 + 6 * DAY_MS;
    const chart = buildLineChart({ title: 't', desc: 'd', points, startMs: T0, endMs, trend, format: formatBytes, formatTime: dayLabel });
    expect(chart.empty).toBe(false);
    expect(chart.path.split(' ')).toHaveLength(4);
    // The trend reaches 22 MiB at day 6; the axis tops at 24 MiB (1.5 x 16).
    expect(chart.gridLines.at(-1)!.label).toBe(formatBytes(24 * 1024 * 1024));
    const f = chart.forecast!;
    // The points lie on a straight line, so the trend runs through the first one.
    expect(f.x1).toBeCloseTo(chart.dots[0]!.x);
    expect(f.y1).toBeCloseTo(chart.dots[0]!.y);
    expect(chart.nowX).toBeCloseTo(chart.dots.at(-1)!.x);
    expect(f.x2).toBeCloseTo(chart.plotRight);
    expect(f.y2).toBeCloseTo(BASELINE - (22 / 24) * PLOT_HEIGHT);
    expect(f.title).toBe(`forecast for 03-07: ${formatBytes(22 * 1024 * 1024)}`);
    expect(chart.labels[0]!.text).toBe('03-01');
    expect(chart.labels.at(-1)!.text).toBe('03-07');
  });

  it('has no forecast without a trend and says "no data" without points', () => {
    const chart = buildLineChart({ title: 't', desc: 'd', points, startMs: T0, endMs: T0 + 3 * DAY_MS, trend: null, format: formatBytes, formatTime: dayLabel });
    expect(chart.forecast).toBeNull();
    expect(buildLineChart({ title: 't', desc: 'd', points: [], startMs: T0, endMs: T0 + DAY_MS, trend: null, format: formatBytes, formatTime: dayLabel }).empty).toBe(true);
  });
});

describe('storedSeries', () => {
  it('counts back from what is stored now, one sample at the end of each day and now for today', () => {
    const days = ['2026-03-01', '2026-03-02', '2026-03-03'];
    const added: Record<string, number> = { '2026-03-01': 100, '2026-03-02': 50, '2026-03-03': 25 };
    const now = Date.parse('2026-03-03T12:00:00Z');
    expect(storedSeries(days, 1000, (day) => added[day] ?? 0, now)).toEqual([
      { atMs: Date.parse('2026-03-02T00:00:00Z'), value: 925 },
      { atMs: Date.parse('2026-03-03T00:00:00Z'), value: 975 },
      { atMs: now, value: 1000 },
    ]);
    // More added than is stored now (pruned since): never below zero.
    expect(storedSeries(days, 60, (day) => added[day] ?? 0, now).map((s) => s.value)).toEqual([0, 35, 60]);
  });
});

describe('buildBarChart, labels', () => {
  it('ends the newest label at the right edge when its bar is too thin to centre it under', () => {
    const groups = Array.from({ length: 90 }, (_, i) => ({ label: `d${i}`, values: [i] }));
    const chart = buildBarChart({ title: 't', desc: 'd', format: String, scale: 'decimal', series: [{ name: 'n', className: 'x' }], groups });
    expect(chart.labels.at(-1)).toEqual({ x: chart.plotRight, text: 'd89', anchor: 'end' });
    expect(chart.labels[0]!.anchor).toBe('middle');
  });
});

describe('buildBarChart, stacked', () => {
  it('puts the parts of a whole on top of each other in one bar', () => {
    const chart = buildBarChart({
      title: 'Success',
      desc: 'd',
      format: (v) => `${v}%`,
      scale: 'decimal',
      max: 100,
      stacked: true,
      series: [
        { name: 'succeeded', className: 'ok' },
        { name: 'failed', className: 'bad' },
      ],
      groups: [{ label: '03-01', values: [75, 25] }],
    });
    const [ok, bad] = chart.bars;
    expect(ok!.x).toBe(bad!.x);
    expect(ok!.y + ok!.height).toBeCloseTo(BASELINE);
    expect(bad!.y + bad!.height).toBeCloseTo(ok!.y);
    expect(bad!.y).toBeCloseTo(PLOT.top);
    expect(ok!.height).toBeCloseTo(PLOT_HEIGHT * 0.75);
  });
});
