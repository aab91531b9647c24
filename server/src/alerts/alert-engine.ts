/**
 * The alert engine: loads a client's facts, asks the detectors which
 * conditions hold, and reconciles the `alerts` table with them. A condition
 * without an unresolved alert opens one (the partial unique index on
 * (client, dedupe key) makes a concurrent second insert a no-op, decision 78);
 * an unresolved alert whose condition no longer holds is resolved. The events
 * of a pass go to the context's AlertNotifier.
 *
 * Mass change is the exception (decision 79): it resolves only once someone
 * acknowledged it, and while it is open (not yet acknowledged) retention does
 * not prune the client (`isPruningHeld`).
 */
import { failedScheduledRestores } from '../services/restore-jobs.service.ts';
import { detectRestoreFailures } from './restore-failures.ts';
import { and, asc, desc, eq, inArray, isNull, lte, max, ne, sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { LOCK_KEYS, lockManagerFor } from '../db/advisory-locks.ts';
import type { Db } from '../db/database.ts';
import { alerts, backupRuns, clientPaths, clients, fileVersions } from '../db/schema.ts';
import { versionPathJoin } from '../db/version-columns.ts';
import { recordAudit } from '../services/audit-log.service.ts';
import { expectedBackupGaps } from '../services/clients.service.ts';
import type { Actor } from '../services/users.service.ts';
import type { AlertEvent, AlertNotifier, AlertSnapshot } from './alert-event.ts';
import { loadAlertDefaults, mergeAlertSettings } from './alert-settings.ts';
import { detectAlertConditions, type AlertCondition, type AlertSettings, type WatchedFolder, type WatchedFolderFacts } from './detectors.ts';
import { detectStorageDamage, gatherDamageFacts } from './storage-damaged.ts';
import { replicaStatus } from '../storage/replication-job.ts';
import { detectReplicaLagging } from './replica-lagging.ts';
import { DEFAULT_STORAGE_ALERT_SETTINGS, detectStorageFilling, gatherStorageFacts, type StorageAlertSettings } from './storage-filling.ts';

/** Runs read per client: enough for every detector's history and window (see AlertSettings). */
const RUN_HISTORY = 200;
/** Versions per file file_shrank looks back over: a drop further back than this no longer holds its alert. */
const SHRINK_HISTORY = 20;
/** Files per watched folder file_shrank looks at (a folder of dumps holds a few; one holding a whole tree is capped). */
const WATCHED_FILES = 1000;

export const SILENT_NOTIFIER: AlertNotifier = { notify: async () => {} };

type AlertRow = typeof alerts.$inferSelect;

export interface EngineOptions {
  /** Default: the server's clock now. */
  now?: Date;
  /** Default: DEFAULT_ALERT_SETTINGS <- the stored server-wide overrides <- the client's own overrides. */
  settings?: AlertSettings;
  /** Default: DEFAULT_STORAGE_ALERT_SETTINGS (the periodic pass only). */
  storageSettings?: StorageAlertSettings;
}

/** Files under `folder`: the folder itself is a directory, so `starts_with` on `<folder>/` (or everything for `/`). */
function underFolder(folder: string) {
  const prefix = folder === '/' ? '/' : `${folder}/`;
  return sql`starts_with(${clientPaths.path}, ${prefix})`;
}

async function loadWatchedFolder(db: Db, clientId: string, folder: WatchedFolder): Promise<WatchedFolderFacts> {
  const [newest] = await db
    .select({ at: max(fileVersions.validFrom) })
    .from(fileVersions)
    .innerJoin(clientPaths, versionPathJoin)
    .where(and(eq(clientPaths.clientId, clientId), eq(fileVersions.kind, 'file'), underFolder(folder.path)));
  // The files that exist now, then their versions, newest first (retention keeps their number small).
  const current = await db
    .select({ path: clientPaths.path })
    .from(fileVersions)
    .innerJoin(clientPaths, versionPathJoin)
    .where(and(eq(clientPaths.clientId, clientId), isNull(fileVersions.validTo), eq(fileVersions.kind, 'file'), underFolder(folder.path)))
    .orderBy(asc(clientPaths.path))
    .limit(WATCHED_FILES);
  const rows =
    current.length === 0
      ? []
      : await db
          .select({ path: clientPaths.path, size: fileVersions.size, validFrom: fileVersions.validFrom })
          .from(fileVersions)
          .innerJoin(clientPaths, versionPathJoin)
          .where(and(eq(clientPaths.clientId, clientId), eq(fileVersions.kind, 'file'), inArray(clientPaths.path, current.map((c) => c.path))))
          .orderBy(asc(clientPaths.path), desc(fileVersions.validFrom));
  const files = new Map<string, { size: number; validFrom: Date }[]>();
  for (const row of rows) {
    const list = files.get(row.path) ?? [];
    if (list.length < SHRINK_HISTORY) list.push({ size: row.size, validFrom: row.validFrom });
    files.set(row.path, list);
  }
  return {
    folder,
    newestVersionAt: newest?.at ?? null,
    files: [...files].map(([path, versions]) => ({ path, versions })),
  };
}

/** Opens and resolves the client's alerts from its current facts; returns the events it handed to the notifier. */
export async function evaluateClientAlerts(ctx: AppContext, clientId: string, options: EngineOptions = {}): Promise<AlertEvent[]> {
  const db = ctx.database.db;
  const now = options.now ?? new Date();
  const [client] = await db.select().from(clients).where(eq(clients.id, clientId)).limit(1);
  if (!client) return [];
  const runs = await db
    .select()
    .from(backupRuns)
    .where(eq(backupRuns.clientId, clientId))
    .orderBy(desc(backupRuns.startedAt))
    .limit(RUN_HISTORY);
  const settings = options.settings ?? mergeAlertSettings(await loadAlertDefaults(db), client.alertSettings);
  const watchedNeeded = settings.expectedFile.enabled || settings.fileShrank.enabled;
  const watched = watchedNeeded ? await Promise.all(settings.expectedFile.folders.map((folder) => loadWatchedFolder(db, clientId, folder))) : [];
  const gaps = expectedBackupGaps(client, now);
  const conditions = detectAlertConditions(
    {
      client: {
        createdAt: client.createdAt,
        lastPingAt: client.lastPingAt,
        lastSuccessAt: client.lastBackupAt,
        backupIntervalSeconds: gaps.meanSeconds,
        backupGapSeconds: gaps.longestSeconds,
        pingIntervalSeconds: client.pingIntervalSeconds,
      },
      runs,
      now,
      watched,
    },
    settings,
  );
  conditions.push(...detectRestoreFailures(await failedScheduledRestores(db, clientId)));
  const kept = settings.fileShrank.enabled ? await shrankAlertsStillStanding(db, clientId, settings.expectedFile.folders) : [];
  const events = await reconcile(db, clientId, conditions, now, kept);
  return notifyEvents(ctx, clientId, events.map((event) => ({ kind: event.kind, alert: toSnapshot(event.row, client.name, client.ownerId) })));
}

/**
 * Keys of unresolved file_shrank alerts whose file has had no new version
 * since the alert opened (decision 87). Retention may have pruned the
 * reference version since (a client keeping one version per path loses it
 * at the very run that shrank), and the detector then sees nothing to
 * compare; the file is still the truncated one, so its alert stands until a
 * new version arrives or the file is deleted.
 */
async function shrankAlertsStillStanding(db: Db, clientId: string, folders: readonly WatchedFolder[]): Promise<string[]> {
  if (folders.length === 0) return [];
  const rows = await db
    .select({ key: alerts.dedupeKey, path: alerts.path })
    .from(alerts)
    .innerJoin(clientPaths, and(eq(clientPaths.clientId, alerts.clientId), eq(clientPaths.path, alerts.path)))
    .innerJoin(fileVersions, and(versionPathJoin, isNull(fileVersions.validTo)))
    .where(and(eq(alerts.clientId, clientId), eq(alerts.type, 'file_shrank'), ne(alerts.state, 'resolved'), lte(fileVersions.validFrom, alerts.openedAt)));
  // A folder no longer watched releases its files' alerts.
  const watched = (p: string | null) => p !== null && folders.some((f) => f.path === '/' || p.startsWith(`${f.path}/`));
  return rows.filter((r) => watched(r.path)).map((r) => r.key);
}

async function notifyEvents(ctx: AppContext, clientId: string | null, snapshots: AlertEvent[]): Promise<AlertEvent[]> {
  if (snapshots.length > 0) {
    ctx.log.info({ clientId, opened: snapshots.filter((e) => e.kind === 'opened').length, resolved: snapshots.filter((e) => e.kind === 'resolved').length }, 'alerts changed');
    try {
      await (ctx.alertNotifier ?? SILENT_NOTIFIER).notify(snapshots);
    } catch (error) {
      // The notifier's contract is never to reject; if one does, the alerts stand and the dashboard shows them.
      ctx.log.error({ err: error, clientId }, 'alert notifier failed');
    }
  }
  return snapshots;
}

/**
 * The server-wide alerts, reconciled together (they share client null, so
 * one pass must see every condition, or it would resolve the others):
 * storage filling (decision 85) and replica lagging (decision 165). Gathered
 * in the periodic pass only, as the figures change slowly and statfs or a
 * sum over every chunk is not worth paying after each run. A store without
 * a known capacity (S3 without S3_CAPACITY_BYTES), or no replica, holds no
 * condition, so an alert opened before the setting was removed resolves. A
 * figure that cannot be gathered keeps its open alert as it is.
 */
export async function evaluateServerAlerts(ctx: AppContext, options: EngineOptions = {}): Promise<AlertEvent[]> {
  const now = options.now ?? new Date();
  const conditions: AlertCondition[] = [];
  const kept: string[] = [];
  try {
    const facts = await gatherStorageFacts(ctx, now);
    if (facts) conditions.push(...detectStorageFilling(facts, options.storageSettings ?? DEFAULT_STORAGE_ALERT_SETTINGS));
  } catch (error) {
    ctx.log.error({ err: error }, 'storage alert failed');
    kept.push('storage_filling');
  }
  try {
    conditions.push(...detectStorageDamage(await gatherDamageFacts(ctx.database.db)));
  } catch (error) {
    ctx.log.error({ err: error }, 'storage damage alert failed');
    kept.push('storage_damaged');
  }
  try {
    conditions.push(...detectReplicaLagging(await replicaStatus(ctx, now), ctx.config.alerts.replicaLagSeconds));
  } catch (error) {
    ctx.log.error({ err: error }, 'replica lag alert failed');
    kept.push('replica_lagging');
  }
  const events = await reconcile(ctx.database.db, null, conditions, now, kept);
  return notifyEvents(ctx, null, events.map((event) => ({ kind: event.kind, alert: toSnapshot(event.row, null, null) })));
}

/** `clientId` null: the server-wide alerts. */
async function reconcile(db: Db, clientId: string | null, conditions: AlertCondition[], now: Date, kept: readonly string[] = []): Promise<{ kind: AlertEvent['kind']; row: AlertRow }[]> {
  const events: { kind: AlertEvent['kind']; row: AlertRow }[] = [];
  const unresolved = await db
    .select()
    .from(alerts)
    .where(and(clientId === null ? isNull(alerts.clientId) : eq(alerts.clientId, clientId), ne(alerts.state, 'resolved')));
  const holding = new Set([...conditions.map((c) => c.key), ...kept]);
  const known = new Set(unresolved.map((a) => a.dedupeKey));
  for (const condition of conditions) {
    if (known.has(condition.key)) continue;
    const [row] = await db
      .insert(alerts)
      .values({
        type: condition.type,
        severity: condition.severity,
        clientId,
        dedupeKey: condition.key,
        path: condition.path,
        observed: condition.observed,
        reference: condition.reference,
        message: condition.message,
        openedAt: now,
      })
      .onConflictDoNothing()
      .returning();
    if (row) events.push({ kind: 'opened', row });
  }
  const cleared = unresolved.filter((a) => !holding.has(a.dedupeKey) && !(a.type === 'mass_change' && a.state === 'open'));
  if (cleared.length > 0) {
    // `state <> 'resolved'` again at write time: of two passes racing, one resolves and reports it.
    const rows = await db
      .update(alerts)
      .set({ state: 'resolved', resolvedAt: now })
      .where(and(inArray(alerts.id, cleared.map((a) => a.id)), ne(alerts.state, 'resolved')))
      .returning();
    for (const row of rows) events.push({ kind: 'resolved', row });
  }
  return events;
}

function toSnapshot(row: AlertRow, clientName: string | null, ownerId: string | null): AlertSnapshot {
  return {
    id: row.id,
    type: row.type,
    severity: row.severity,
    clientId: row.clientId,
    clientName,
    ownerId,
    path: row.path,
    message: row.message,
    observed: row.observed,
    reference: row.reference,
    openedAt: row.openedAt.toISOString(),
    resolvedAt: row.resolvedAt?.toISOString() ?? null,
  };
}

/**
 * The periodic pass over every client, in one replica at a time: returns
 * `{ ran: false }` when another holds the lock. One client's failure is
 * logged and does not stop the others.
 */
export async function runAlertEngine(ctx: AppContext, options: EngineOptions = {}): Promise<{ ran: boolean; clients: number; events: number }> {
  const result = await lockManagerFor(ctx.database).tryExclusive(LOCK_KEYS.alertEngine, async () => {
    const all = await ctx.database.db.select({ id: clients.id }).from(clients).orderBy(asc(clients.id));
    let events = 0;
    for (const client of all) {
      try {
        events += (await evaluateClientAlerts(ctx, client.id, options)).length;
      } catch (error) {
        ctx.log.error({ err: error, clientId: client.id }, 'alert engine failed for a client');
      }
    }
    try {
      events += (await evaluateServerAlerts(ctx, options)).length;
    } catch (error) {
      ctx.log.error({ err: error }, 'server-wide alerts failed');
    }
    return { clients: all.length, events };
  });
  return result.ran ? { ran: true, ...result.value } : { ran: false, clients: 0, events: 0 };
}

/** True while the client has a mass-change alert nobody acknowledged yet: retention must not prune it (decision 79). */
export async function isPruningHeld(db: Db, clientId: string): Promise<boolean> {
  const [row] = await db
    .select({ one: sql<number>`1` })
    .from(alerts)
    .where(and(eq(alerts.clientId, clientId), eq(alerts.type, 'mass_change'), eq(alerts.state, 'open')))
    .limit(1);
  return row !== undefined;
}

/**
 * Marks an open alert acknowledged by `actor`, with an audit entry; false
 * when it is not open (already acknowledged or resolved, or no such alert).
 * The caller checks that the actor may see the alert's client.
 */
export async function acknowledgeAlert(db: Db, alertId: string, actor: Actor, now: Date = new Date()): Promise<boolean> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(alerts)
      .set({ state: 'acknowledged', acknowledgedAt: now, acknowledgedBy: actor.userId })
      .where(and(eq(alerts.id, alertId), eq(alerts.state, 'open')))
      .returning();
    if (!row) return false;
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'alert.acknowledge',
      targetType: row.clientId ? 'client' : 'server',
      targetId: row.clientId,
      details: { alertId: row.id, type: row.type, message: row.message },
    });
    return true;
  });
}
