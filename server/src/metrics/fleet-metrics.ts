/**
 * Figures about the backups themselves, read from the database at scrape time
 * (decision 65): every replica answers the same numbers, and a restart resets
 * nothing. Hence gauges, not counters: a deleted client takes its runs with
 * it, so a run count may go down.
 *
 * Cost per scrape: one grouped scan of backup_runs, one row per client (its
 * newest finished run found through backup_runs_client_started_idx), and one
 * sum over chunks: the same work as the admin's overview page.
 */
import { ne, sql } from 'drizzle-orm';
import { Gauge, Registry } from 'prom-client';
import { dateOf, numberOf, rowsOf, type Db } from '../db/database.ts';
import { alerts } from '../db/schema.ts';
import { classifyClientHealth, HEALTH_STATES, type ClientHealth } from '../dashboard/client-health.ts';
import { expectedBackupGaps, scheduleColumnsOfRaw } from '../services/clients.service.ts';
import type { ReplicaStatus } from '../storage/replication-job.ts';

export const RUN_STATUSES = ['running', 'succeeded', 'partial', 'failed'] as const;
type RunStatus = (typeof RUN_STATUSES)[number];

export interface FleetSnapshot {
  runsByStatus: Record<RunStatus, number>;
  bytesUploaded: number;
  bytesNew: number;
  /** Clients with at least one successful (or partial) backup. */
  lastSuccess: { clientId: string; clientName: string; at: Date }[];
  clientsByHealth: Record<ClientHealth, number>;
  storedBytes: number;
  /** Open alerts per alert type: filled in from the alerts table by the alert engine (issue 12). */
  openAlertsByType: Map<string, number>;
  /** The replica store's lag (decision 165); absent: no replica, and no replica series. */
  replica?: ReplicaStatus;
}


export async function readFleetSnapshot(db: Db, now: Date): Promise<FleetSnapshot> {
  const runs = rowsOf<Record<string, unknown>>(
    await db.execute(sql`
      select status, count(*) as runs, coalesce(sum(bytes_uploaded), 0) as uploaded, coalesce(sum(bytes_new), 0) as new_bytes
      from backup_runs group by status`),
  );
  const clientRows = rowsOf<Record<string, unknown>>(
    await db.execute(sql`
      select c.id, c.name, c.created_at, c.last_ping_at, c.last_backup_at, c.backup_interval_seconds, c.ping_interval_seconds,
             c.schedule_cron, c.schedule_time_zone, c.backup_window_start, c.backup_window_end,
             (select r.status from backup_runs r where r.client_id = c.id and r.finished_at is not null
                order by r.started_at desc limit 1) as last_run_status
      from clients c order by c.id`),
  );
  const stored = rowsOf<Record<string, unknown>>(await db.execute(sql`select coalesce(sum(size), 0) as stored from chunks`))[0];

  const runsByStatus = Object.fromEntries(RUN_STATUSES.map((status) => [status, 0])) as Record<RunStatus, number>;
  let bytesUploaded = 0;
  let bytesNew = 0;
  for (const row of runs) {
    const status = String(row.status) as RunStatus;
    if (status in runsByStatus) runsByStatus[status] = numberOf(row.runs);
    bytesUploaded += numberOf(row.uploaded);
    bytesNew += numberOf(row.new_bytes);
  }

  const clientsByHealth = Object.fromEntries(HEALTH_STATES.map((state) => [state, 0])) as Record<ClientHealth, number>;
  const lastSuccess: FleetSnapshot['lastSuccess'] = [];
  for (const row of clientRows) {
    // last_backup_at is set when a run finishes succeeded or partial, in the same transaction.
    const lastSuccessAt = dateOf(row.last_backup_at);
    const schedule = scheduleColumnsOfRaw(row);
    const health = classifyClientHealth(
      {
        createdAt: dateOf(row.created_at)!,
        lastPingAt: dateOf(row.last_ping_at),
        lastSuccessAt,
        lastRunStatus: (row.last_run_status ?? null) as 'succeeded' | 'partial' | 'failed' | null,
        backupIntervalSeconds: schedule.backupIntervalSeconds,
        backupGapSeconds: expectedBackupGaps(schedule, now).longestSeconds,
        pingIntervalSeconds: numberOf(row.ping_interval_seconds),
      },
      now,
    );
    clientsByHealth[health] += 1;
    if (lastSuccessAt !== null) lastSuccess.push({ clientId: String(row.id), clientName: String(row.name), at: lastSuccessAt });
  }

  return {
    runsByStatus,
    bytesUploaded,
    bytesNew,
    lastSuccess,
    clientsByHealth,
    storedBytes: numberOf(stored?.stored),
    openAlertsByType: await readOpenAlertsByType(db),
  };
}

/** Alerts not yet resolved (open or acknowledged), by type. */
async function readOpenAlertsByType(db: Db): Promise<Map<string, number>> {
  const rows = await db
    .select({ type: alerts.type, n: sql<number>`count(*)::int` })
    .from(alerts)
    .where(ne(alerts.state, 'resolved'))
    .groupBy(alerts.type);
  return new Map(rows.map((row) => [row.type, row.n]));
}

/**
 * The snapshot in Prometheus text format. A fresh registry per scrape: the
 * numbers are a snapshot of the database, not state this process keeps, and
 * concurrent scrapes cannot see each other's half-set gauges. prom-client
 * escapes label values (backslash, double quote, newline).
 */
export async function renderFleetMetrics(snapshot: FleetSnapshot): Promise<string> {
  const registry = new Registry();
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name, help, labelNames, registers: [registry] });

  const runs = gauge('cairn_backup_runs', 'Backup runs recorded in the database, by status.', ['status']);
  for (const status of RUN_STATUSES) runs.set({ status }, snapshot.runsByStatus[status]);
  gauge('cairn_backup_uploaded_bytes', 'Bytes agents uploaded over all recorded runs.').set(snapshot.bytesUploaded);
  gauge('cairn_backup_new_bytes', 'Bytes newly stored by uploads over all recorded runs (after deduplication).').set(snapshot.bytesNew);
  const lastSuccess = gauge(
    'cairn_client_last_success_timestamp_seconds',
    'When the client last finished a successful or partial backup, in Unix seconds; no series before its first.',
    ['client_id', 'client_name'],
  );
  for (const client of snapshot.lastSuccess) {
    lastSuccess.set({ client_id: client.clientId, client_name: client.clientName }, client.at.getTime() / 1000);
  }
  const clients = gauge('cairn_clients', 'Clients by health state, as the dashboard shows them.', ['health']);
  for (const health of HEALTH_STATES) clients.set({ health }, snapshot.clientsByHealth[health]);
  gauge('cairn_stored_bytes', 'Bytes of all objects in the blob store.').set(snapshot.storedBytes);
  const alerts = gauge('cairn_alerts_open', 'Open alerts, by alert type.', ['type']);
  for (const [type, open] of snapshot.openAlertsByType) alerts.set({ type }, open);
  if (snapshot.replica?.configured) {
    const replica = snapshot.replica;
    gauge('cairn_replica_lag_seconds', 'Age of the oldest pack not yet copied to the replica store; 0 when caught up.').set(replica.lagSeconds);
    gauge('cairn_replica_behind_objects', 'Packs and v1 objects not yet copied to the replica store.').set(replica.packsBehind + replica.objectsBehind);
    gauge('cairn_replica_behind_bytes', 'Bytes not yet copied to the replica store.').set(replica.bytesBehind);
    gauge('cairn_replica_copied_bytes', 'Bytes of the verified copies on the replica store of objects the primary holds.').set(replica.copiedBytes);
  }
  return registry.metrics();
}
