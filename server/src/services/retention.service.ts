import { and, asc, desc, eq, gt, inArray, isNotNull, lte, sql } from 'drizzle-orm';
import type { FileVersion } from '@cairn/shared';
import { isPruningHeld } from '../alerts/alert-engine.ts';
import type { AppContext } from '../app-context.ts';
import { LOCK_KEYS, lockManagerFor } from '../db/advisory-locks.ts';
import { rowsOf, type Db } from '../db/database.ts';
import { backupRuns, clientPaths, clients, fileVersions, prunedVersionSpans, users } from '../db/schema.ts';
import { NotFoundError } from '../errors.ts';
import { versionColumns, versionPathJoin, type VersionRow } from '../db/version-columns.ts';
import { toFileVersion } from './backup-repository.ts';
import { effectiveRetentionPolicy } from './retention-policy.ts';
import {
  effectiveStoredRules,
  hasRestorePoints,
  keptRestorePoints,
  planVersions,
  type KeepReason,
  type KeptRun,
  type RestorePointKind,
  type RestorePointRules,
  type RetentionRules,
} from './retention-rules.ts';

/** Paths examined per round trip; each round reads their versions and deletes what the rules prune. */
const PATH_BATCH = 500;
const DELETE_BATCH = 1000;

/**
 * The rules in force for a client: the base policy (its override, else its
 * owner's) and the folder and restore-point rules (its override, else its
 * owner's). NotFoundError for an unknown client.
 */
export async function clientRetentionRules(db: Db, clientId: string): Promise<RetentionRules> {
  const [row] = await db
    .select({
      ownerVersions: users.retentionVersions,
      ownerDays: users.retentionDays,
      ownerRules: users.retentionRules,
      clientVersions: clients.retentionVersions,
      clientDays: clients.retentionDays,
      clientRules: clients.retentionRules,
    })
    .from(clients)
    .innerJoin(users, eq(users.id, clients.ownerId))
    .where(eq(clients.id, clientId))
    .limit(1);
  if (!row) throw new NotFoundError('no such client');
  const base = effectiveRetentionPolicy(
    { retentionVersions: row.ownerVersions, retentionDays: row.ownerDays },
    { retentionVersions: row.clientVersions, retentionDays: row.clientDays },
  );
  return { base, ...effectiveStoredRules(row.ownerRules, row.clientRules) };
}

export interface RestorePoint {
  runId: string;
  finishedAt: Date;
}

/**
 * The client's runs kept as restore points under `restorePoints` at `now`,
 * newest first: finished runs that succeeded or were partial (a failed run's
 * tree is not one to return to), finished at or before `now`.
 */
export async function clientRestorePoints(db: Db, clientId: string, restorePoints: RestorePointRules, now: Date): Promise<KeptRun<RestorePoint & { id: number }>[]> {
  if (!hasRestorePoints(restorePoints)) return [];
  const runs = await db
    .select({ runId: backupRuns.id, finishedAt: backupRuns.finishedAt })
    .from(backupRuns)
    .where(
      and(eq(backupRuns.clientId, clientId), inArray(backupRuns.status, ['succeeded', 'partial']), isNotNull(backupRuns.finishedAt), lte(backupRuns.finishedAt, now)),
    )
    .orderBy(desc(backupRuns.finishedAt));
  // Run ids are uuids; the pure function wants numbers, so the position in finish order stands in.
  return keptRestorePoints(
    runs.map((run, index) => ({ id: runs.length - index, runId: run.runId, finishedAt: run.finishedAt! })),
    restorePoints,
  );
}

interface PlannedBatch {
  pruned: VersionRow[];
  /** Non-current versions kept, with why and until when (null: no fixed date). */
  kept: { version: VersionRow; reasons: KeepReason[]; expiresAt: Date | null }[];
}

/**
 * Calls `visit` with what `rules` prune and keep, a batch of paths at a
 * time, in path order. Only paths with at least one non-current version are
 * read: a path with just its current version has nothing to prune. The
 * restore points are computed once, before the first batch.
 */
async function forEachPlannedBatch(
  db: Db,
  clientId: string,
  rules: RetentionRules,
  now: Date,
  visit: (batch: PlannedBatch) => Promise<boolean | void>,
): Promise<void> {
  const keptRuns = await clientRestorePoints(db, clientId, rules.restorePoints, now);
  let after: string | null = null;
  for (;;) {
    const paths: string[] = (
      await db
        .selectDistinct({ path: clientPaths.path })
        .from(fileVersions)
        .innerJoin(clientPaths, versionPathJoin)
        .where(and(eq(clientPaths.clientId, clientId), isNotNull(fileVersions.validTo), after === null ? undefined : gt(clientPaths.path, after)))
        .orderBy(asc(clientPaths.path))
        .limit(PATH_BATCH)
    ).map((row) => row.path);
    if (paths.length === 0) return;
    after = paths[paths.length - 1]!;
    const versions = await db
      .select(versionColumns)
      .from(fileVersions)
      .innerJoin(clientPaths, versionPathJoin)
      .where(and(eq(clientPaths.clientId, clientId), inArray(clientPaths.path, paths)))
      .orderBy(asc(clientPaths.path), desc(fileVersions.validFrom));
    const plan = planVersions(versions, keptRuns, rules, now);
    const prunedIds = new Set(plan.pruned);
    const batch: PlannedBatch = { pruned: [], kept: [] };
    for (const version of versions) {
      const kept = plan.kept.get(version.id);
      if (prunedIds.has(version.id)) batch.pruned.push(version);
      else if (kept && version.validTo !== null) batch.kept.push({ version, ...kept });
    }
    if ((await visit(batch)) === false) return;
    if (paths.length < PATH_BATCH) return;
  }
}

/**
 * Deletes the client's file versions its retention rules prune at `now`
 * (default: the server's clock now) and returns how many. The contents they
 * referenced become garbage for GC once unreferenced and past the grace period.
 * Each deleted version leaves its path and span in pruned_version_spans, so
 * the file browser can say what a tree as of an earlier time lost (decision 135).
 * Prunes nothing (`held: true`) while the client has an unacknowledged
 * mass-change alert: the older versions may be the only good copies (decision 79).
 */
export async function pruneClientVersions(ctx: AppContext, clientId: string, options: { now?: Date } = {}): Promise<{ pruned: number; held: boolean }> {
  const db = ctx.database.db;
  const rules = await clientRetentionRules(db, clientId);
  if (await isPruningHeld(db, clientId)) {
    ctx.log.warn({ clientId }, 'pruning held: the client has an open mass-change alert');
    return { pruned: 0, held: true };
  }
  let pruned = 0;
  await forEachPlannedBatch(db, clientId, rules, options.now ?? new Date(), async ({ pruned: versions }) => {
    for (let i = 0; i < versions.length; i += DELETE_BATCH) {
      const ids = versions.slice(i, i + DELETE_BATCH).map((v) => v.id);
      // valid_to is not null re-checks, at delete time, that none of them became current again (it cannot, but a
      // wrong decision here would delete a live file's only version).
      pruned += await db.transaction(async (tx) => {
        const deleted = await tx
          .delete(fileVersions)
          .where(and(inArray(fileVersions.id, ids), isNotNull(fileVersions.validTo)))
          .returning({ pathId: fileVersions.pathId, validFrom: fileVersions.validFrom, validTo: fileVersions.validTo });
        if (deleted.length > 0) {
          await tx.insert(prunedVersionSpans).values(deleted.map((d) => ({ clientId, pathId: d.pathId, validFrom: d.validFrom, validTo: d.validTo! })));
        }
        return deleted.length;
      });
    }
  });
  if (pruned > 0) ctx.log.info({ clientId, pruned, policy: rules.base, folders: rules.folders.length, restorePoints: rules.restorePoints }, 'pruned file versions by retention rules');
  return { pruned, held: false };
}

export interface KeptVersionPreview extends FileVersion {
  reasons: KeepReason[];
  /** When the base policy's age limit prunes it, if nothing else keeps it; null: no fixed date. */
  expiresAt: string | null;
}

export interface PrunePreview {
  rules: RetentionRules;
  /** The versions that would be pruned, in path order, at most `limit`. */
  versions: FileVersion[];
  /** How many would be pruned in all. */
  total: number;
  /** Old (non-current) versions that stay, in path order, at most `limit`, with why and until when. */
  kept: KeptVersionPreview[];
  keptTotal: number;
  /** The runs kept as restore points, newest first, with the rules that keep each. */
  restorePoints: (RestorePoint & { keptBy: RestorePointKind[] })[];
}

/**
 * What pruning the client would delete and keep at `now`, deleting nothing:
 * the prune simulator. `rules` previews rules before they are saved
 * (default: the client's effective ones). Lists at most `limit` (default
 * 1000) versions of each kind; `total` and `keptTotal` count them all.
 */
export async function previewClientPrune(
  ctx: AppContext,
  clientId: string,
  options: { now?: Date; rules?: RetentionRules; limit?: number } = {},
): Promise<PrunePreview> {
  const db = ctx.database.db;
  const rules = options.rules ?? (await clientRetentionRules(db, clientId));
  const now = options.now ?? new Date();
  const limit = options.limit ?? 1000;
  const listed: FileVersion[] = [];
  const kept: KeptVersionPreview[] = [];
  let total = 0;
  let keptTotal = 0;
  await forEachPlannedBatch(db, clientId, rules, now, async (batch) => {
    total += batch.pruned.length;
    keptTotal += batch.kept.length;
    for (const version of batch.pruned) if (listed.length < limit) listed.push(toFileVersion(version));
    for (const k of batch.kept) {
      if (kept.length < limit) kept.push({ ...toFileVersion(k.version), reasons: k.reasons, expiresAt: k.expiresAt?.toISOString() ?? null });
    }
  });
  const restorePoints = (await clientRestorePoints(db, clientId, rules.restorePoints, now)).map(({ runId, finishedAt, keptBy }) => ({ runId, finishedAt, keptBy }));
  return { rules, versions: listed, total, kept, keptTotal, restorePoints };
}

/**
 * How many of the client's paths (under `prefix`, a canonical folder; `/`:
 * all) had a version current at `at` that pruning has since deleted: what
 * the tree as of `at` lacks (decision 135).
 */
export async function prunedPathsAsOf(db: Db, clientId: string, at: Date, prefix = '/'): Promise<number> {
  const under = prefix === '/' ? sql`true` : sql`(${clientPaths.path} = ${prefix} or starts_with(${clientPaths.path}, ${prefix + '/'}))`;
  const [row] = rowsOf<{ n: number }>(
    await db.execute(sql`
      select count(distinct ${prunedVersionSpans.pathId})::int as n from ${prunedVersionSpans}
      join ${clientPaths} on ${clientPaths.id} = ${prunedVersionSpans.pathId}
      where ${prunedVersionSpans.clientId} = ${clientId} and ${prunedVersionSpans.validFrom} <= ${at.toISOString()}
        and ${prunedVersionSpans.validTo} > ${at.toISOString()} and ${under}`),
  );
  return row?.n ?? 0;
}

/**
 * Prunes every client (the periodic sweep). Runs in one replica at a time:
 * returns `{ ran: false }` when another holds the sweep lock.
 */
export async function sweepRetention(
  ctx: AppContext,
  options: { now?: Date } = {},
): Promise<{ ran: boolean; clients: number; pruned: number }> {
  const result = await lockManagerFor(ctx.database).tryExclusive(LOCK_KEYS.retentionSweep, async () => {
    const all = await ctx.database.db.select({ id: clients.id }).from(clients).orderBy(asc(clients.id));
    let pruned = 0;
    for (const client of all) {
      try {
        pruned += (await pruneClientVersions(ctx, client.id, options)).pruned;
      } catch (error) {
        ctx.log.error({ err: error, clientId: client.id }, 'retention sweep failed for a client');
      }
    }
    return { clients: all.length, pruned };
  });
  return result.ran ? { ran: true, ...result.value } : { ran: false, clients: 0, pruned: 0 };
}
