import { and, asc, desc, eq, gt, isNull, lt, lte, or, sql, type SQL } from 'drizzle-orm';
import {
  isCanonicalBackupPath,
  LIMITS,
  storableText,
  type ChangesRequest,
  type ChangesResponse,
  type FileKind,
  type FileVersion,
  type FilesPage,
  type FinishRunRequest,
  type LogEntry,
  type PreCommandResult,
  type RunStatus,
  type RunSummary,
  type StartRunRequest,
} from '@cairn/shared';
import { evaluateClientAlerts } from '../alerts/alert-engine.ts';
import type { AppContext } from '../app-context.ts';
import { lockManagerFor } from '../db/advisory-locks.ts';
import { rowsOf, type Db, type Tx } from '../db/database.ts';
import { backupRuns, clientLogs, clientPaths, clients, fileVersions, clientLiveProgress } from '../db/schema.ts';
import { versionColumns, versionPathJoin, type VersionRow } from '../db/version-columns.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { pruneClientVersions } from './retention.service.ts';

/**
 * Backup runs and the temporal file tree of each client. Every time stored
 * here is the server's (database) clock; the agent's mtimes are kept only as
 * file metadata.
 */

type RunRow = typeof backupRuns.$inferSelect;

export interface RunDetail extends RunSummary {
  clientId: string;
  trigger: string;
  preCommands: PreCommandResult[];
}

function toRunDetail(row: RunRow): RunDetail {
  return {
    runId: row.id,
    clientId: row.clientId,
    trigger: row.trigger,
    status: row.status,
    startedAt: row.startedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
    filesScanned: row.filesScanned,
    filesChanged: row.filesChanged,
    filesDeleted: row.filesDeleted,
    filesFailed: row.filesFailed,
    bytesScanned: row.bytesScanned,
    bytesUploaded: row.bytesUploaded,
    bytesNew: row.bytesNew,
    error: row.error,
    preCommands: row.preCommands,
  };
}

/**
 * Starts a run for the client. A run the client left `running` (its agent
 * restarted mid-run) is closed as failed, and a pending "back up now" request
 * is cleared.
 */
export async function startRun(ctx: AppContext, clientId: string, request: StartRunRequest): Promise<{ runId: string; recheck: string[] }> {
  const started = await ctx.database.db.transaction(async (tx) => {
    await tx
      .update(backupRuns)
      .set({ status: 'failed', finishedAt: sql`now()`, error: 'abandoned: the agent started a new run before finishing this one' })
      .where(and(eq(backupRuns.clientId, clientId), eq(backupRuns.status, 'running')));
    const [run] = await tx
      .insert(backupRuns)
      .values({ clientId, trigger: request.trigger ?? 'schedule' })
      .returning({ id: backupRuns.id });
    if (!run) throw new Error('insert returned no row');
    await tx.update(clients).set({ runRequestedAt: null }).where(eq(clients.id, clientId));
    return { runId: run.id };
  });
  // From the (few) damaged rows to this client's current versions, through the partial damage indexes.
  const recheck = rowsOf<{ sha256: string }>(
    await ctx.database.db.execute(sql`
      with d as (
        select sha256 from contents where damaged_at is not null
        union select sha256 from chunks where damaged_at is not null)
      select distinct encode(fv.content_sha256, 'hex') as sha256
      from d join file_versions fv on fv.content_sha256 = d.sha256 and fv.valid_to is null
      join client_paths cp on cp.id = fv.path_id and cp.client_id = ${clientId}
      limit 10000`),
  ).map((row) => row.sha256);
  return { ...started, recheck };
}

/** The run when it belongs to `clientId`; NotFoundError otherwise (another client's run is not revealed). */
export async function getRunOfClient(db: Db | Tx, clientId: string, runId: string): Promise<RunDetail> {
  const [row] = await db
    .select()
    .from(backupRuns)
    .where(and(eq(backupRuns.id, runId), eq(backupRuns.clientId, clientId)))
    .limit(1);
  if (!row) throw new NotFoundError('no such run');
  return toRunDetail(row);
}

/** A run by id whoever owns it, or null (dashboard: check the client's owner before showing it). */
export async function findRun(db: Db, runId: string): Promise<RunDetail | null> {
  const [row] = await db.select().from(backupRuns).where(eq(backupRuns.id, runId)).limit(1);
  return row ? toRunDetail(row) : null;
}

/**
 * A client's runs, newest first (ties by id), `limit` at most (default 50):
 * older than `before` when given, after the run `afterRun` of a previous
 * page (a keyset: the run must be the client's), of one `status` when given.
 */
export async function listRuns(
  db: Db,
  clientId: string,
  options: { limit?: number; before?: Date; afterRun?: string; status?: RunStatus } = {},
): Promise<RunDetail[]> {
  const rows = await db
    .select()
    .from(backupRuns)
    .where(
      and(
        eq(backupRuns.clientId, clientId),
        options.before ? lt(backupRuns.startedAt, options.before) : undefined,
        options.afterRun === undefined
          ? undefined
          : sql`(${backupRuns.startedAt}, ${backupRuns.id}) < (select r.started_at, r.id from backup_runs r where r.id = ${options.afterRun} and r.client_id = ${clientId})`,
        options.status === undefined ? undefined : eq(backupRuns.status, options.status),
      ),
    )
    .orderBy(desc(backupRuns.startedAt), desc(backupRuns.id))
    .limit(options.limit ?? 50);
  return rows.map(toRunDetail);
}

interface NormalisedUpsert {
  path: string;
  kind: FileKind;
  sha256: string | null;
  size: number;
  mtime_ms: number;
  mode: number;
  link_target: string | null;
  uid: number | null;
  gid: number | null;
  hardlink_group: string | null;
  changed_while_read: boolean;
}

/**
 * Applies one batch of a run's changes, all or nothing, in one transaction of
 * a few set-based statements (never a query per file):
 * - an upsert equal to the path's current version is a no-op (one that only
 *   adds the owner to a version sent without one fills it in);
 * - a changed upsert closes the current version and opens a new one;
 * - a delete closes the current version.
 * valid_from / valid_to are the transaction's server time. Content the user
 * does not hold (or that GC removed) refuses the whole batch with
 * ConflictError naming the `missing` hashes; a file whose size is not its
 * content's size refuses it with a BadRequestError naming the path. Paths
 * must be canonical (never rewritten); a bad path or a path named twice is a
 * BadRequestError naming it. A finished run is a ConflictError; another
 * client's run a NotFoundError.
 */
export async function applyChanges(
  ctx: AppContext,
  agent: { clientId: string; userId: string },
  runId: string,
  changes: ChangesRequest,
): Promise<ChangesResponse> {
  const { upserts, deletes } = normaliseChanges(changes);
  const hashes = [...new Set(upserts.flatMap((u) => (u.sha256 === null ? [] : [u.sha256])))];
  return lockManagerFor(ctx.database).inReferencingTransaction(async (tx) => {
    // FOR SHARE: a finish of this run waits for this batch instead of slipping in between check and commit.
    const [run] = await tx
      .select({ status: backupRuns.status })
      .from(backupRuns)
      .where(and(eq(backupRuns.id, runId), eq(backupRuns.clientId, agent.clientId)))
      .for('share');
    if (!run) throw new NotFoundError('no such run');
    if (run.status !== 'running') throw new ConflictError(`run ${runId} is already ${run.status}`);
    if (hashes.length > 0) {
      const sizes = await heldContentSizes(tx, agent.userId, hashes);
      const missing = hashes.filter((hash) => !sizes.has(hash));
      if (missing.length > 0) {
        throw new ConflictError(`${missing.length} content(s) are not stored for this user; upload them first`, { missing });
      }
      refuseSizeMismatches(upserts, sizes);
    }
    // Every statement below reads or writes one table by its index, with the batch's keys as a list: none
    // joins the request's rows against a table, whose plan on tables not yet analyzed could turn into a
    // nested loop over all of them (a 2,000-file commit took 17-28 s that way; decision 181).
    let opened = 0;
    let closed = 0;
    if (upserts.length > 0) {
      // Each path is stored once per client (decision 92): new ones get their row first.
      await tx.execute(sql`
        insert into client_paths (client_id, path)
        select ${agent.clientId}::uuid, value from jsonb_array_elements_text(${JSON.stringify(upserts.map((u) => u.path))}::jsonb)
        on conflict (client_id, path) do nothing`);
      const current = await currentVersions(tx, agent.clientId, upserts.map((u) => u.path));
      const fillOwners = new Map<string, string[]>();
      const close: string[] = [];
      const insert: (NormalisedUpsert & { path_id: number })[] = [];
      const undelete: string[] = [];
      for (const upsert of upserts) {
        const row = current.get(upsert.path);
        // Only a concurrent prune of the client's paths can take a row between its insert and this read: a
        // conflict the agent can retry, not a server fault.
        if (row === undefined) throw new ConflictError(`path ${JSON.stringify(upsert.path)} was removed while this batch was committed; send the batch again`);
        const fields = versionFields(upsert);
        if (row.version_id !== null) {
          // A version from an agent that sent no owners, matched by an upsert that names them and is otherwise
          // equal, gets them filled in place: a new version differing only in what was unknown would push a
          // real older version out of retention on the first run after an agent upgrade.
          let stored = storedFields(row);
          if (row.uid === null && row.gid === null && upsert.uid !== null && upsert.gid !== null && sameFields(stored, fields, OWNERLESS_FIELDS)) {
            const key = JSON.stringify([upsert.uid, upsert.gid, upsert.hardlink_group]);
            const ids = fillOwners.get(key);
            if (ids) ids.push(row.version_id);
            else fillOwners.set(key, [row.version_id]);
            stored = { ...stored, uid: fields.uid, gid: fields.gid, hardlink_group: fields.hardlink_group };
          }
          if (sameFields(stored, fields, VERSION_FIELDS)) continue;
          close.push(row.version_id);
        }
        insert.push({ ...upsert, path_id: Number(row.path_id) });
        if (row.deleted) undelete.push(row.path_id);
      }
      for (const [key, ids] of fillOwners) {
        const [uid, gid, hardlinkGroup] = JSON.parse(key) as [number, number, string | null];
        await tx.execute(sql`update file_versions set uid = ${uid}, gid = ${gid}, hardlink_group = ${hardlinkGroup} where id in ${idList(ids)}`);
      }
      if (close.length > 0) {
        closed += countOf(
          await tx.execute(sql`
            with changed as (
              update file_versions set valid_to = greatest(${COMMIT_TIME}, valid_from)
              where id in ${idList(close)} and valid_to is null
              returning 1)
            select count(*)::int as n from changed`),
        );
      }
      if (insert.length > 0) {
        opened += countOf(
          await tx.execute(sql`
            with inserted as (
              insert into file_versions (path_id, kind, content_sha256, size, mtime_ms, mode, link_target,
                                         uid, gid, hardlink_group, changed_while_read, valid_from)
              select x.path_id, x.kind, decode(x.sha256, 'hex'), x.size, x.mtime_ms, x.mode, x.link_target,
                     x.uid, x.gid, x.hardlink_group, x.changed_while_read, ${COMMIT_TIME}
              from jsonb_to_recordset(${JSON.stringify(insert)}::jsonb)
                as x(path_id bigint, kind text, sha256 text, size bigint, mtime_ms bigint, mode integer, link_target text,
                     uid bigint, gid bigint, hardlink_group text, changed_while_read boolean)
              returning 1)
            select count(*)::int as n from inserted`),
        );
      }
      // A deleted path that is back is no longer deleted (decision 160); only its row is touched.
      if (undelete.length > 0) await tx.execute(sql`update client_paths set deleted_at = null where id in ${idList(undelete)}`);
    }
    if (deletes.length > 0) {
      const ids = rowsOf<{ id: string }>(
        await tx.execute(sql`
          select id::text as id from client_paths
          where client_id = ${agent.clientId} and path in ${textList(deletes)}`),
      ).map((row) => row.id);
      if (ids.length > 0) {
        const gone = rowsOf<{ path_id: string; valid_to: string }>(
          await tx.execute(sql`
            update file_versions set valid_to = greatest(${COMMIT_TIME}, valid_from)
            where valid_to is null and path_id in ${idList(ids)}
            returning path_id::text as path_id, valid_to::text as valid_to`),
        );
        closed += gone.length;
        // The deleted-files view reads deletions from the path rows (decision 160), at the version's end.
        const byTime = new Map<string, string[]>();
        for (const row of gone) {
          const list = byTime.get(row.valid_to);
          if (list) list.push(row.path_id);
          else byTime.set(row.valid_to, [row.path_id]);
        }
        for (const [validTo, pathIds] of byTime) {
          await tx.execute(sql`update client_paths set deleted_at = ${validTo}::timestamptz where id in ${idList(pathIds)}`);
        }
      }
    }
    return { opened, closed };
  });
}

/**
 * The time of a changes commit: the transaction's time on the database clock,
 * truncated to milliseconds so the ISO times the API returns (millisecond
 * precision) can be passed back as `asOf` and select exactly that version.
 */
const COMMIT_TIME = sql`date_trunc('milliseconds', now())`;

/** A version claiming another size than its content's would be served short or hang its download: refused, naming the first. */
function refuseSizeMismatches(upserts: readonly NormalisedUpsert[], contentSizes: ReadonlyMap<string, number>): void {
  upserts.forEach((upsert, i) => {
    if (upsert.sha256 === null) return;
    const actual = contentSizes.get(upsert.sha256);
    if (actual !== undefined && actual !== upsert.size) {
      throw new BadRequestError(
        `upserts[${i}].size: ${upsert.size} bytes for ${JSON.stringify(upsert.path)}, but its content ${upsert.sha256} holds ${actual} bytes`,
      );
    }
  });
}

function countOf(result: unknown): number {
  return Number(rowsOf<{ n: number | string }>(result)[0]?.n ?? 0);
}

/** The fields that make a version: two equal in all of them are the same version (null equals null). */
const VERSION_FIELDS = ['kind', 'sha256', 'size', 'mtime_ms', 'mode', 'link_target', 'uid', 'gid', 'hardlink_group', 'changed_while_read'] as const;
/** What a version without owners is compared on before they are filled in. */
const OWNERLESS_FIELDS = ['kind', 'sha256', 'size', 'mtime_ms', 'mode', 'link_target'] as const;
type VersionFields = Record<(typeof VERSION_FIELDS)[number], string | null>;

/** A path's row and its current version (if any), as text, as read by currentVersions. */
interface CurrentRow {
  path: string;
  path_id: string;
  deleted: boolean;
  version_id: string | null;
  kind: string | null;
  sha256: string | null;
  size: string | null;
  mtime_ms: string | null;
  mode: string | null;
  link_target: string | null;
  uid: string | null;
  gid: string | null;
  hardlink_group: string | null;
  changed_while_read: boolean | null;
}

function versionFields(upsert: NormalisedUpsert): VersionFields {
  const text = (value: number | null) => (value === null ? null : String(value));
  return {
    kind: upsert.kind,
    sha256: upsert.sha256,
    size: String(upsert.size),
    mtime_ms: String(upsert.mtime_ms),
    mode: String(upsert.mode),
    link_target: upsert.link_target,
    uid: text(upsert.uid),
    gid: text(upsert.gid),
    hardlink_group: upsert.hardlink_group,
    changed_while_read: String(upsert.changed_while_read),
  };
}

function storedFields(row: CurrentRow): VersionFields {
  return {
    kind: row.kind,
    sha256: row.sha256,
    size: row.size,
    mtime_ms: row.mtime_ms,
    mode: row.mode,
    link_target: row.link_target,
    uid: row.uid,
    gid: row.gid,
    hardlink_group: row.hardlink_group,
    changed_while_read: row.changed_while_read === null ? null : String(row.changed_while_read),
  };
}

function sameFields(a: VersionFields, b: VersionFields, fields: readonly (keyof VersionFields)[]): boolean {
  return fields.every((field) => a[field] === b[field]);
}

/**
 * The rows of these paths of a client and their current versions: the path
 * index drives, each version is one look into the current-version index.
 */
async function currentVersions(tx: Tx, clientId: string, paths: readonly string[]): Promise<Map<string, CurrentRow>> {
  const rows = rowsOf<CurrentRow>(
    await tx.execute(sql`
      select cp.path, cp.id::text as path_id, cp.deleted_at is not null as deleted,
             fv.id::text as version_id, fv.kind, encode(fv.content_sha256, 'hex') as sha256, fv.size::text as size,
             fv.mtime_ms::text as mtime_ms, fv.mode::text as mode, fv.link_target, fv.uid::text as uid, fv.gid::text as gid,
             fv.hardlink_group, fv.changed_while_read
      from client_paths cp
      left join lateral (
        select * from file_versions v where v.path_id = cp.id and v.valid_to is null limit 1
      ) fv on true
      where cp.client_id = ${clientId} and cp.path in ${textList(paths)}`),
  );
  return new Map(rows.map((row) => [row.path, row]));
}

/**
 * Of these content hashes, the ones the user holds with their size: a
 * contents row for a content of several chunks, else the one chunk of that
 * hash (decision 91). Looked up by the owner index, each size by primary key.
 */
async function heldContentSizes(tx: Tx, userId: string, hashes: readonly string[]): Promise<Map<string, number>> {
  const rows = rowsOf<{ sha256: string; size: string | null }>(
    await tx.execute(sql`
      select encode(oc.content_sha256, 'hex') as sha256, coalesce(ct.size, ch.size)::text as size
      from owner_contents oc
      left join lateral (select size from contents where sha256 = oc.content_sha256) ct on true
      left join lateral (select size from chunks where sha256 = oc.content_sha256) ch on true
      where oc.user_id = ${userId} and oc.content_sha256 in ${sql`(${sql.join(hashes.map((hash) => sql`decode(${hash}, 'hex')`), sql`, `)})`}`),
  );
  const sizes = new Map<string, number>();
  for (const row of rows) if (row.size !== null) sizes.set(row.sha256, Number(row.size));
  return sizes;
}

/** A parenthesised list of bigint ids, one parameter each (at most a batch's worth, LIMITS.changesBatch). */
function idList(ids: readonly string[]): SQL {
  return sql`(${sql.join(ids.map((id) => sql`${id}::bigint`), sql`, `)})`;
}

/** A parenthesised list of text values, one parameter each. */
function textList(values: readonly string[]): SQL {
  return sql`(${sql.join(values.map((value) => sql`${value}`), sql`, `)})`;
}

/** The largest time a JavaScript Date can hold, in ms either side of the epoch. */
const MAX_TIME_MS = 8.64e15;

function normaliseChanges(changes: ChangesRequest): { upserts: NormalisedUpsert[]; deletes: string[] } {
  if (changes.upserts.length + changes.deletes.length > LIMITS.changesBatch) {
    throw new BadRequestError(`upserts and deletes: at most ${LIMITS.changesBatch} changes per request`);
  }
  const seen = new Set<string>();
  const claim = (path: string, field: string): string => {
    if (!isCanonicalBackupPath(path, LIMITS.pathBytes)) {
      throw new BadRequestError(`${field}: not a canonical absolute path of at most ${LIMITS.pathBytes} bytes: ${JSON.stringify(path)}`);
    }
    if (seen.has(path)) throw new BadRequestError(`${field}: path appears twice in one batch: ${JSON.stringify(path)}`);
    seen.add(path);
    return path;
  };
  const upserts = changes.upserts.map((upsert, i): NormalisedUpsert => {
    const field = `upserts[${i}]`;
    const path = claim(upsert.path, `${field}.path`);
    if (upsert.kind === 'file' && upsert.sha256 === null) throw new BadRequestError(`${field}.sha256: required for a file`);
    if (upsert.kind !== 'file' && upsert.sha256 !== null) throw new BadRequestError(`${field}.sha256: must be null for a ${upsert.kind}`);
    if (upsert.kind !== 'file' && upsert.hardlinkGroup !== undefined) throw new BadRequestError(`${field}.hardlinkGroup: only a file can have one`);
    if (!(Math.abs(upsert.mtimeMs) <= MAX_TIME_MS)) throw new BadRequestError(`${field}.mtimeMs: not a valid time`);
    return {
      path,
      kind: upsert.kind,
      sha256: upsert.sha256,
      // A directory's size is its filesystem's bookkeeping, not content; kept it would only make new versions.
      size: upsert.kind === 'directory' ? 0 : upsert.size,
      mtime_ms: Math.trunc(upsert.mtimeMs),
      mode: upsert.mode,
      link_target: upsert.kind === 'symlink' ? (upsert.linkTarget ?? '') : null,
      uid: upsert.uid ?? null,
      gid: upsert.gid ?? null,
      hardlink_group: upsert.hardlinkGroup ?? null,
      changed_while_read: upsert.changedWhileRead === true,
    };
  });
  const deletes = changes.deletes.map((raw, i) => claim(raw, `deletes[${i}]`));
  return { upserts, deletes };
}

/**
 * Finishes a running run with the agent's status, stats and pre-command
 * results. On success or partial success the client's last_backup_at is set.
 * Then the client's versions are pruned by its retention policy (a pruning
 * failure is logged, it does not fail the run). NotFoundError for another
 * client's run, ConflictError for a run already finished.
 */
export async function finishRun(ctx: AppContext, clientId: string, runId: string, request: FinishRunRequest): Promise<RunDetail> {
  const finished = await ctx.database.db.transaction(async (tx) => {
    const run = await getRunOfClient(tx, clientId, runId);
    if (run.status !== 'running') throw new ConflictError(`run ${runId} is already ${run.status}`);
    const [row] = await tx
      .update(backupRuns)
      .set({
        status: request.status,
        finishedAt: sql`now()`,
        filesScanned: request.stats.filesScanned,
        filesChanged: request.stats.filesChanged,
        filesDeleted: request.stats.filesDeleted,
        filesFailed: request.stats.filesFailed,
        bytesScanned: request.stats.bytesScanned,
        bytesUploaded: request.stats.bytesUploaded,
        // Captured text is stored whatever it holds, so a finish always lands (decision 42).
        preCommands: request.preCommands.map((result) => ({ ...result, command: storableText(result.command), output: storableText(result.output) })),
        error: request.error === undefined ? null : storableText(request.error),
      })
      .where(and(eq(backupRuns.id, runId), eq(backupRuns.status, 'running')))
      .returning();
    if (!row) throw new ConflictError(`run ${runId} is already finished`);
    if (request.status !== 'failed') {
      await tx.update(clients).set({ lastBackupAt: sql`now()` }).where(eq(clients.id, clientId));
    }
    // The live progress of a finished run is over; the run's row now holds its outcome.
    await tx.delete(clientLiveProgress).where(eq(clientLiveProgress.clientId, clientId));
    return toRunDetail(row);
  });
  // Alerts before pruning, so a mass change found in this very run holds the prune that follows it.
  // Neither may fail the finish: the run is committed, and the periodic jobs retry both.
  try {
    await evaluateClientAlerts(ctx, clientId);
  } catch (error) {
    ctx.log.error({ err: error, clientId, runId }, 'alert engine after a finished run failed; the periodic pass will retry');
  }
  try {
    await pruneClientVersions(ctx, clientId);
  } catch (error) {
    ctx.log.error({ err: error, clientId, runId }, 'pruning after a finished run failed; the periodic sweep will retry');
  }
  return finished;
}

export function toFileVersion(row: VersionRow): FileVersion {
  return {
    versionId: String(row.id),
    path: row.path,
    kind: row.kind,
    sha256: row.contentSha256,
    size: row.size,
    mtimeMs: row.mtimeMs,
    mode: row.mode,
    linkTarget: row.linkTarget,
    uid: row.uid,
    gid: row.gid,
    hardlinkGroup: row.hardlinkGroup,
    validFrom: row.validFrom.toISOString(),
    validTo: row.validTo?.toISOString() ?? null,
    ...(row.changedWhileRead ? { changedWhileRead: true } : {}),
  };
}

export interface TreeQuery {
  /** Default: now (the current versions). */
  asOf?: Date;
  /** Only this path and what lies below it. */
  prefix?: string;
  /** Keyset paging: paths strictly after this one. */
  after?: string;
  /** Default LIMITS.pageSize, at most LIMITS.maxPageSize. */
  limit?: number;
}

/**
 * The client's tree as of `asOf`: versions with valid_from <= asOf <
 * coalesce(valid_to, infinity), ordered by path, one page. `nextAfter` is
 * the last path of the page, or null on the last page.
 */
export async function listTreeAsOf(db: Db, clientId: string, query: TreeQuery = {}): Promise<FilesPage> {
  const limit = Math.min(query.limit ?? LIMITS.pageSize, LIMITS.maxPageSize);
  const conditions: (SQL | undefined)[] = [eq(clientPaths.clientId, clientId)];
  if (query.asOf) {
    conditions.push(lte(fileVersions.validFrom, query.asOf), or(isNull(fileVersions.validTo), gt(fileVersions.validTo, query.asOf)));
  } else {
    conditions.push(isNull(fileVersions.validTo));
  }
  const { prefix, after } = query;
  if (prefix !== undefined && prefix !== '/') {
    if (!isCanonicalBackupPath(prefix, LIMITS.pathBytes)) throw new BadRequestError(`prefix: not a canonical absolute path: ${JSON.stringify(prefix)}`);
    conditions.push(or(eq(clientPaths.path, prefix), sql`starts_with(${clientPaths.path}, ${prefix + '/'})`));
  }
  if (after !== undefined) {
    if (!isCanonicalBackupPath(after, LIMITS.pathBytes)) throw new BadRequestError(`after: not a canonical absolute path: ${JSON.stringify(after)}`);
    conditions.push(gt(clientPaths.path, after));
  }
  const rows = await db
    .select(versionColumns)
    .from(fileVersions)
    .innerJoin(clientPaths, versionPathJoin)
    .where(and(...conditions))
    .orderBy(asc(clientPaths.path))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  return {
    files: page.map(toFileVersion),
    nextAfter: rows.length > limit ? (page[page.length - 1]?.path ?? null) : null,
  };
}

/** Every retained version of one path of the client, newest first (empty when there is none). */
export async function listPathVersions(db: Db, clientId: string, path: string): Promise<FileVersion[]> {
  if (!isCanonicalBackupPath(path, LIMITS.pathBytes)) throw new BadRequestError(`path: not a canonical absolute path: ${JSON.stringify(path)}`);
  const rows = await db
    .select(versionColumns)
    .from(fileVersions)
    .innerJoin(clientPaths, versionPathJoin)
    .where(and(eq(clientPaths.clientId, clientId), eq(clientPaths.path, path)))
    .orderBy(desc(fileVersions.validFrom), desc(fileVersions.id));
  return rows.map(toFileVersion);
}

/** Stores log entries an agent sent. Entries naming another client's run are refused (NotFoundError), none stored. */
export async function appendClientLogs(db: Db, clientId: string, entries: readonly LogEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await db.transaction(async (tx) => {
    const runIds = [...new Set(entries.flatMap((e) => (e.runId ? [e.runId] : [])))];
    for (const runId of runIds) await getRunOfClient(tx, clientId, runId);
    await tx.insert(clientLogs).values(
      entries.map((entry) => ({ clientId, runId: entry.runId ?? null, at: new Date(entry.at), level: entry.level, message: storableText(entry.message) })),
    );
  });
}

export interface ClientLogLine {
  id: number;
  runId: string | null;
  at: Date;
  receivedAt: Date;
  level: LogEntry['level'];
  message: string;
}

/** A client's log lines, newest first by the server's receive time; only one run's when `runId` is given. */
export async function listClientLogs(db: Db, clientId: string, options: { runId?: string; limit?: number } = {}): Promise<ClientLogLine[]> {
  return db
    .select({
      id: clientLogs.id,
      runId: clientLogs.runId,
      at: clientLogs.at,
      receivedAt: clientLogs.receivedAt,
      level: clientLogs.level,
      message: clientLogs.message,
    })
    .from(clientLogs)
    .where(and(eq(clientLogs.clientId, clientId), options.runId ? eq(clientLogs.runId, options.runId) : undefined))
    .orderBy(desc(clientLogs.receivedAt), desc(clientLogs.id))
    .limit(options.limit ?? 200);
}
