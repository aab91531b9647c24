/**
 * The alert detectors: pure functions over one client's facts and run
 * history that return the conditions holding at `now`. No database, no clock:
 * the engine (alert-engine.ts) loads the facts, and the tests pass golden
 * tables (test/unit/alert-detectors.test.ts).
 *
 * Anomaly detectors compare the newest finished, non-failed run with the
 * runs before it using the median and the median absolute deviation (MAD) of
 * the last `historyRuns` of them (decision 77): a few outliers in the history
 * do not move the baseline, and a slow drift moves it along with the client.
 * They say nothing until `minHistory` earlier runs exist.
 */
import { formatBytes, formatDuration, type PreCommandResult } from '@cairn/shared';
import type { AlertSeverity, AlertType } from './alert-event.ts';

export interface RunFacts {
  id: string;
  trigger: string;
  status: 'running' | 'succeeded' | 'partial' | 'failed';
  startedAt: Date;
  finishedAt: Date | null;
  filesScanned: number;
  filesChanged: number;
  bytesScanned: number;
  bytesUploaded: number;
  preCommands: PreCommandResult[];
  error: string | null;
  /** Compression sample of the bytes the run newly stored (backup_runs.sample_*, decision 120): raw and deflated sizes. */
  sampleRawBytes: number;
  sampleCompressedBytes: number;
}

export interface ClientFacts {
  createdAt: Date;
  lastPingAt: Date | null;
  /** Finish time of the newest succeeded or partial run (clients.last_backup_at). */
  lastSuccessAt: Date | null;
  /** The (mean) spacing of scheduled runs. */
  backupIntervalSeconds: number;
  /** The longest gap the schedule leaves between two runs (a cron on weekdays: Friday to Monday); default backupIntervalSeconds. */
  backupGapSeconds?: number;
  pingIntervalSeconds: number;
}

/** A folder the client's owner expects files in (AlertSettings.expectedFile.folders). */
export interface WatchedFolder {
  /** Absolute, without a trailing slash (except `/` itself). */
  path: string;
  /** Alert when no file under the folder got a new or changed version for this many hours. */
  maxAgeHours: number;
}

/** What the engine loaded for one watched folder. */
export interface WatchedFolderFacts {
  folder: WatchedFolder;
  /** valid_from (server clock) of the newest file version under the folder; null when none was ever stored. */
  newestVersionAt: Date | null;
  /** Files under the folder that exist now, each with its newest versions (newest first, the current one first). */
  files: readonly { path: string; versions: readonly { size: number; validFrom: Date }[] }[];
}

export interface DetectorInput {
  client: ClientFacts;
  /** The client's newest runs, newest first (running ones included); a few hundred are plenty. */
  runs: readonly RunFacts[];
  now: Date;
  /** One entry per watched folder; absent or empty when the client watches none. */
  watched?: readonly WatchedFolderFacts[];
}

/** One condition that holds. `key` identifies it within its client: an open alert with the same key is the same alert. */
export interface AlertCondition {
  type: AlertType;
  key: string;
  severity: AlertSeverity;
  path: string | null;
  observed: string;
  reference: string;
  message: string;
}

/** Every threshold, with its default. Scores are in robust standard deviations: |x - median| / (1.4826 * MAD). */
export interface AlertSettings {
  missedBackup: { enabled: boolean; /** Alert when no successful run for this many backup intervals. */ tolerance: number };
  failing: { enabled: boolean; /** The agent counts as stopped after this many ping intervals without a heartbeat. */ offlinePings: number };
  unusualSize: {
    enabled: boolean;
    historyRuns: number;
    minHistory: number;
    score: number;
    /** Deviations smaller than this, or than `minRelative` of the median, never alert. */
    minBytes: number;
    minRelative: number;
  };
  unusualTiming: {
    enabled: boolean;
    historyRuns: number;
    minHistory: number;
    /** A run taking more than this many times its usual duration... */
    durationFactor: number;
    /** ...and at least this much longer. */
    minDurationMs: number;
    /** For daily or rarer schedules: a scheduled run starting this far from its usual time of day. */
    startToleranceSeconds: number;
  };
  extraBackup: {
    enabled: boolean;
    /** Runs are counted over this many backup intervals... */
    windowIntervals: number;
    /** ...and alert above this many times the expected count. */
    factor: number;
  };
  massChange: {
    enabled: boolean;
    historyRuns: number;
    minHistory: number;
    score: number;
    /** At least this many files changed, and at least this share of the files scanned. */
    minFiles: number;
    minShare: number;
    /** And more than the usual count by at least this share of it (1 = twice the usual). */
    minRelative: number;
  };
  /** The other mass change (decision 121): the new bytes of a run stop compressing, as encrypted ones do. */
  incompressible: {
    enabled: boolean;
    historyRuns: number;
    minHistory: number;
    /** The run is judged only when its samples total at least this many bytes... */
    minSampleBytes: number;
    /** ...and an earlier run counts in the baseline only with at least this many. */
    minHistorySampleBytes: number;
    /** Alert when the new bytes deflate to at least this share of their size... */
    minRatio: number;
    /** ...that is at least this much above the usual share... */
    minIncrease: number;
    /** ...and more than this many robust deviations above it. */
    score: number;
  };
  expectedFile: {
    enabled: boolean;
    /** The watched folders; file_shrank looks at files under these too. */
    folders: WatchedFolder[];
  };
  fileShrank: {
    enabled: boolean;
    /** A new version smaller than this share of the reference version... */
    maxRatio: number;
    /** ...and smaller by at least this many bytes (tiny files shrink by half all the time). */
    minBytes: number;
  };
}

export const DEFAULT_ALERT_SETTINGS: AlertSettings = {
  missedBackup: { enabled: true, tolerance: 2 },
  failing: { enabled: true, offlinePings: 3 },
  unusualSize: { enabled: true, historyRuns: 20, minHistory: 5, score: 6, minBytes: 64 * 1024 * 1024, minRelative: 0.5 },
  unusualTiming: { enabled: true, historyRuns: 20, minHistory: 5, durationFactor: 5, minDurationMs: 10 * 60_000, startToleranceSeconds: 3 * 3600 },
  extraBackup: { enabled: true, windowIntervals: 6, factor: 3 },
  massChange: { enabled: true, historyRuns: 20, minHistory: 5, score: 10, minFiles: 200, minShare: 0.3, minRelative: 1 },
  incompressible: { enabled: true, historyRuns: 20, minHistory: 5, minSampleBytes: 1024 * 1024, minHistorySampleBytes: 64 * 1024, minRatio: 0.9, minIncrease: 0.25, score: 6 },
  expectedFile: { enabled: true, folders: [] },
  fileShrank: { enabled: true, maxRatio: 0.5, minBytes: 1024 * 1024 },
};

export interface Baseline {
  median: number;
  /** 1.4826 * MAD: equals the standard deviation for normally distributed values. */
  spread: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function robustBaseline(values: readonly number[]): Baseline {
  const m = median(values);
  return { median: m, spread: 1.4826 * median(values.map((v) => Math.abs(v - m))) };
}

/** Every condition that holds for the client, in detector order. */
export function detectAlertConditions(input: DetectorInput, settings: AlertSettings = DEFAULT_ALERT_SETTINGS): AlertCondition[] {
  return [
    ...(settings.missedBackup.enabled ? detectMissedBackup(input, settings.missedBackup) : []),
    ...(settings.failing.enabled ? detectFailing(input, settings.failing) : []),
    ...(settings.unusualSize.enabled ? detectUnusualSize(input, settings.unusualSize) : []),
    ...(settings.unusualTiming.enabled ? detectUnusualTiming(input, settings.unusualTiming) : []),
    ...(settings.extraBackup.enabled ? detectExtraBackups(input, settings.extraBackup) : []),
    ...(settings.massChange.enabled ? detectMassChange(input, settings.massChange) : []),
    ...(settings.incompressible.enabled ? detectIncompressible(input, settings.incompressible) : []),
    ...(settings.expectedFile.enabled ? detectExpectedFileMissing(input) : []),
    ...(settings.fileShrank.enabled ? detectFileShrank(input, settings.fileShrank) : []),
  ];
}

const isFinished = (run: RunFacts) => run.status !== 'running' && run.finishedAt !== null;
const isUsable = (run: RunFacts) => isFinished(run) && run.status !== 'failed';

/** The newest finished non-failed run and the usable runs before it (newest first, at most `historyRuns`). */
function latestWithHistory(runs: readonly RunFacts[], historyRuns: number): { latest: RunFacts; history: RunFacts[] } | null {
  const usable = runs.filter(isUsable);
  const [latest, ...rest] = usable;
  return latest ? { latest, history: rest.slice(0, historyRuns) } : null;
}

function formatHours(seconds: number): string {
  const hours = seconds / 3600;
  return hours >= 10 ? `${Math.round(hours)} h` : `${Number(hours.toFixed(1))} h`;
}

export function detectMissedBackup(input: DetectorInput, settings: AlertSettings['missedBackup']): AlertCondition[] {
  const { client, now } = input;
  const since = client.lastSuccessAt ?? client.createdAt;
  const ageSeconds = (now.getTime() - since.getTime()) / 1000;
  const gapSeconds = client.backupGapSeconds ?? client.backupIntervalSeconds;
  const limitSeconds = gapSeconds * settings.tolerance;
  if (ageSeconds <= limitSeconds) return [];
  const what = client.lastSuccessAt ? 'no successful backup' : 'never backed up';
  const expected = gapSeconds === client.backupIntervalSeconds ? `every ${formatHours(gapSeconds)}` : `at most ${formatHours(gapSeconds)} apart`;
  return [
    {
      type: 'missed_backup',
      key: 'missed_backup',
      severity: 'warning',
      path: null,
      observed: `${what} for ${formatHours(ageSeconds)}`,
      reference: `${expected}, tolerance ${settings.tolerance}x`,
      message: `${what} for ${formatHours(ageSeconds)} (expected ${expected}, tolerance ${settings.tolerance}x)`,
    },
  ];
}

export function detectFailing(input: DetectorInput, settings: AlertSettings['failing']): AlertCondition[] {
  const { client, now, runs } = input;
  const conditions: AlertCondition[] = [];
  // A run the agent started or finished is a sign of life as good as a heartbeat (an agent run once by cron never pings).
  const newestRun = runs[0];
  const signs = [client.lastPingAt, newestRun?.startedAt ?? null, newestRun?.finishedAt ?? null].filter((d): d is Date => d !== null);
  const heardFrom = signs.length > 0 ? new Date(Math.max(...signs.map((d) => d.getTime()))) : client.createdAt;
  const silentSeconds = (now.getTime() - heardFrom.getTime()) / 1000;
  if (silentSeconds > settings.offlinePings * client.pingIntervalSeconds) {
    conditions.push({
      type: 'failing',
      key: 'failing:agent-silent',
      severity: 'critical',
      path: null,
      observed: signs.length > 0 ? `no heartbeat or run for ${formatHours(silentSeconds)}` : `never reported, created ${formatHours(silentSeconds)} ago`,
      reference: `a heartbeat every ${formatDuration(client.pingIntervalSeconds * 1000)}`,
      message: `the agent stopped reporting: ${signs.length > 0 ? `no heartbeat or run for ${formatHours(silentSeconds)}` : 'it never reported'}`,
    });
  }
  const last = runs.find(isFinished);
  if (!last) return conditions;
  if (last.status === 'failed' || last.status === 'partial') {
    const detail = last.error ? `: ${last.error.slice(0, 200)}` : '';
    conditions.push({
      type: 'failing',
      key: 'failing:run',
      severity: last.status === 'failed' ? 'critical' : 'warning',
      path: null,
      observed: `last run ${last.status}${detail}`,
      reference: 'succeeded',
      message: `the last backup run ${last.status === 'failed' ? 'failed' : 'ended partial'}${detail}`,
    });
  }
  for (const result of last.preCommands) {
    if (result.refused) continue;
    if (!result.timedOut && result.exitCode === 0) continue;
    const outcome = result.timedOut ? 'timed out' : result.exitCode === null ? 'was killed' : `exited with ${result.exitCode}`;
    conditions.push({
      type: 'failing',
      key: `failing:pre-command:${result.command}`,
      severity: 'critical',
      path: null,
      observed: outcome,
      reference: 'exit code 0',
      message: `pre-command \`${result.command.slice(0, 200)}\` ${outcome}`,
    });
  }
  return conditions;
}

/** True when `value` lies far above (or, with `bothSides`, far below) the baseline of `history`. */
function isOutlier(value: number, baseline: Baseline, score: number, minAbsolute: number, minRelative: number, bothSides: boolean): boolean {
  const deviation = bothSides ? Math.abs(value - baseline.median) : value - baseline.median;
  if (deviation < Math.max(minAbsolute, minRelative * baseline.median)) return false;
  // A history of identical values has no spread: any deviation past the floors above is then unusual.
  return baseline.spread === 0 || deviation / baseline.spread > score;
}

export function detectUnusualSize(input: DetectorInput, settings: AlertSettings['unusualSize']): AlertCondition[] {
  const found = latestWithHistory(input.runs, settings.historyRuns);
  if (!found || found.history.length < settings.minHistory) return [];
  const { latest, history } = found;
  const conditions: AlertCondition[] = [];
  const metrics = [
    { key: 'changed', label: 'bytes changed', pick: (r: RunFacts) => r.bytesUploaded, bothSides: false },
    { key: 'total', label: 'total size', pick: (r: RunFacts) => r.bytesScanned, bothSides: true },
  ];
  for (const metric of metrics) {
    const value = metric.pick(latest);
    const baseline = robustBaseline(history.map(metric.pick));
    if (!isOutlier(value, baseline, settings.score, settings.minBytes, settings.minRelative, metric.bothSides)) continue;
    const reference = `median ${formatBytes(baseline.median)} ± ${formatBytes(baseline.spread)} over ${history.length} runs`;
    conditions.push({
      type: 'unusual_size',
      key: `unusual_size:${metric.key}`,
      severity: 'warning',
      path: null,
      observed: formatBytes(value),
      reference,
      message: `${metric.label} of the last run is ${formatBytes(value)}, usually ${formatBytes(baseline.median)}`,
    });
  }
  return conditions;
}

const DAY_SECONDS = 86_400;

function secondOfDay(time: Date): number {
  return Math.floor((time.getTime() / 1000) % DAY_SECONDS);
}

/** Distance between two times of day, across midnight. */
function circularSeconds(a: number, b: number): number {
  const d = Math.abs(a - b) % DAY_SECONDS;
  return Math.min(d, DAY_SECONDS - d);
}

function formatTimeOfDay(second: number): string {
  const h = Math.floor(second / 3600);
  const m = Math.floor((second % 3600) / 60);
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')} UTC`;
}

export function detectUnusualTiming(input: DetectorInput, settings: AlertSettings['unusualTiming']): AlertCondition[] {
  const found = latestWithHistory(input.runs, settings.historyRuns);
  if (!found || found.history.length < settings.minHistory) return [];
  const { latest, history } = found;
  const conditions: AlertCondition[] = [];
  const durationOf = (r: RunFacts) => r.finishedAt!.getTime() - r.startedAt.getTime();
  const duration = durationOf(latest);
  const usual = median(history.map(durationOf));
  if (duration > usual * settings.durationFactor && duration - usual >= settings.minDurationMs) {
    conditions.push({
      type: 'unusual_timing',
      key: 'unusual_timing:duration',
      severity: 'warning',
      path: null,
      observed: `took ${formatDuration(duration)}`,
      reference: `median ${formatDuration(usual)} over ${history.length} runs`,
      message: `the last run took ${formatDuration(duration)}, usually ${formatDuration(usual)}`,
    });
  }
  // Start times only mean something for schedules of a day or more; an hourly client starts at every hour.
  const scheduled = history.filter((r) => r.trigger === 'schedule');
  if (input.client.backupIntervalSeconds >= DAY_SECONDS && latest.trigger === 'schedule' && scheduled.length >= settings.minHistory) {
    const starts = scheduled.map((r) => secondOfDay(r.startedAt));
    // The usual start is the medoid: the historical start closest, across midnight, to all the others.
    let usualStart = starts[0]!;
    let best = Infinity;
    for (const candidate of starts) {
      const total = starts.reduce((sum, s) => sum + circularSeconds(candidate, s), 0);
      if (total < best) {
        best = total;
        usualStart = candidate;
      }
    }
    const start = secondOfDay(latest.startedAt);
    const off = circularSeconds(start, usualStart);
    if (off > settings.startToleranceSeconds) {
      conditions.push({
        type: 'unusual_timing',
        key: 'unusual_timing:start',
        severity: 'warning',
        path: null,
        observed: `started at ${formatTimeOfDay(start)}`,
        reference: `usually ${formatTimeOfDay(usualStart)}, tolerance ${formatHours(settings.startToleranceSeconds)}`,
        message: `the last scheduled run started at ${formatTimeOfDay(start)}, ${formatHours(off)} from its usual ${formatTimeOfDay(usualStart)}`,
      });
    }
  }
  return conditions;
}

export function detectExtraBackups(input: DetectorInput, settings: AlertSettings['extraBackup']): AlertCondition[] {
  const { client, now, runs } = input;
  const windowSeconds = client.backupIntervalSeconds * settings.windowIntervals;
  const from = now.getTime() - windowSeconds * 1000;
  // Runs asked for by a person (on the agent's page or from the dashboard) are expected extras.
  const count = runs.filter((r) => r.trigger === 'schedule' && r.startedAt.getTime() > from).length;
  const limit = settings.windowIntervals * settings.factor;
  if (count <= limit) return [];
  return [
    {
      type: 'extra_backup',
      key: 'extra_backup',
      severity: 'warning',
      path: null,
      observed: `${count} scheduled runs in ${formatHours(windowSeconds)}`,
      reference: `${settings.windowIntervals} expected (every ${formatHours(client.backupIntervalSeconds)}), alert above ${limit}`,
      message: `${count} scheduled runs in the last ${formatHours(windowSeconds)}, expected ${settings.windowIntervals}`,
    },
  ];
}

export function detectMassChange(input: DetectorInput, settings: AlertSettings['massChange']): AlertCondition[] {
  const found = latestWithHistory(input.runs, settings.historyRuns);
  if (!found || found.history.length < settings.minHistory) return [];
  const { latest, history } = found;
  const baseline = robustBaseline(history.map((r) => r.filesChanged));
  const changed = latest.filesChanged;
  if (changed < settings.minFiles || changed < settings.minShare * latest.filesScanned) return [];
  if (!isOutlier(changed, baseline, settings.score, settings.minFiles, settings.minRelative, false)) return [];
  return [
    {
      type: 'mass_change',
      key: 'mass_change',
      severity: 'critical',
      path: null,
      observed: `${changed} of ${latest.filesScanned} files changed`,
      reference: `median ${baseline.median} ± ${Math.round(baseline.spread)} over ${history.length} runs`,
      message: `${changed} of ${latest.filesScanned} files changed in one run, usually ${baseline.median}: pruning of this client is held until the alert is acknowledged`,
    },
  ];
}

/** The share of its size a run's compression sample deflated to (1 = did not compress); NaN without a sample. */
export function sampleRatio(run: Pick<RunFacts, 'sampleRawBytes' | 'sampleCompressedBytes'>): number {
  return run.sampleRawBytes > 0 ? run.sampleCompressedBytes / run.sampleRawBytes : NaN;
}

const percent = (ratio: number) => `${Math.round(ratio * 100)}%`;

/**
 * mass_change by compressibility (decision 121): the newest good run's new
 * bytes deflate to at least `minRatio` of their size, at least `minIncrease`
 * above the median ratio of the earlier good runs that sampled enough bytes,
 * and more than `score` robust deviations above it. Encrypted bytes do not
 * compress at all; a client whose data never compressed (photos, archives)
 * has a median near 1 and never alerts. Same type as the file-count mass
 * change, so it holds pruning and waits for an acknowledgement the same way
 * (decision 79); its own key, so the two open and resolve on their own.
 */
export function detectIncompressible(input: DetectorInput, settings: AlertSettings['incompressible']): AlertCondition[] {
  const [latest, ...earlier] = input.runs.filter(isUsable);
  if (!latest || latest.sampleRawBytes < settings.minSampleBytes) return [];
  const history = earlier.filter((r) => r.sampleRawBytes >= settings.minHistorySampleBytes).slice(0, settings.historyRuns);
  if (history.length < settings.minHistory) return [];
  const ratio = sampleRatio(latest);
  const baseline = robustBaseline(history.map(sampleRatio));
  if (ratio < settings.minRatio) return [];
  if (!isOutlier(ratio, baseline, settings.score, settings.minIncrease, 0, false)) return [];
  return [
    {
      type: 'mass_change',
      key: 'mass_change:incompressible',
      severity: 'critical',
      path: null,
      observed: `new bytes compress to ${percent(ratio)} of their size (${formatBytes(latest.sampleRawBytes)} sampled)`,
      reference: `median ${percent(baseline.median)} ± ${percent(baseline.spread)} over ${history.length} runs`,
      message: `the new bytes of the last run do not compress (${percent(ratio)} of their size, usually ${percent(baseline.median)}), as encrypted files would not: pruning of this client is held until the alert is acknowledged`,
    },
  ];
}

/**
 * expected_file_missing: a watched folder where no file got a new or changed
 * version within its max age (server clock). A folder that never held a file
 * counts from the client's creation. Resolves when a new version arrives.
 */
export function detectExpectedFileMissing(input: DetectorInput): AlertCondition[] {
  const conditions: AlertCondition[] = [];
  for (const { folder, newestVersionAt } of input.watched ?? []) {
    const since = newestVersionAt ?? input.client.createdAt;
    const ageSeconds = (input.now.getTime() - since.getTime()) / 1000;
    if (ageSeconds <= folder.maxAgeHours * 3600) continue;
    const observed = newestVersionAt ? `newest file version ${formatHours(ageSeconds)} old` : `no file stored under it yet (client created ${formatHours(ageSeconds)} ago)`;
    conditions.push({
      type: 'expected_file_missing',
      key: `expected_file_missing:${folder.path}`,
      severity: 'warning',
      path: folder.path,
      observed,
      reference: `a new or changed file every ${formatHours(folder.maxAgeHours * 3600)}`,
      message: `no new or changed file under ${folder.path} for ${formatHours(ageSeconds)} (expected within ${formatHours(folder.maxAgeHours * 3600)})`,
    });
  }
  return conditions;
}

const isShrunk = (size: number, reference: number, settings: AlertSettings['fileShrank']) =>
  size < settings.maxRatio * reference && reference - size >= settings.minBytes;

/**
 * file_shrank (decision 87): a file under a watched folder whose newest
 * version shrank against the version before the drop, and has not come back
 * since. Walking back from the current version, the first drop found is the
 * reference; the condition holds while every version since it is still
 * shrunk against the version before the drop. So it resolves when a later
 * version is back to normal size (or the file is gone), not merely because
 * another, equally truncated, version came.
 */
export function detectFileShrank(input: DetectorInput, settings: AlertSettings['fileShrank']): AlertCondition[] {
  const conditions: AlertCondition[] = [];
  const seen = new Set<string>();
  for (const { files } of input.watched ?? []) {
    for (const file of files) {
      // Nested watched folders list the same file twice: one alert.
      if (seen.has(file.path)) continue;
      seen.add(file.path);
      const v = file.versions;
      for (let i = 1; i < v.length; i++) {
        if (!isShrunk(v[i - 1]!.size, v[i]!.size, settings)) continue;
        const reference = v[i]!;
        if (!v.slice(0, i).every((later) => isShrunk(later.size, reference.size, settings))) break;
        const current = v[0]!;
        conditions.push({
          type: 'file_shrank',
          key: `file_shrank:${file.path}`,
          severity: 'warning',
          path: file.path,
          observed: formatBytes(current.size),
          reference: `previous version ${formatBytes(reference.size)}`,
          message: `${file.path} shrank to ${formatBytes(current.size)} from ${formatBytes(reference.size)} (${Math.round((current.size / reference.size) * 100)}%): a truncated file?`,
        });
        break;
      }
    }
  }
  return conditions;
}
