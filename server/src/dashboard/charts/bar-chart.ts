import { CHART_HEIGHT, CHART_WIDTH, type GridLine, gridLines, labelIndexes, niceCeiling, PLOT, PLOT_HEIGHT, PLOT_WIDTH, type ScaleKind } from './chart-scale.ts';

/** One bar series: its name for tooltips and the legend, and its CSS class. */
export interface BarSeries {
  name: string;
  className: string;
}

/** One slot on the x axis (a run or a day) with a value per series; null: nothing to show (no runs that day). */
export interface BarGroup {
  label: string;
  values: (number | null)[];
}

export interface BarChartInput {
  title: string;
  desc: string;
  series: BarSeries[];
  groups: BarGroup[];
  format: (value: number) => string;
  scale: ScaleKind;
  /** A fixed axis maximum (100 for percentages); otherwise a round value above the largest bar. */
  max?: number;
  /** One bar per slot with the series on top of each other (parts of a whole), instead of side by side. */
  stacked?: boolean;
}

export interface Bar {
  x: number;
  y: number;
  width: number;
  height: number;
  className: string;
  title: string;
}

export interface BarChart {
  kind: 'bar';
  title: string;
  desc: string;
  width: number;
  height: number;
  plotLeft: number;
  plotRight: number;
  series: BarSeries[];
  bars: Bar[];
  gridLines: GridLine[];
  labels: { x: number; text: string; anchor: 'middle' | 'end' }[];
  /** No value anywhere: the template says "no data" instead of an empty frame. */
  empty: boolean;
}

/** Geometry of a grouped bar chart (per run or per day), oldest left, newest right. */
export function buildBarChart(input: BarChartInput): BarChart {
  const values = input.groups.flatMap((g) => g.values).filter((v): v is number => v !== null);
  const scaleMax = input.max ?? niceCeiling(Math.max(0, ...values), input.scale);
  const slot = PLOT_WIDTH / Math.max(1, input.groups.length);
  const gap = Math.min(4, slot * 0.2);
  const barWidth = Math.max(1, (slot - gap) / (input.stacked ? 1 : Math.max(1, input.series.length)));
  const bars: Bar[] = [];
  input.groups.forEach((group, i) => {
    const x = PLOT.left + i * slot + gap / 2;
    let below = 0;
    input.series.forEach((series, j) => {
      const value = group.values[j] ?? null;
      if (value === null) return;
      const height = (Math.min(value, scaleMax) / scaleMax) * PLOT_HEIGHT;
      bars.push({
        x: input.stacked ? x : x + j * barWidth,
        y: PLOT.top + PLOT_HEIGHT - below - height,
        width: barWidth,
        height,
        className: series.className,
        title: `${group.label}: ${input.format(value)} ${series.name}`,
      });
      if (input.stacked) below += height;
    });
  });
  const plotRight = CHART_WIDTH - PLOT.right;
  const labels = labelIndexes(input.groups.length).map((i) => {
    const x = PLOT.left + (i + 0.5) * slot;
    // Centred under a thin bar at the right edge, the newest label would be cut off: it ends at the edge instead.
    return x > plotRight - 24 ? { x: plotRight, text: input.groups[i]!.label, anchor: 'end' as const } : { x, text: input.groups[i]!.label, anchor: 'middle' as const };
  });
  return {
    kind: 'bar',
    title: input.title,
    desc: input.desc,
    width: CHART_WIDTH,
    height: CHART_HEIGHT,
    plotLeft: PLOT.left,
    plotRight,
    series: input.series,
    bars,
    gridLines: gridLines(scaleMax, input.format),
    labels,
    empty: values.length === 0 || (input.max === undefined && values.every((v) => v === 0)),
  };
}
