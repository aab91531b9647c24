import { formatBytes } from '@cairn/shared';

export interface DayBytes {
  day: string;
  uploaded: number;
  stored: number;
}

export interface ChartBar {
  x: number;
  y: number;
  width: number;
  height: number;
  className: string;
  title: string;
}

export interface BytesChart {
  width: number;
  height: number;
  /** Where the plot starts: room for the byte labels of the y axis, large on phones. */
  left: number;
  bars: ChartBar[];
  gridLines: { y: number; label: string }[];
  labels: { x: number; text: string }[];
  empty: boolean;
}

/** The days from `days - 1` days before `today` up to `today`, as YYYY-MM-DD (UTC). */
export function lastDays(today: Date, days: number): string[] {
  const result: string[] = [];
  for (let i = days - 1; i >= 0; i--) {
    result.push(new Date(today.getTime() - i * 86_400_000).toISOString().slice(0, 10));
  }
  return result;
}

/**
 * Geometry of the overview's bar chart (uploaded and newly stored bytes per
 * day), rendered by the template as inline SVG: no script, no CDN.
 */
export function buildBytesChart(series: DayBytes[]): BytesChart {
  const width = 720;
  const height = 190;
  const top = 20;
  const bottom = 24;
  const left = 104;
  const plotHeight = height - top - bottom;
  const max = Math.max(1, ...series.map((d) => Math.max(d.uploaded, d.stored)));
  const scaleMax = niceCeiling(max);
  const right = 18;
  const slot = (width - left - right) / Math.max(1, series.length);
  const barWidth = Math.max(2, (slot - 4) / 2);
  const bars: ChartBar[] = [];
  const labels: { x: number; text: string }[] = [];
  series.forEach((d, i) => {
    const x = left + i * slot + 2;
    for (const [j, key] of (['uploaded', 'stored'] as const).entries()) {
      const value = d[key];
      const h = (value / scaleMax) * plotHeight;
      bars.push({
        x: x + j * barWidth,
        y: top + plotHeight - h,
        width: barWidth,
        height: h,
        className: key === 'uploaded' ? 'bar-uploaded' : 'bar-stored',
        title: `${d.day}: ${formatBytes(value)} ${key === 'uploaded' ? 'uploaded' : 'newly stored'}`,
      });
    }
    if (i % 5 === 0 || i === series.length - 1) labels.push({ x: x + barWidth, text: d.day.slice(5) });
  });
  const gridLines = [0, 0.5, 1].map((f) => ({ y: top + plotHeight - f * plotHeight, label: formatBytes(scaleMax * f) }));
  return { width, height, left, bars, gridLines, labels, empty: series.every((d) => d.uploaded === 0 && d.stored === 0) };
}

function niceCeiling(value: number): number {
  const power = 2 ** Math.ceil(Math.log2(value));
  return power * 0.75 >= value ? power * 0.75 : power;
}
