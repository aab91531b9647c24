import type { GrowthTrend, Sample } from '../../stats/growth-forecast.ts';
import { CHART_HEIGHT, CHART_WIDTH, type GridLine, gridLines, MAX_X_LABELS, niceCeiling, PLOT, PLOT_HEIGHT, PLOT_WIDTH } from './chart-scale.ts';

export interface LineChartInput {
  title: string;
  desc: string;
  /** Oldest first. */
  points: Sample[];
  /** The x axis: from the range's start to `endMs`, which may lie in the future for the forecast. */
  startMs: number;
  endMs: number;
  /** Drawn dashed from the first point to `endMs`, through the data and on into the future; null: no forecast. */
  trend: GrowthTrend | null;
  format: (value: number) => string;
  formatTime: (atMs: number) => string;
}

export interface LineChart {
  kind: 'line';
  title: string;
  desc: string;
  width: number;
  height: number;
  plotLeft: number;
  plotRight: number;
  /** SVG path of the measured values. */
  path: string;
  dots: { x: number; y: number; title: string }[];
  forecast: { x1: number; y1: number; x2: number; y2: number; title: string } | null;
  /** Where "now" is when the axis runs on into the future. */
  nowX: number | null;
  gridLines: GridLine[];
  labels: { x: number; text: string }[];
  empty: boolean;
}

/** Geometry of a line chart over time with an optional dashed forecast line. */
export function buildLineChart(input: LineChartInput): LineChart {
  const span = Math.max(1, input.endMs - input.startMs);
  const firstMs = input.points[0]?.atMs ?? null;
  const lastMs = input.points.at(-1)?.atMs ?? null;
  const forecastEnd = input.trend && lastMs !== null && input.endMs > lastMs ? input.trend.valueAt(input.endMs) : null;
  const forecastStart = input.trend && firstMs !== null ? input.trend.valueAt(firstMs) : null;
  const values = input.points.map((p) => p.value);
  const top = Math.max(0, ...values, forecastEnd ?? 0, forecastStart ?? 0);
  const scaleMax = niceCeiling(top, 'bytes');
  const x = (atMs: number) => PLOT.left + ((atMs - input.startMs) / span) * PLOT_WIDTH;
  // A shrinking forecast can go below zero; the axis starts at zero, so it is clamped there.
  const y = (value: number) => PLOT.top + PLOT_HEIGHT - (Math.max(0, Math.min(value, scaleMax)) / scaleMax) * PLOT_HEIGHT;
  const path = input.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.atMs).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
  const dots = input.points.map((p) => ({ x: x(p.atMs), y: y(p.value), title: `${input.formatTime(p.atMs)}: ${input.format(p.value)}` }));
  const forecast =
    forecastStart !== null && forecastEnd !== null && firstMs !== null
      ? {
          x1: x(firstMs),
          y1: y(forecastStart),
          x2: x(input.endMs),
          y2: y(forecastEnd),
          title: `forecast for ${input.formatTime(input.endMs)}: ${input.format(Math.max(0, Math.round(forecastEnd)))}`,
        }
      : null;
  const labels: { x: number; text: string }[] = [];
  for (let i = 0; i < MAX_X_LABELS; i++) {
    const atMs = input.startMs + (span * i) / (MAX_X_LABELS - 1);
    labels.push({ x: x(atMs), text: input.formatTime(atMs) });
  }
  return {
    kind: 'line',
    title: input.title,
    desc: input.desc,
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    plotLeft: PLOT.left,
    plotRight: CHART_WIDTH - PLOT.right,
    path,
    dots,
    forecast,
    nowX: forecast && lastMs !== null ? x(lastMs) : null,
    gridLines: gridLines(scaleMax, input.format),
    labels,
    empty: input.points.length === 0,
  };
}
