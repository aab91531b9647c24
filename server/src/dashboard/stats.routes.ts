import { statfs } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { formatBytes, formatDuration } from '@cairn/shared';
import { BadRequestError } from '../errors.ts';
import { growthTrend, type Sample } from '../stats/growth-forecast.ts';
import { lastDays } from './bytes-chart.ts';
import { type BarSeries, buildBarChart } from './charts/bar-chart.ts';
import { buildLineChart } from './charts/line-chart.ts';
import { type DashboardDeps, queryParam, renderPage, viewer } from './dashboard-context.ts';
import type { DashboardRepository, Viewer } from './dashboard.repository.ts';

export const STATS_RANGES = [7, 30, 90] as const;
const DEFAULT_RANGE = 30;
/** The client page's per-run charts show at most this many runs: more bars than that would be thinner than a pixel on a phone. */
export const MAX_RUNS = 60;
const DAY_MS = 86_400_000;
/** Rows of the client page's table of its latest runs. */
const RECENT_RUNS = 8;
/** Beyond this a "full in" figure is noise: the trend of a month says nothing about decades. */
const FULL_IN_MAX_DAYS = 3650;

const BYTES_SERIES: BarSeries[] = [
  { name: 'uploaded', className: 'bar-uploaded' },
  { name: 'newly stored', className: 'bar-stored' },
];

function rangeDays(request: FastifyRequest): number {
  const text = queryParam(request, 'days');
  if (text === '') return DEFAULT_RANGE;
  const days = STATS_RANGES.find((range) => String(range) === text);
  if (days === undefined) throw new BadRequestError(`days: one of ${STATS_RANGES.join(', ')}`);
  return days;
}

const shortDay = (day: string) => day.slice(5);
const percent = (value: number) => `${Math.round(value)}%`;
const count = (value: number) => Math.round(value).toLocaleString('en');
// formatDuration says "0 ms" for zero; the axis counts seconds.
const seconds = (value: number) => (value === 0 ? '0s' : formatDuration(value * 1000));
const dayOf = (atMs: number) => new Date(atMs).toISOString().slice(5, 10);

/**
 * Free space of the disk store's volume, or null when it is not known (S3:
 * no capacity to reach). Only admins are told: the volume is shared by all
 * users, and its free space says how much the others store.
 */
async function diskFreeBytes(deps: DashboardDeps, user: Viewer): Promise<number | null> {
  const blobs = deps.ctx.blobs;
  if (!user.isAdmin || blobs.kind !== 'disk') return null;
  // The blob directory appears with the first upload; before that its parent's volume is where it will be.
  for (let dir = blobs.location; ; dir = path.dirname(dir)) {
    try {
      const stats = await statfs(dir);
      return stats.bavail * stats.bsize;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(dir) === dir) {
        deps.ctx.log.warn({ err: error }, 'statfs of the blob directory failed; the statistics show no capacity');
        return null;
      }
    }
  }
}

/**
 * Stored bytes at the end of each day, counted back from what is stored now:
 * each day's value is today's minus the bytes newly stored after it. So the
 * line ends at the true figure; pruning shows as a lower level, not a dip.
 */
export function storedSeries(days: string[], storedNow: number, newPerDay: (day: string) => number, nowMs: number): Sample[] {
  const samples: Sample[] = [];
  let value = storedNow;
  for (let i = days.length - 1; i >= 0; i--) {
    const day = days[i]!;
    const atMs = i === days.length - 1 ? nowMs : Date.parse(`${day}T00:00:00Z`) + DAY_MS;
    samples.unshift({ atMs, value: Math.max(0, value) });
    value -= newPerDay(day);
  }
  return samples;
}

async function buildStats(repo: DashboardRepository, deps: DashboardDeps, user: Viewer, range: number, client: { id: string; storedBytes: number } | null) {
  const now = deps.now();
  const days = lastDays(now, range);
  const since = new Date(`${days[0]}T00:00:00Z`);
  const perDay = await repo.runsPerDay(user, since, client?.id);
  const get = (day: string) => perDay.get(day);
  const totals = [...perDay.values()].reduce(
    (sum, d) => ({
      finished: sum.finished + d.finished,
      succeeded: sum.succeeded + d.succeeded,
      uploaded: sum.uploaded + d.uploaded,
      stored: sum.stored + d.stored,
      filesChanged: sum.filesChanged + d.filesChanged,
    }),
    { finished: 0, succeeded: 0, uploaded: 0, stored: 0, filesChanged: 0 },
  );

  const storedNow = client ? client.storedBytes : (await repo.storageTotals(user)).storedBytes;
  const samples = storedSeries(days, storedNow, (day) => get(day)?.stored ?? 0, now.getTime());
  const trend = growthTrend(samples);
  const free = client ? null : await diskFreeBytes(deps, user);
  const fullInDays = trend && free !== null ? trend.daysUntil(storedNow + free, now.getTime()) : null;
  // The axis runs a third of the range into the future so the forecast has room.
  const endMs = now.getTime() + (trend ? Math.round(range / 3) * DAY_MS : 0);
  const growth = buildLineChart({
    title: 'Stored bytes',
    desc: trend
      ? `Stored bytes over the last ${range} days, now ${formatBytes(storedNow)}; the dashed line is the trend, ${formatBytes(Math.round(Math.abs(trend.perDay)))} a day ${trend.perDay < 0 ? 'less' : 'more'}.`
      : `Stored bytes over the last ${range} days, now ${formatBytes(storedNow)}.`,
    points: samples,
    startMs: since.getTime(),
    endMs,
    trend,
    format: formatBytes,
    formatTime: dayOf,
  });

  const successRate = buildBarChart({
    title: 'Success rate per day',
    desc: `Share of finished runs that succeeded, per day over the last ${range} days; days without runs have no bar.`,
    series: [
      { name: 'succeeded', className: 'bar-success' },
      { name: 'partial or failed', className: 'bar-failed' },
    ],
    groups: days.map((day) => {
      const d = get(day);
      if (!d || d.finished === 0) return { label: shortDay(day), values: [null, null] };
      const rate = (100 * d.succeeded) / d.finished;
      return { label: shortDay(day), values: [rate, 100 - rate] };
    }),
    format: percent,
    scale: 'decimal',
    max: 100,
    stacked: true,
  });

  return { now, days, totals, storedNow, trend, free, fullInDays, growth, successRate, perDay, get };
}

export const statsRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const { repo } = deps;

  app.get('/stats', async (request, reply) => {
    const user = viewer(request);
    const range = rangeDays(request);
    const stats = await buildStats(repo, deps, user, range, null);
    const { days, get } = stats;
    const bytes = buildBarChart({
      title: 'Bytes per day',
      desc: `Bytes uploaded and newly stored per day over the last ${range} days, all clients together.`,
      series: BYTES_SERIES,
      groups: days.map((day) => ({ label: shortDay(day), values: [get(day)?.uploaded ?? 0, get(day)?.stored ?? 0] })),
      format: formatBytes,
      scale: 'bytes',
    });
    const files = buildBarChart({
      title: 'Files changed per day',
      desc: `Files changed per day over the last ${range} days, all clients together.`,
      series: [{ name: 'files changed', className: 'bar-files' }],
      groups: days.map((day) => ({ label: shortDay(day), values: [get(day)?.filesChanged ?? 0] })),
      format: count,
      scale: 'decimal',
    });
    const duration = buildBarChart({
      title: 'Average run duration per day',
      desc: `Average duration of the finished runs per day over the last ${range} days.`,
      series: [{ name: 'average duration', className: 'bar-duration' }],
      groups: days.map((day) => ({ label: shortDay(day), values: [get(day)?.avgSeconds ?? null] })),
      format: seconds,
      scale: 'seconds',
    });
    return renderPage(request, reply, deps, 'stats', {
      title: 'Statistics',
      nav: 'stats',
      range,
      ranges: STATS_RANGES,
      fullInMaxDays: FULL_IN_MAX_DAYS,
      basePath: '/stats',
      stats,
      charts: { bytes, files, duration },
      perClient: await repo.runsPerClient(user, new Date(`${days[0]}T00:00:00Z`)),
    });
  });

  app.get<{ Params: { id: string } }>('/clients/:id/stats', async (request, reply) => {
    const user = viewer(request);
    const client = await repo.getClient(user, request.params.id);
    const range = rangeDays(request);
    const [summary] = await repo.listClientSummaries(user, { clientId: client.id });
    const stats = await buildStats(repo, deps, user, range, { id: client.id, storedBytes: summary?.storedBytes ?? 0 });
    const runs = await repo.recentRunFigures(client.id, new Date(`${stats.days[0]}T00:00:00Z`), MAX_RUNS);
    const runLabel = (startedAt: Date) => startedAt.toISOString().slice(5, 16).replace('T', ' ');
    const bytes = buildBarChart({
      title: 'Bytes per run',
      desc: `Bytes uploaded and newly stored by each of the last ${runs.length} runs.`,
      series: BYTES_SERIES,
      groups: runs.map((run) => ({ label: runLabel(run.startedAt), values: [run.uploaded, run.stored] })),
      format: formatBytes,
      scale: 'bytes',
    });
    const files = buildBarChart({
      title: 'Files changed per run',
      desc: `Files changed by each of the last ${runs.length} runs.`,
      series: [{ name: 'files changed', className: 'bar-files' }],
      groups: runs.map((run) => ({ label: runLabel(run.startedAt), values: [run.filesChanged] })),
      format: count,
      scale: 'decimal',
    });
    const duration = buildBarChart({
      title: 'Duration per run',
      desc: `How long each of the last ${runs.length} finished runs took.`,
      series: [{ name: 'duration', className: 'bar-duration' }],
      groups: runs.map((run) => ({ label: runLabel(run.startedAt), values: [run.seconds] })),
      format: seconds,
      scale: 'seconds',
    });
    // Labels of per-run bars carry the time too; the axis shows only the day.
    for (const chart of [bytes, files, duration]) for (const label of chart.labels) label.text = label.text.slice(0, 5);
    const finishedRuns = runs.filter((run) => run.seconds !== null);
    return renderPage(request, reply, deps, 'client-stats', {
      title: `${client.name}: statistics`,
      nav: 'clients',
      tab: 'stats',
      client,
      range,
      ranges: STATS_RANGES,
      fullInMaxDays: FULL_IN_MAX_DAYS,
      basePath: `/clients/${client.id}/stats`,
      stats,
      runCount: runs.length,
      maxRuns: MAX_RUNS,
      medianSeconds: median(finishedRuns.map((run) => run.seconds!)),
      latestRuns: runs.slice(-RECENT_RUNS).reverse(),
      charts: { bytes, files, duration },
    });
  });
};

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
