import { and, asc, eq, gt, inArray, isNotNull } from 'drizzle-orm';
import type { FileVersion } from '@cairn/shared';
import { isPruningHeld } from '../alerts/alert-engine.ts';
import type { AppContext } from '../app-context.ts';
import { LOCK_KEYS, lockManagerFor } from '../db/advisory-locks.ts';
import type { Db } from '../db/database.ts';
import { clientPaths, clients, fileVersions, users } from '../db/schema.ts';
import { NotFoundError } from '../errors.ts';
import { versionColumns, versionPathJoin, type VersionRow } from '../db/version-columns.ts';
import { toFileVersion } from './backup-repository.ts';
import { effectiveRetentionPolicy, versionsToPrune, type RetentionPolicy } from './retention-policy.ts';

/** Paths examined per round trip; each round reads their versions and deletes what the policy prunes. */
const PATH_BATCH = 500;
const DELETE_BATCH = 1000;

/** The policy in force for a client (its override, else its owner's). NotFoundError for an unknown client. */
export async function clientRetentionPolicy(db: Db, clientId: string): Promise<RetentionPolicy> {
  const [row] = await db
    .select({
      ownerVersions: users.retentionVersions,
      ownerDays: users.retentionDays,
      clientVersions: clients.retentionVersions,
      clientDays: clients.retentionDays,
    })
    .from(clients)
    .innerJoin(users, eq(users.id, clients.ownerId))
    .where(eq(clients.id, clientId))
    .limit(1);
  if (!row) throw new NotFoundError('no such client');
  return effectiveRetentionPolicy(
    { retentionVersions: row.ownerVersions, retentionDays: row.ownerDays },
    { retentionVersions: row.clientVersions, retentionDays: row.clientDays },
  );
}

/**
 * Calls `visit` with the versions `policy` prunes, a batch of paths at a time,
 * in path order. Only paths with at least one non-current version are read:
 * a path with just its current version has nothing to prune.
 */
async function forEachPrunedBatch(
  db: Db,
  clientId: string,
  policy: RetentionPolicy,
  now: Date,
  visit: (pruned: VersionRow[]) => Promise<boolean | void>,
): Promise<void> {
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
      .where(and(eq(clientPaths.clientId, clientId), inArray(clientPaths.path, paths)));
    const byPath = new Map<string, (typeof versions)[number][]>();
    for (const version of versions) {
      const list = byPath.get(version.path);
      if (list) list.push(version);
      else byPath.set(version.path, [version]);
    }
    const pruned: (typeof versions)[number][] = [];
    for (const path of paths) {
      const list = byPath.get(path) ?? [];
      const ids = new Set(versionsToPrune(list, policy, now));
      pruned.push(...list.filter((v) => ids.has(v.id)));
    }
    if ((await visit(pruned)) === false) return;
    if (paths.length < PATH_BATCH) return;
  }
}

/**
 * Deletes the client's file versions its retention policy prunes at `now`
 * (default: the server's clock now) and returns how many. The contents they
 * referenced become garbage for GC once unreferenced and past the grace period.
 * Prunes nothing (`held: true`) while the client has an unacknowledged
 * mass-change alert: the older versions may be the only good copies (decision 79).
 */
export async function pruneClientVersions(ctx: AppContext, clientId: string, options: { now?: Date } = {}): Promise<{ pruned: number; held: boolean }> {
  const db = ctx.database.db;
  const policy = await clientRetentionPolicy(db, clientId);
  if (await isPruningHeld(db, clientId)) {
    ctx.log.warn({ clientId }, 'pruning held: the client has an open mass-change alert');
    return { pruned: 0, held: true };
  }
  let pruned = 0;
  await forEachPrunedBatch(db, clientId, policy, options.now ?? new Date(), async (versions) => {
    for (let i = 0; i < versions.length; i += DELETE_BATCH) {
      const ids = versions.slice(i, i + DELETE_BATCH).map((v) => v.id);
      // valid_to is not null re-checks, at delete time, that none of them became current again (it cannot, but a
      // wrong decision here would delete a live file's only version).
      const deleted = await db
        .delete(fileVersions)
        .where(and(inArray(fileVersions.id, ids), isNotNull(fileVersions.validTo)))
        .returning({ id: fileVersions.id });
      pruned += deleted.length;
    }
  });
  if (pruned > 0) ctx.log.info({ clientId, pruned, policy }, 'pruned file versions by retention policy');
  return { pruned, held: false };
}

export interface PrunePreview {
  policy: RetentionPolicy;
  /** The versions that would be pruned, in path order, at most `limit`. */
  versions: FileVersion[];
  /** How many would be pruned in all. */
  total: number;
}

/**
 * What pruning the client would delete at `now`, deleting nothing. `policy`
 * previews a policy before it is saved (default: the client's effective one).
 * Lists at most `limit` (default 1000) versions; `total` counts them all.
 */
export async function previewClientPrune(
  ctx: AppContext,
  clientId: string,
  options: { now?: Date; policy?: RetentionPolicy; limit?: number } = {},
): Promise<PrunePreview> {
  const db = ctx.database.db;
  const policy = options.policy ?? (await clientRetentionPolicy(db, clientId));
  const limit = options.limit ?? 1000;
  const listed: FileVersion[] = [];
  let total = 0;
  await forEachPrunedBatch(db, clientId, policy, options.now ?? new Date(), async (versions) => {
    total += versions.length;
    for (const version of versions) if (listed.length < limit) listed.push(toFileVersion(version));
  });
  return { policy, versions: listed, total };
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
