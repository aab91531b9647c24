/**
 * Shared geometry of the statistics charts (server-side SVG, no script).
 * The viewBox is narrow (600 units) so that, scaled down to a phone's width,
 * the axis text stays readable; the CSS enlarges it further on small screens.
 */
export const CHART_WIDTH = 600;
export const CHART_HEIGHT = 220;
export const PLOT = { top: 12, bottom: 28, left: 100, right: 16 } as const;
export const PLOT_HEIGHT = CHART_HEIGHT - PLOT.top - PLOT.bottom;
export const PLOT_WIDTH = CHART_WIDTH - PLOT.left - PLOT.right;
/** At most this many x-axis labels, so they never overlap. */
export const MAX_X_LABELS = 6;

export type ScaleKind = 'bytes' | 'decimal' | 'seconds';

/** Durations' axis maxima in seconds: each half is a round duration too. */
const SECOND_STEPS = [10, 20, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400, 21_600, 43_200, 86_400];

/**
 * A round axis maximum at or above `value`, whose half (the middle grid
 * line) is round too: 1, 1.5 or 2 times a power of two for bytes (at least
 * 1 KiB, so KiB/MiB labels come out round), 1, 2, 4 or 6 times a power of
 * ten otherwise (at least 2, so counts never show half a file).
 */
export function niceCeiling(value: number, kind: ScaleKind): number {
  if (kind === 'bytes') {
    if (!(value > 1024)) return 1024;
    const power = 2 ** Math.floor(Math.log2(value));
    for (const step of [1, 1.5, 2]) if (power * step >= value) return power * step;
    return power * 2;
  }
  if (kind === 'seconds') {
    const step = SECOND_STEPS.find((candidate) => candidate >= value);
    if (step !== undefined) return step;
  }
  if (!(value > 2)) return 2;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 6, 10]) if (power * step >= value) return power * step;
  return power * 10;
}

/** Which of `count` x positions get a label: evenly spaced, always the newest. */
export function labelIndexes(count: number): number[] {
  if (count === 0) return [];
  const step = Math.max(1, Math.ceil(count / MAX_X_LABELS));
  const result: number[] = [];
  // Counted back from the newest so the latest point is always labelled.
  for (let i = count - 1; i >= 0; i -= step) result.unshift(i);
  return result;
}

export interface GridLine {
  y: number;
  label: string;
}

export function gridLines(scaleMax: number, format: (value: number) => string): GridLine[] {
  return [0, 0.5, 1].map((f) => ({ y: PLOT.top + PLOT_HEIGHT - f * PLOT_HEIGHT, label: format(scaleMax * f) }));
}
