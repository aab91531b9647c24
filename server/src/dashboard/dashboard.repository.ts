/**
 * The dashboard's own read queries: what the shared services under
 * server/src/services/ do not answer (health facts and sizes per client,
 * storage totals, bytes per day, folder listings with totals, logs by level,
 * the audit log, login failures). Changes go through the services.
 *
 * Every client-scoped query takes a `Viewer`: admins see all clients, other
 * users only their own. A client the viewer may not see is reported exactly
 * like a missing one (NotFoundError), so its existence is not revealed.
 */
import type { FileKind } from '@cairn/shared';
import { and, count, desc, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm';
import { dateOf, isUuid, numberOf, rowsOf, type Db } from '../db/database.ts';
import type { AlertType } from '../alerts/alert-event.ts';
import { alerts, auditLog, backupRuns, clientLogs, clientPaths, clients, fileVersions, users } from '../db/schema.ts';
import { versionColumns, versionPathJoin } from '../db/version-columns.ts';
import { NotFoundError } from '../errors.ts';
import { scheduleColumnsOfRaw } from '../services/clients.service.ts';
import type { FileSearchPatterns } from './file-search.ts';

export interface Viewer {
  id: string;
  username: string;
  isAdmin: boolean;
}

export type ClientRow = typeof clients.$inferSelect;
export type LogRow = typeof clientLogs.$inferSelect;
export type LogLevelFilter = 'debug' | 'info' | 'warn' | 'error';
export type AlertRow = typeof alerts.$inferSelect;
export type AlertState = AlertRow['state'];


/**
 * The file search's candidates (decision 159): `limit + 1` of the client's
 * paths that match (`path_id`, and the `sort_key` they are ordered by), after the path id `after` (one more than a page tells
 * that a next page exists). A name search goes through client_path_names
 * and its (client_id, name gin_trgm_ops) index, ordered by name; a path
 * search (the term has a `/`) reads the client's paths in path order
 * (client_paths_client_path_uq) until it has enough. A query of its own so
 * a test can EXPLAIN it.
 */
export function fileSearchQuery(clientId: string, patterns: FileSearchPatterns, page: { limit: number; after?: number | undefined }): SQL {
  if (patterns.namePattern !== null) {
    const after =
      page.after === undefined
        ? sql`true`
        : sql`(n.name, n.path_id) > (select a.name, a.path_id from client_path_names a where a.path_id = ${page.after} and a.client_id = ${clientId})`;
    return sql`
      select n.path_id, n.name as sort_key from client_path_names n
      where n.client_id = ${clientId} and n.name ilike ${patterns.namePattern} and ${after}
      order by n.name, n.path_id limit ${page.limit + 1}`;
  }
  const after =
    page.after === undefined
      ? sql`true`
      : sql`(p.path, p.id) > (select a.path, a.id from client_paths a where a.id = ${page.after} and a.client_id = ${clientId})`;
  return sql`
    select p.id as path_id, p.path as sort_key from client_paths p
    where p.client_id = ${clientId} and p.path ilike ${patterns.pathPattern} and ${after}
    order by p.path, p.id limit ${page.limit + 1}`;
}

function ownerFilter(viewer: Viewer): SQL | undefined {
  return viewer.isAdmin ? undefined : eq(clients.ownerId, viewer.id);
}

export function createDashboardRepository(db: Db) {
  // ---- users -----------------------------------------------------------------

  async function userExists(id: string): Promise<boolean> {
    if (!isUuid(id)) return false;
    const [row] = await db.select({ id: users.id }).from(users).where(eq(users.id, id));
    return row !== undefined;
  }

  /** Users with how many clients each owns. */
  async function listUsersWithClientCounts() {
    const rows = await db
      .select({ user: users, clientCount: count(clients.id) })
      .from(users)
      .leftJoin(clients, eq(clients.ownerId, users.id))
      .groupBy(users.id)
      .orderBy(users.username);
    return rows.map((row) => ({ ...row.user, clientCount: Number(row.clientCount) }));
  }

  // ---- clients -----------------------------------------------------------------

  /** Clients with what the lists and the overview show about them. */
  async function listClientSummaries(viewer: Viewer, filter: { clientId?: string; ownerId?: string } = {}) {
    const conditions = [viewer.isAdmin ? sql`true` : sql`c.owner_id = ${viewer.id}`];
    if (filter.clientId !== undefined) conditions.push(sql`c.id = ${filter.clientId}`);
    if (filter.ownerId !== undefined) conditions.push(sql`c.owner_id = ${filter.ownerId}`);
    const where = sql.join(conditions, sql` and `);
    const result = await db.execute(sql`
      select c.id, c.name, c.hostname, c.owner_id, u.username as owner_name, c.created_at, c.last_ping_at,
             c.last_backup_at, c.backup_interval_seconds, c.ping_interval_seconds, c.token_prefix, c.agent_version,
             c.agent_state, c.run_requested_at, c.schedule_cron, c.schedule_time_zone, c.backup_window_start, c.backup_window_end,
             (select max(r.started_at) from backup_runs r where r.client_id = c.id) as last_started_at,
             (select r.status from backup_runs r where r.client_id = c.id and r.finished_at is not null
                order by r.started_at desc limit 1) as last_run_status,
             (select max(r.finished_at) from backup_runs r where r.client_id = c.id
                and r.status in ('succeeded', 'partial')) as last_success_at,
             (select coalesce(sum(coalesce(ct.size, ch.size)), 0)
                from (select distinct fv.content_sha256 as sha256 from file_versions fv join client_paths p on p.id = fv.path_id
                      where p.client_id = c.id and fv.content_sha256 is not null) held
                left join contents ct on ct.sha256 = held.sha256
                left join chunks ch on ch.sha256 = held.sha256) as stored_bytes
      from clients c join users u on u.id = c.owner_id
      where ${where}
      order by c.name, u.username`);
    return rowsOf<Record<string, unknown>>(result).map((row) => {
      const lastBackupAt = dateOf(row.last_backup_at);
      const lastSuccessRun = dateOf(row.last_success_at);
      const lastSuccessAt =
        lastBackupAt && lastSuccessRun ? (lastBackupAt > lastSuccessRun ? lastBackupAt : lastSuccessRun) : (lastBackupAt ?? lastSuccessRun);
      return {
        id: String(row.id),
        name: String(row.name),
        hostname: String(row.hostname ?? ''),
        ownerId: String(row.owner_id),
        ownerName: String(row.owner_name),
        createdAt: dateOf(row.created_at)!,
        lastPingAt: dateOf(row.last_ping_at),
        lastSuccessAt,
        lastRunStatus: (row.last_run_status ?? null) as 'succeeded' | 'partial' | 'failed' | null,
        ...scheduleColumnsOfRaw(row),
        lastStartedAt: dateOf(row.last_started_at),
        pingIntervalSeconds: numberOf(row.ping_interval_seconds),
        tokenPrefix: (row.token_prefix ?? null) as string | null,
        agentVersion: (row.agent_version ?? null) as string | null,
        agentState: (row.agent_state ?? null) as string | null,
        runRequestedAt: dateOf(row.run_requested_at),
        storedBytes: numberOf(row.stored_bytes),
      };
    });
  }

  /** The client if the viewer may see it; NotFoundError otherwise. */
  async function getClient(viewer: Viewer, id: string): Promise<ClientRow & { ownerName: string }> {
    if (!isUuid(id)) throw new NotFoundError('no such client');
    const [row] = await db
      .select({ client: clients, ownerName: users.username })
      .from(clients)
      .innerJoin(users, eq(users.id, clients.ownerId))
      .where(and(eq(clients.id, id), ownerFilter(viewer)));
    if (!row) throw new NotFoundError('no such client');
    return { ...row.client, ownerName: row.ownerName };
  }

  // ---- runs and logs -----------------------------------------------------------

  async function recentRuns(viewer: Viewer, limit: number) {
    return db
      .select({ run: backupRuns, clientName: clients.name, clientId: clients.id })
      .from(backupRuns)
      .innerJoin(clients, eq(clients.id, backupRuns.clientId))
      .where(ownerFilter(viewer))
      .orderBy(desc(backupRuns.startedAt))
      .limit(limit);
  }

  /**
   * A page of the client's log lines, newest first by the time the server
   * received them (an agent's clock cannot push lines to the top); lines of
   * one batch share that time and keep the order they were sent in (id).
   * `before` is the id of the last line of the previous page; `nextBefore`
   * continues the listing, null on the last page.
   */
  async function listLogs(clientId: string, options: { level: LogLevelFilter | null; limit: number; before?: number | undefined }) {
    const rows = await db
      .select()
      .from(clientLogs)
      .where(
        and(
          eq(clientLogs.clientId, clientId),
          options.level ? eq(clientLogs.level, options.level) : undefined,
          options.before === undefined
            ? undefined
            : sql`(${clientLogs.receivedAt}, ${clientLogs.id}) < (select c.received_at, c.id from client_logs c where c.id = ${options.before} and c.client_id = ${clientId})`,
        ),
      )
      .orderBy(desc(clientLogs.receivedAt), desc(clientLogs.id))
      .limit(options.limit + 1);
    const logs: LogRow[] = rows.slice(0, options.limit);
    return { logs, nextBefore: rows.length > options.limit ? (logs[logs.length - 1]?.id ?? null) : null };
  }

  // ---- overview ----------------------------------------------------------------

  /**
   * Logical bytes: every retained file version's size, what copying each
   * version would cost. Stored bytes: admins see the whole store's physical
   * size; a user sees the distinct contents their versions reference.
   */
  async function storageTotals(viewer: Viewer) {
    const scope = viewer.isAdmin ? sql`true` : sql`c.owner_id = ${viewer.id}`;
    const logical = rowsOf<Record<string, unknown>>(
      await db.execute(sql`
        select coalesce(sum(fv.size), 0) as logical,
               coalesce(sum(fv.size) filter (where fv.valid_to is null), 0) as current_bytes,
               count(*) filter (where fv.valid_to is null) as current_files
        from file_versions fv join client_paths p on p.id = fv.path_id join clients c on c.id = p.client_id
        where fv.kind = 'file' and ${scope}`),
    )[0];
    const stored = viewer.isAdmin
      ? rowsOf<Record<string, unknown>>(await db.execute(sql`select coalesce(sum(size), 0) as stored from chunks`))[0]
      : rowsOf<Record<string, unknown>>(
          await db.execute(sql`
            select coalesce(sum(coalesce(ct.size, ch.size)), 0) as stored
            from (select distinct fv.content_sha256 as sha256 from file_versions fv join client_paths p on p.id = fv.path_id
                  join clients c on c.id = p.client_id where ${scope} and fv.content_sha256 is not null) held
            left join contents ct on ct.sha256 = held.sha256
            left join chunks ch on ch.sha256 = held.sha256`),
        )[0];
    return {
      logicalBytes: numberOf(logical?.logical),
      currentBytes: numberOf(logical?.current_bytes),
      currentFiles: numberOf(logical?.current_files),
      storedBytes: numberOf(stored?.stored),
    };
  }

  /** Uploaded and newly stored bytes per UTC day since `since`. */
  async function bytesPerDay(viewer: Viewer, since: Date) {
    const scope = viewer.isAdmin ? sql`true` : sql`c.owner_id = ${viewer.id}`;
    const rows = rowsOf<Record<string, unknown>>(
      await db.execute(sql`
        select to_char(r.started_at at time zone 'UTC', 'YYYY-MM-DD') as day,
               coalesce(sum(r.bytes_uploaded), 0) as uploaded, coalesce(sum(r.bytes_new), 0) as stored
        from backup_runs r join clients c on c.id = r.client_id
        where r.started_at >= ${since.toISOString()}::timestamptz and ${scope}
        group by 1`),
    );
    return new Map(rows.map((row) => [String(row.day), { uploaded: numberOf(row.uploaded), stored: numberOf(row.stored) }]));
  }

  /**
   * Run figures per UTC day since `since` for the statistics pages, summed in
   * SQL (one row a day, however many runs): all clients the viewer sees, or
   * one client (already checked with getClient).
   */
  async function runsPerDay(viewer: Viewer, since: Date, clientId?: string) {
    const scope = viewer.isAdmin ? sql`true` : sql`c.owner_id = ${viewer.id}`;
    const client = clientId === undefined ? sql`true` : sql`r.client_id = ${clientId}`;
    const rows = rowsOf<Record<string, unknown>>(
      await db.execute(sql`
        select to_char(r.started_at at time zone 'UTC', 'YYYY-MM-DD') as day,
               count(*) filter (where r.finished_at is not null) as finished,
               count(*) filter (where r.status = 'succeeded') as succeeded,
               coalesce(sum(r.bytes_uploaded), 0) as uploaded, coalesce(sum(r.bytes_new), 0) as stored,
               coalesce(sum(r.files_changed), 0) as files_changed,
               avg(extract(epoch from r.finished_at - r.started_at)) filter (where r.finished_at is not null) as avg_seconds
        from backup_runs r join clients c on c.id = r.client_id
        where r.started_at >= ${since.toISOString()}::timestamptz and ${scope} and ${client}
        group by 1`),
    );
    return new Map(
      rows.map((row) => [
        String(row.day),
        {
          finished: numberOf(row.finished),
          succeeded: numberOf(row.succeeded),
          uploaded: numberOf(row.uploaded),
          stored: numberOf(row.stored),
          filesChanged: numberOf(row.files_changed),
          avgSeconds: row.avg_seconds === null ? null : numberOf(row.avg_seconds),
        },
      ]),
    );
  }

  /** Run figures per client since `since` (the fleet page's table), summed in SQL; clients without runs are left out. */
  async function runsPerClient(viewer: Viewer, since: Date) {
    const scope = viewer.isAdmin ? sql`true` : sql`c.owner_id = ${viewer.id}`;
    const rows = rowsOf<Record<string, unknown>>(
      await db.execute(sql`
        select c.id, c.name,
               count(*) filter (where r.finished_at is not null) as finished,
               count(*) filter (where r.status = 'succeeded') as succeeded,
               coalesce(sum(r.bytes_uploaded), 0) as uploaded, coalesce(sum(r.bytes_new), 0) as stored
        from backup_runs r join clients c on c.id = r.client_id
        where r.started_at >= ${since.toISOString()}::timestamptz and ${scope}
        group by c.id, c.name
        order by sum(r.bytes_new) desc, c.name`),
    );
    return rows.map((row) => ({
      id: String(row.id),
      name: String(row.name),
      finished: numberOf(row.finished),
      succeeded: numberOf(row.succeeded),
      uploaded: numberOf(row.uploaded),
      stored: numberOf(row.stored),
    }));
  }

  /** The client's last `limit` runs started since `since`, oldest first, for the per-run charts. */
  async function recentRunFigures(clientId: string, since: Date, limit: number) {
    const rows = rowsOf<Record<string, unknown>>(
      await db.execute(sql`
        select * from (
          select r.started_at, r.status, r.bytes_uploaded, r.bytes_new, r.files_changed,
                 extract(epoch from r.finished_at - r.started_at) as seconds
          from backup_runs r
          where r.client_id = ${clientId} and r.started_at >= ${since.toISOString()}::timestamptz
          order by r.started_at desc limit ${limit}) recent
        order by started_at`),
    );
    return rows.map((row) => ({
      startedAt: dateOf(row.started_at)!,
      status: String(row.status) as (typeof backupRuns.$inferSelect)['status'],
      uploaded: numberOf(row.bytes_uploaded),
      stored: numberOf(row.bytes_new),
      filesChanged: numberOf(row.files_changed),
      seconds: row.seconds === null ? null : numberOf(row.seconds),
    }));
  }

  // ---- files -------------------------------------------------------------------

  const validAt = (asOf: Date) =>
    sql`fv.valid_from <= ${asOf.toISOString()}::timestamptz and (fv.valid_to is null or fv.valid_to > ${asOf.toISOString()}::timestamptz)`;

  /**
   * The direct children of `dir` in the tree as of `asOf`: folders (with
   * totals, on the first page only) and a page of files ordered by path,
   * after `after` when given; `nextAfter` continues the listing. A folder is
   * a directory entry or the first segment of deeper paths (versions from
   * agents that did not record directories), shown once either way, with
   * its own mtime when it has an entry, else the newest below it.
   */
  async function listDirectory(clientId: string, dir: string, asOf: Date, page: { limit: number; after?: string | undefined }) {
    const prefix = dir === '/' ? '/' : dir + '/';
    const start = Array.from(prefix).length + 1;
    const rest = sql`substr(p.path, ${start}::int)`;
    const folders = page.after !== undefined ? [] : rowsOf<Record<string, unknown>>(
      await db.execute(sql`
        select split_part(${rest}, '/', 1) as name,
               count(*) filter (where fv.kind <> 'directory') as files,
               coalesce(sum(fv.size), 0) as bytes,
               coalesce(max(fv.mtime_ms) filter (where fv.kind = 'directory' and strpos(${rest}, '/') = 0), max(fv.mtime_ms)) as mtime_ms,
               bool_or(fv.kind = 'directory' and strpos(${rest}, '/') = 0) as has_entry
        from file_versions fv join client_paths p on p.id = fv.path_id
        where p.client_id = ${clientId} and starts_with(p.path, ${prefix}) and ${validAt(asOf)}
          and (strpos(${rest}, '/') > 0 or fv.kind = 'directory')
        group by 1 order by 1`),
    ).map((row) => ({
      name: String(row.name),
      files: numberOf(row.files),
      bytes: numberOf(row.bytes),
      mtimeMs: numberOf(row.mtime_ms),
      /** It has a directory entry of its own, so versions (mode, mtime, owner) to show. */
      hasEntry: row.has_entry === true,
    }));
    const files = rowsOf<Record<string, unknown>>(
      await db.execute(sql`
        select fv.id, p.path, fv.kind, fv.size, fv.mtime_ms, fv.mode, fv.link_target, fv.valid_from,
               substr(p.path, ${start}::int) as name
        from file_versions fv join client_paths p on p.id = fv.path_id
        where p.client_id = ${clientId} and starts_with(p.path, ${prefix}) and ${validAt(asOf)}
          and strpos(substr(p.path, ${start}::int), '/') = 0 and fv.kind <> 'directory'
          and ${page.after === undefined ? sql`true` : sql`p.path > ${page.after}`}
        order by p.path limit ${page.limit + 1}`),
    ).map((row) => ({
      versionId: numberOf(row.id),
      path: String(row.path),
      name: String(row.name),
      kind: String(row.kind) as Exclude<FileKind, 'directory'>,
      size: numberOf(row.size),
      mtimeMs: numberOf(row.mtime_ms),
      mode: numberOf(row.mode),
      linkTarget: (row.link_target ?? null) as string | null,
      validFrom: dateOf(row.valid_from)!,
    }));
    const more = files.length > page.limit;
    if (more) files.pop();
    return { folders, files, nextAfter: more ? files[files.length - 1]!.path : null };
  }

  async function findVersion(clientId: string, versionId: number) {
    const [row] = await db
      .select(versionColumns)
      .from(fileVersions)
      .innerJoin(clientPaths, versionPathJoin)
      .where(and(eq(clientPaths.clientId, clientId), eq(fileVersions.id, versionId)));
    return row ?? null;
  }

  // ---- file search and deleted files (issue 13, decisions 159 and 160) --------

  /** The newest retained version of the path `pathId` names, as `lv`: every path of a client that has versions has exactly one. */
  const latestVersion = (pathId: SQL) => sql`
    cross join lateral (select fv.id, fv.kind, fv.size, fv.mtime_ms, fv.link_target, fv.valid_from, fv.valid_to
                        from file_versions fv where fv.path_id = ${pathId} order by fv.valid_from desc limit 1) lv`;

  const pathHit = (row: Record<string, unknown>) => ({
    path: String(row.path),
    /** The newest version: the current one, or the last before the path was deleted. */
    versionId: numberOf(row.id),
    kind: String(row.kind) as FileKind,
    size: numberOf(row.size),
    mtimeMs: numberOf(row.mtime_ms),
    linkTarget: (row.link_target ?? null) as string | null,
    validFrom: dateOf(row.valid_from)!,
    /** Set when the path is deleted: when its last version stopped being current. */
    validTo: dateOf(row.valid_to),
  });

  /**
   * A page of the client's paths (any that still has a retained version,
   * current or deleted) matching a search, ordered by path, after `after`;
   * `nextAfter` continues it (fileSearchQuery).
   */
  /**
   * Brings client_path_names up to date with the client's paths: the paths
   * added since the last search, found by id (client_paths.id only grows).
   * The mark moves only while no run of the client is running: a batch of
   * changes still being committed may hold lower ids than those already
   * visible, and the next search must still find its paths.
   */
  async function indexSearchNames(clientId: string): Promise<void> {
    const [client] = await db.select({ done: clients.searchIndexedPathId }).from(clients).where(eq(clients.id, clientId));
    if (!client) return;
    await db.execute(sql`
      with fresh as (
        select p.id, p.path from client_paths p where p.id > ${client.done} and p.client_id = ${clientId}),
      named as (
        insert into client_path_names (path_id, client_id, name)
        select fresh.id, ${clientId}, regexp_replace(fresh.path, '^.*/', '') from fresh
        on conflict (path_id) do nothing)
      update clients c set search_indexed_path_id = (select max(fresh.id) from fresh)
      where c.id = ${clientId} and (select max(fresh.id) from fresh) > c.search_indexed_path_id
        and not exists (select from backup_runs r where r.client_id = ${clientId} and r.status = 'running')`);
  }

  async function searchPaths(clientId: string, patterns: FileSearchPatterns, page: { limit: number; after?: number | undefined }) {
    if (patterns.namePattern !== null) await indexSearchNames(clientId);
    // The candidates in their order, then each one's newest version: a path whose versions were all pruned has none and is left out.
    const rows = rowsOf<Record<string, unknown>>(
      await db.execute(sql`
        select hit.path_id, p.path, lv.*, (select count(*) from file_versions c where c.path_id = hit.path_id) as versions
        from (${fileSearchQuery(clientId, patterns, page)}) hit
        join client_paths p on p.id = hit.path_id
        left join lateral (select fv.id, fv.kind, fv.size, fv.mtime_ms, fv.link_target, fv.valid_from, fv.valid_to
                           from file_versions fv where fv.path_id = hit.path_id order by fv.valid_from desc limit 1) lv on true
        order by hit.sort_key, hit.path_id`),
    );
    const more = rows.length > page.limit;
    const examined = rows.slice(0, page.limit);
    const hits = examined.filter((row) => row.id !== null).map((row) => ({ ...pathHit(row), pathId: numberOf(row.path_id), versions: numberOf(row.versions) }));
    return { hits, nextAfter: more ? numberOf(examined[examined.length - 1]!.path_id) : null };
  }

  /**
   * A page of the client's deleted paths under `dir` (anywhere for `/`),
   * newest deletion first: paths a run deleted (client_paths.deleted_at,
   * decision 160) that still have a retained version, the last one before
   * the deletion. `before` is the path id the previous page ended with;
   * `nextBefore` continues it. Each row also names the run that deleted it
   * (the latest one started by then; null when none is left).
   */
  async function listDeletedPaths(clientId: string, dir: string, page: { limit: number; before?: number | undefined }) {
    const prefix = dir === '/' ? '/' : dir + '/';
    const rows = rowsOf<Record<string, unknown>>(
      await db.execute(sql`
        select gone.*,
               (select r.started_at from backup_runs r where r.client_id = ${clientId} and r.started_at <= gone.deleted_at
                order by r.started_at desc limit 1) as run_started_at
        from (select p.id as path_id, p.path, p.deleted_at, lv.*
              from client_paths p ${latestVersion(sql`p.id`)}
              where p.client_id = ${clientId} and p.deleted_at is not null and starts_with(p.path, ${prefix})
                and ${
                  page.before === undefined
                    ? sql`true`
                    : sql`(p.deleted_at, p.id) < (select b.deleted_at, b.id from client_paths b where b.id = ${page.before} and b.client_id = ${clientId})`
                }
              order by p.deleted_at desc, p.id desc limit ${page.limit + 1}) gone
        order by gone.deleted_at desc, gone.path_id desc`),
    );
    const deleted = rows.map((row) => ({
      ...pathHit(row),
      pathId: numberOf(row.path_id),
      deletedAt: dateOf(row.deleted_at)!,
      runStartedAt: dateOf(row.run_started_at),
    }));
    const more = deleted.length > page.limit;
    if (more) deleted.pop();
    return { deleted, nextBefore: more ? deleted[deleted.length - 1]!.pathId : null };
  }

  /** Whether `pathId` is one of the client's paths (a page key from the deleted view). */
  async function isClientPath(clientId: string, pathId: number): Promise<boolean> {
    const [row] = await db.select({ id: clientPaths.id }).from(clientPaths).where(and(eq(clientPaths.clientId, clientId), eq(clientPaths.id, pathId)));
    return row !== undefined;
  }

  // ---- audit -------------------------------------------------------------------

  /** Newest entries first, with the target's current name when it is a client or a user. */
  async function listAudit(options: { limit: number; action?: string | undefined; targetId?: string | undefined }) {
    const rows = await db
      .select({ entry: auditLog, clientName: clients.name, username: users.username })
      .from(auditLog)
      .leftJoin(clients, and(eq(auditLog.targetType, 'client'), sql`${clients.id}::text = ${auditLog.targetId}`))
      .leftJoin(users, and(eq(auditLog.targetType, 'user'), sql`${users.id}::text = ${auditLog.targetId}`))
      .where(
        and(
          options.action ? sql`${auditLog.action} like ${options.action + '%'}` : undefined,
          options.targetId ? eq(auditLog.targetId, options.targetId) : undefined,
        ),
      )
      .orderBy(desc(auditLog.at), desc(auditLog.id))
      .limit(options.limit);
    return rows.map((row) => ({ ...row.entry, targetName: row.clientName ?? row.username ?? null }));
  }

  /** Failed logins for `username` within the window and since its last successful login (any replica). */
  async function recentLoginFailures(username: string, since: Date): Promise<number> {
    const rows = rowsOf<Record<string, unknown>>(
      await db.execute(sql`
        select count(*) as failures from audit_log a
        where a.action = 'login.failed' and a.target_type = 'user' and a.target_id = ${username}
          and a.at > ${since.toISOString()}::timestamptz
          and a.at > coalesce((select max(s.at) from audit_log s where s.action = 'login.succeeded'
                               and s.target_type = 'user' and s.target_id = ${username}), '-infinity'::timestamptz)`),
    );
    return numberOf(rows[0]?.failures);
  }

  // ---- alerts ------------------------------------------------------------------

  /**
   * Alerts the viewer may see, newest first: those of their clients (admins:
   * all, and the server-wide ones). `state: 'unresolved'` means open or acknowledged.
   */
  async function listAlerts(
    viewer: Viewer,
    filter: { state?: AlertState | 'unresolved'; type?: AlertType; clientId?: string; limit: number },
  ) {
    const state =
      filter.state === undefined ? undefined : filter.state === 'unresolved' ? inArray(alerts.state, ['open', 'acknowledged']) : eq(alerts.state, filter.state);
    const rows = await db
      .select({ alert: alerts, clientName: clients.name, acknowledgedByName: users.username })
      .from(alerts)
      .leftJoin(clients, eq(clients.id, alerts.clientId))
      .leftJoin(users, eq(users.id, alerts.acknowledgedBy))
      .where(
        and(
          viewer.isAdmin ? undefined : eq(clients.ownerId, viewer.id),
          state,
          filter.type ? eq(alerts.type, filter.type) : undefined,
          filter.clientId === undefined ? undefined : filter.clientId === '' ? isNull(alerts.clientId) : eq(alerts.clientId, filter.clientId),
        ),
      )
      .orderBy(desc(alerts.openedAt), desc(alerts.id))
      .limit(filter.limit);
    return rows.map((row) => ({ ...row.alert, clientName: row.clientName, acknowledgedByName: row.acknowledgedByName }));
  }

  /** The alert if the viewer may see it; NotFoundError otherwise (like a client the viewer may not see). */
  async function getAlert(viewer: Viewer, id: string) {
    if (!isUuid(id)) throw new NotFoundError('no such alert');
    const [row] = await db
      .select({ alert: alerts })
      .from(alerts)
      .leftJoin(clients, eq(clients.id, alerts.clientId))
      .where(and(eq(alerts.id, id), viewer.isAdmin ? undefined : eq(clients.ownerId, viewer.id)));
    if (!row) throw new NotFoundError('no such alert');
    return row.alert;
  }

  return {
    listAlerts,
    getAlert,
    userExists,
    listUsersWithClientCounts,
    listClientSummaries,
    getClient,
    recentRuns,
    listLogs,
    storageTotals,
    bytesPerDay,
    runsPerDay,
    runsPerClient,
    recentRunFigures,
    listDirectory,
    findVersion,
    searchPaths,
    listDeletedPaths,
    isClientPath,
    listAudit,
    recentLoginFailures,
  };
}

export type DashboardRepository = ReturnType<typeof createDashboardRepository>;
