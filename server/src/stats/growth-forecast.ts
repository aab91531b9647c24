/**
 * Growth of a quantity over time (stored bytes, usually) and when it reaches
 * a limit: an ordinary least-squares line through the recent samples. Pure;
 * used by the storage-filling alert and drawn as the forecast line of the
 * statistics charts, so both say the same thing.
 */
export interface Sample {
  /** Milliseconds since the epoch. */
  atMs: number;
  value: number;
}

export interface GrowthTrend {
  /** Change per day (negative when shrinking). */
  perDay: number;
  /** The line's value at `atMs`. */
  valueAt(atMs: number): number;
  /**
   * Days from `fromMs` until the line reaches `limit`: 0 when already there,
   * null when it never will (flat or shrinking).
   */
  daysUntil(limit: number, fromMs: number): number | null;
}

const DAY_MS = 86_400_000;

/** The trend of `samples`, or null with fewer than two samples or all at one time. */
export function growthTrend(samples: readonly Sample[]): GrowthTrend | null {
  if (samples.length < 2) return null;
  // Days relative to the first sample keep the sums small and exact enough.
  const t0 = samples[0]!.atMs;
  let sumX = 0;
  let sumY = 0;
  for (const s of samples) {
    sumX += (s.atMs - t0) / DAY_MS;
    sumY += s.value;
  }
  const meanX = sumX / samples.length;
  const meanY = sumY / samples.length;
  let sxx = 0;
  let sxy = 0;
  for (const s of samples) {
    const dx = (s.atMs - t0) / DAY_MS - meanX;
    sxx += dx * dx;
    sxy += dx * (s.value - meanY);
  }
  if (sxx === 0) return null;
  const perDay = sxy / sxx;
  const valueAt = (atMs: number) => meanY + perDay * ((atMs - t0) / DAY_MS - meanX);
  return {
    perDay,
    valueAt,
    daysUntil(limit, fromMs) {
      const now = valueAt(fromMs);
      if (now >= limit) return 0;
      if (perDay <= 0) return null;
      return (limit - now) / perDay;
    },
  };
}
