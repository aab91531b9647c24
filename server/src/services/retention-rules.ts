/**
 * Retention rules, pure: one function decides, for all versions of one
 * client, which are kept, which are pruned, and when each kept one expires
 * under the current rules (for the prune simulator). Golden-table tested in
 * test/unit/retention-rules.test.ts. Pruning (retention.service.ts) runs
 * it a batch of paths at a time: keptRestorePoints once per client, then
 * planVersions per batch (decisions 119, 134).
 *
 * A version is kept if ANY rule keeps it:
 *  - the base policy (the user's "N versions, D days", or the client's
 *    override), per path, exactly as versionsToPrune;
 *  - folder rules `count.min_age` (days): for each path under the folder,
 *    keep at least `count` versions at least `min_age` days apart, walking
 *    from the newest version back (`3.1 2.15` keeps 3 versions a day apart
 *    and 2 versions 15 days apart);
 *  - restore points: the last N finished runs and one per hour/day/week/
 *    month/year for given counts (restic's forget --keep-*, UTC buckets);
 *    every version visible in a kept run's tree (as of its finish) is kept.
 * The current version of an existing file is never pruned. Times are the
 * server's clock (`now` and the runs' finished_at), never a client's.
 */
import { versionsToPrune, type RetentionPolicy } from './retention-policy.ts';

const DAY_MS = 86_400_000;

export interface FolderRule {
  /** Keep at least this many versions (>= 1) ... */
  count: number;
  /** ... each at least this many days older than the previous kept one (>= 0). */
  minAgeDays: number;
}

export interface FolderRules {
  /** Absolute folder path; applies to the paths under it (and the path itself). */
  folder: string;
  rules: FolderRule[];
}

export interface RestorePointRules {
  last: number;
  hourly: number;
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
}

export interface RetentionRules {
  base: RetentionPolicy;
  folders: FolderRules[];
  restorePoints: RestorePointRules;
}

/** The rules stored beside the base policy, on a user and (as an override) on a client. */
export type StoredRetentionRules = Omit<RetentionRules, 'base'>;

export interface ClientVersion {
  id: number;
  path: string;
  validFrom: Date;
  /** null while the version is current. */
  validTo: Date | null;
}

export interface FinishedRun {
  id: number;
  finishedAt: Date;
}

export type RestorePointKind = keyof RestorePointRules;

/** A run kept as a restore point, with the kinds of rule that keep it. */
export type KeptRun<R extends FinishedRun = FinishedRun> = R & { keptBy: RestorePointKind[] };

export type KeepReason = 'current' | 'base' | 'folder' | 'restore-point';

export interface KeptVersion {
  reasons: KeepReason[];
  /**
   * When the version will be pruned under the current rules if nothing else
   * changes: a date for the base policy's age limit; null when no fixed date
   * is known (current, kept by count until newer versions or runs displace it,
   * or by a restore point).
   */
  expiresAt: Date | null;
}

export interface RetentionPlan {
  kept: Map<number, KeptVersion>;
  pruned: number[];
  /** Ids of the runs kept as restore points, newest first. */
  keptRuns: number[];
}

export const NO_RESTORE_POINTS: RestorePointRules = { last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 };

/** No folder rules, no restore points: the base policy alone, as before issue 14. */
export const NO_STORED_RULES: StoredRetentionRules = { folders: [], restorePoints: NO_RESTORE_POINTS };

/**
 * The rules that apply to a client: its own override when it has one (null =
 * none), else its owner's. Independent of the base policy's override.
 */
export function effectiveStoredRules(owner: StoredRetentionRules, client: StoredRetentionRules | null): StoredRetentionRules {
  return client ?? owner;
}

export function hasRestorePoints(rules: RestorePointRules): boolean {
  return Object.values(rules).some((count) => count > 0);
}

function isUnder(path: string, folder: string): boolean {
  const f = folder.endsWith('/') && folder.length > 1 ? folder.slice(0, -1) : folder;
  return path === f || path.startsWith(f === '/' ? '/' : `${f}/`);
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const dayNum = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - dayNum);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / DAY_MS + 1) / 7);
  return `${t.getUTCFullYear()}-W${week}`;
}

const BUCKETS: [keyof RestorePointRules, (d: Date) => string][] = [
  ['hourly', (d) => d.toISOString().slice(0, 13)],
  ['daily', (d) => d.toISOString().slice(0, 10)],
  ['weekly', isoWeek],
  ['monthly', (d) => d.toISOString().slice(0, 7)],
  ['yearly', (d) => d.toISOString().slice(0, 4)],
];

/** The runs kept as restore points, newest first (restic's --keep-last/-hourly/... semantics, UTC), each with what keeps it. */
export function keptRestorePoints<R extends FinishedRun>(runs: readonly R[], rules: RestorePointRules): KeptRun<R>[] {
  const newestFirst = [...runs].sort((a, b) => b.finishedAt.getTime() - a.finishedAt.getTime() || b.id - a.id);
  const keptBy = new Map<number, RestorePointKind[]>();
  const keep = (run: R, kind: RestorePointKind) => {
    const kinds = keptBy.get(run.id);
    if (kinds) kinds.push(kind);
    else keptBy.set(run.id, [kind]);
  };
  newestFirst.slice(0, Math.max(0, rules.last)).forEach((run) => keep(run, 'last'));
  for (const [kind, bucketOf] of BUCKETS) {
    let left = rules[kind];
    let lastBucket: string | null = null;
    for (const run of newestFirst) {
      if (left <= 0) break;
      const bucket = bucketOf(run.finishedAt);
      if (bucket === lastBucket) continue;
      lastBucket = bucket;
      keep(run, kind);
      left -= 1;
    }
  }
  return newestFirst.flatMap((run) => {
    const kinds = keptBy.get(run.id);
    return kinds ? [{ ...run, keptBy: kinds }] : [];
  });
}

/** Whether `version` is in the tree as of `at` (it became current at or before, and was still current after). */
export function visibleAt(version: Pick<ClientVersion, 'validFrom' | 'validTo'>, at: Date): boolean {
  return version.validFrom.getTime() <= at.getTime() && (version.validTo === null || version.validTo.getTime() > at.getTime());
}

/** Folder rules kept ids for one path's versions (newest first). */
function folderKeeps(newestFirst: readonly ClientVersion[], rules: readonly FolderRule[]): Set<number> {
  const kept = new Set<number>();
  for (const rule of rules) {
    let lastKeptFrom: number | null = null;
    let taken = 0;
    for (const version of newestFirst) {
      if (taken >= rule.count) break;
      const from = version.validFrom.getTime();
      if (lastKeptFrom !== null && lastKeptFrom - from < rule.minAgeDays * DAY_MS) continue;
      kept.add(version.id);
      lastKeptFrom = from;
      taken += 1;
    }
  }
  return kept;
}

/** Decide retention for all versions of one client under `rules` at `now`. */
export function planRetention(
  versions: readonly ClientVersion[],
  runs: readonly FinishedRun[],
  rules: RetentionRules,
  now: Date,
): RetentionPlan {
  const keptRuns = keptRestorePoints(
    runs.filter((run) => run.finishedAt.getTime() <= now.getTime()),
    rules.restorePoints,
  );
  return { ...planVersions(versions, keptRuns, rules, now), keptRuns: keptRuns.map((run) => run.id) };
}

/**
 * planRetention for some of a client's paths (all versions of each), with
 * the client's kept restore points computed once beforehand: what pruning
 * runs per batch of paths. `rules.restorePoints` is not read here.
 */
export function planVersions(
  versions: readonly ClientVersion[],
  keptRuns: readonly FinishedRun[],
  rules: RetentionRules,
  now: Date,
): Omit<RetentionPlan, 'keptRuns'> {
  const keptTimes = keptRuns.map((run) => run.finishedAt);
  const byPath = new Map<string, ClientVersion[]>();
  for (const version of versions) {
    const list = byPath.get(version.path) ?? [];
    list.push(version);
    byPath.set(version.path, list);
  }
  const kept = new Map<number, KeptVersion>();
  const pruned: number[] = [];
  for (const [path, list] of byPath) {
    const newestFirst = [...list].sort(
      (a, b) => Number(a.validTo !== null) - Number(b.validTo !== null) || b.validFrom.getTime() - a.validFrom.getTime() || b.id - a.id,
    );
    const basePruned = new Set(versionsToPrune(list, rules.base, now));
    const folderRules = rules.folders.filter((f) => isUnder(path, f.folder)).flatMap((f) => f.rules);
    const byFolder = folderKeeps(newestFirst, folderRules);
    for (const version of newestFirst) {
      const reasons: KeepReason[] = [];
      let expiresAt: Date | null = null;
      let fixedOnly = true;
      if (version.validTo === null) {
        reasons.push('current');
        fixedOnly = false;
      }
      if (!basePruned.has(version.id) && version.validTo !== null) {
        reasons.push('base');
        if (rules.base.days === null) fixedOnly = false;
        else expiresAt = new Date(version.validTo.getTime() + rules.base.days * DAY_MS);
      }
      if (byFolder.has(version.id)) {
        reasons.push('folder');
        fixedOnly = false;
      }
      if (keptTimes.some((at) => visibleAt(version, at))) {
        reasons.push('restore-point');
        fixedOnly = false;
      }
      if (reasons.length === 0) pruned.push(version.id);
      else kept.set(version.id, { reasons, expiresAt: fixedOnly ? expiresAt : null });
    }
  }
  return { kept, pruned: pruned.sort((a, b) => a - b) };
}
