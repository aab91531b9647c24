/**
 * storage_filling, the one server-wide alert (client null): the store's used
 * share against a high-water mark, and a forecast of the days until full
 * from the recent growth (growthTrend, the same line the statistics charts
 * draw). The detector is pure (test/unit/storage-filling.test.ts); gathering
 * the figures (statfs of the blob directory, or the stored bytes against
 * S3_CAPACITY_BYTES) is `gatherStorageFacts`, evaluated by the periodic pass
 * only (decision 85).
 */
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { formatBytes } from '@cairn/shared';
import { gt, sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { backupRuns, chunks } from '../db/schema.ts';
import { growthTrend, type Sample } from '../stats/growth-forecast.ts';
import type { AlertCondition } from './detectors.ts';

export interface StorageFacts {
  /** 'disk': the file system holding the blob directory; 's3': the bucket against its configured capacity. */
  store: 'disk' | 's3';
  usedBytes: number;
  capacityBytes: number;
  /** Used bytes over the recent past, oldest first, the newest being `usedBytes` now. */
  samples: readonly Sample[];
  now: Date;
}

export interface StorageAlertSettings {
  warnPercent: number;
  criticalPercent: number;
  /** A forecast of fewer days than this until full warns even below the high-water mark. */
  forecastDays: number;
}

/** In code, not configuration (decision 85): the usual disk-monitoring marks, and two weeks to react. */
export const DEFAULT_STORAGE_ALERT_SETTINGS: StorageAlertSettings = { warnPercent: 80, criticalPercent: 90, forecastDays: 14 };

/** The days of growth the forecast looks at. */
export const FORECAST_WINDOW_DAYS = 14;

const DAY_MS = 86_400_000;

function formatDays(days: number): string {
  return days < 1 ? 'less than a day' : `${Math.floor(days)} day${Math.floor(days) === 1 ? '' : 's'}`;
}

export function detectStorageFilling(facts: StorageFacts, settings: StorageAlertSettings = DEFAULT_STORAGE_ALERT_SETTINGS): AlertCondition[] {
  if (facts.capacityBytes <= 0) return [];
  const percent = (facts.usedBytes / facts.capacityBytes) * 100;
  const where = facts.store === 'disk' ? 'the blob store disk' : 'the S3 store';
  const usedText = `${formatBytes(facts.usedBytes)} of ${formatBytes(facts.capacityBytes)} used (${Math.round(percent)}%)`;
  const days = growthTrend(facts.samples)?.daysUntil(facts.capacityBytes, facts.now.getTime()) ?? null;
  const forecastText = days === null ? 'not growing' : `full in ${formatDays(days)} at the recent growth`;
  const severity = percent >= settings.criticalPercent ? 'critical' : percent >= settings.warnPercent || (days !== null && days < settings.forecastDays) ? 'warning' : null;
  if (severity === null) return [];
  // One alert whatever the cause: the key stays `storage_filling` as it goes from forecast to high-water mark.
  return [
    {
      type: 'storage_filling',
      key: 'storage_filling',
      severity,
      path: null,
      observed: `${usedText}; ${forecastText}`,
      reference: `warning at ${settings.warnPercent}% or under ${settings.forecastDays} days to full, critical at ${settings.criticalPercent}%`,
      message: `${where} is filling: ${usedText}, ${forecastText}`,
    },
  ];
}

/** statfs of `dir`, or of its nearest existing parent: the blob directory appears with the first stored object. */
async function statfsOfNearest(dir: string) {
  for (let current = dir; ; current = path.dirname(current)) {
    try {
      return await statfs(current);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(current) === current) throw error;
    }
  }
}

/**
 * The figures for the detector; null when there is nothing to compare (an
 * S3 store without S3_CAPACITY_BYTES). Samples: the used bytes now, minus the
 * bytes runs newly stored since each day of the window (backup_runs.bytes_new).
 * That ignores what GC freed and, on a disk, what others wrote: the line is
 * the growth backups cause, erring towards warning early (decision 85).
 */
export async function gatherStorageFacts(ctx: AppContext, now: Date = new Date()): Promise<StorageFacts | null> {
  let usedBytes: number;
  let capacityBytes: number;
  if (ctx.blobs.kind === 'disk') {
    const fs = await statfsOfNearest(ctx.blobs.location);
    // As df counts: used is what is taken, capacity is used plus what the server may still write (bavail).
    // Blocks reserved for root, or held back by the host, are neither ours to fill nor "used".
    usedBytes = (fs.blocks - fs.bfree) * fs.bsize;
    capacityBytes = usedBytes + fs.bavail * fs.bsize;
  } else {
    const capacity = ctx.config.alerts.s3CapacityBytes;
    if (capacity === undefined) return null;
    capacityBytes = capacity;
    const [row] = await ctx.database.db.select({ total: sql<string>`coalesce(sum(${chunks.size}), 0)` }).from(chunks);
    usedBytes = Number(row?.total ?? 0);
  }
  const from = new Date(now.getTime() - FORECAST_WINDOW_DAYS * DAY_MS);
  const daily = await ctx.database.db
    .select({ day: sql<number>`floor(extract(epoch from ${backupRuns.finishedAt}) / 86400)::int`, bytes: sql<string>`sum(${backupRuns.bytesNew})` })
    .from(backupRuns)
    .where(gt(backupRuns.finishedAt, from))
    .groupBy(sql`1`);
  const perDay = new Map(daily.map((d) => [Number(d.day), Number(d.bytes)]));
  const samples: Sample[] = [];
  const today = Math.floor(now.getTime() / DAY_MS);
  // Walking back from now: the value at the end of day d is `used` minus everything stored after it.
  let value = usedBytes;
  samples.push({ atMs: now.getTime(), value });
  for (let day = today; day > today - FORECAST_WINDOW_DAYS; day--) {
    value -= perDay.get(day) ?? 0;
    samples.push({ atMs: day * DAY_MS, value });
  }
  samples.reverse();
  return { store: ctx.blobs.kind, usedBytes, capacityBytes, samples, now };
}
