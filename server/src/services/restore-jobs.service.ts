/**
 * Restore jobs and their schedules (issue 13, decisions 142-146): made on
 * the dashboard or through the admin API, carried out by the target
 * client's agent (shared/src/restore-jobs.ts has the agent's side).
 *
 * A job restores the source client's tree as of `asOf`, under `paths`, into
 * `targetDir` on the target client's machine. Source and target belong to
 * one owner: a restore never moves one user's files onto another user's
 * machine, whoever asks (checked at creation and again at claim, as a
 * client may have been moved in between).
 */
import { and, asc, desc, eq, inArray, isNotNull, lte, notInArray, or, sql } from 'drizzle-orm';
import {
  type BackupSchedule,
  type FilesPage,
  type RestoreJobFinish,
  type RestoreJobProgress,
  type RestoreJobSpec,
  type RestoreJobStatus,
  DEFAULT_TIME_ZONE,
  LIMITS,
  RESTORE_COMMAND_MAX_LENGTH,
  RESTORE_JOB_MAX_PATHS,
  describeSchedule,
  isStorableText,
  nextRunAt,
  normaliseBackupPath,
} from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { isUuid, type Db, type Tx } from '../db/database.ts';
import { clients, restoreJobs, restoreSchedules } from '../db/schema.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { notifyAgent } from '../live/live-hub.ts';
import { recordAudit } from './audit-log.service.ts';
import { listTreeAsOf } from './backup-repository.ts';
import { assertBackupSchedule } from './clients.service.ts';
import type { Actor } from './users.service.ts';

export type RestoreJobRow = typeof restoreJobs.$inferSelect;
export type RestoreScheduleRow = typeof restoreSchedules.$inferSelect;

export const DEFAULT_POST_COMMAND_TIMEOUT_SECONDS = 600;
/** Statuses a job no longer changes from. */
export const FINISHED_STATUSES: readonly RestoreJobStatus[] = ['succeeded', 'partial', 'failed', 'cancelled'];

/** What a person asks for; the same for a job and a schedule. */
export interface RestoreRequest {
  sourceClientId: string;
  targetClientId: string;
  paths: string[];
  targetDir: string;
  overwrite: boolean;
  postCommand: string | null;
  postCommandTimeoutSeconds: number;
}

/** A restore request as the admin API and the dashboard's form take it: what is left out gets its default. */
export interface RestoreRequestFields {
  targetClientId?: string | undefined;
  paths: string[];
  targetDir: string;
  overwrite?: boolean | undefined;
  postCommand?: string | null | undefined;
  postCommandTimeoutSeconds?: number | undefined;
}

/** The request for restoring `sourceClientId`'s backup: onto the same client unless another is named, no overwrite, no post-command. */
export function restoreRequestOf(sourceClientId: string, fields: RestoreRequestFields): RestoreRequest {
  return {
    sourceClientId,
    targetClientId: fields.targetClientId ?? sourceClientId,
    paths: fields.paths,
    targetDir: fields.targetDir,
    overwrite: fields.overwrite ?? false,
    postCommand: fields.postCommand ?? null,
    postCommandTimeoutSeconds: fields.postCommandTimeoutSeconds ?? DEFAULT_POST_COMMAND_TIMEOUT_SECONDS,
  };
}

/** Who may touch which clients: an admin any, anyone else only their own. */
export interface RestoreViewer {
  userId: string;
  isAdmin: boolean;
}

/**
 * Checks and normalises a request (paths made canonical, nested ones folded
 * into the folder holding them); BadRequestError naming the field.
 */
export function normaliseRestoreRequest(input: RestoreRequest): RestoreRequest {
  if (input.paths.length === 0) throw BadRequestError.inField('paths', 'name at least one path to restore (/ for everything)');
  if (input.paths.length > RESTORE_JOB_MAX_PATHS) throw BadRequestError.inField('paths', `at most ${RESTORE_JOB_MAX_PATHS} paths`);
  const paths: string[] = [];
  for (const typed of input.paths) {
    const canonical = normaliseBackupPath(typed.trim(), LIMITS.pathBytes);
    if (canonical === null) throw BadRequestError.inField('paths', `not an absolute path: ${JSON.stringify(typed)}`);
    paths.push(canonical);
  }
  const targetDir = normaliseBackupPath(input.targetDir.trim(), LIMITS.pathBytes);
  if (targetDir === null || targetDir === '/') {
    throw BadRequestError.inField('targetDir', 'an absolute directory other than / on the target machine (each file lands at that directory + its backed-up path)');
  }
  const postCommand = input.postCommand?.trim() ? input.postCommand.trim() : null;
  if (postCommand !== null && (postCommand.length > RESTORE_COMMAND_MAX_LENGTH || !isStorableText(postCommand))) {
    throw BadRequestError.inField('postCommand', `at most ${RESTORE_COMMAND_MAX_LENGTH} characters of text`);
  }
  const timeout = input.postCommandTimeoutSeconds;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 86_400) throw BadRequestError.inField('postCommandTimeoutSeconds', 'whole seconds from 1 to 86400');
  return { ...input, paths: foldPaths(paths), targetDir, postCommand, postCommandTimeoutSeconds: timeout };
}

/** Sorted, without duplicates and without paths under another one given (`/` covers all). */
export function foldPaths(paths: readonly string[]): string[] {
  const sorted = [...new Set(paths)].sort();
  if (sorted.includes('/')) return ['/'];
  return sorted.filter((p) => !sorted.some((other) => other !== p && p.startsWith(`${other}/`)));
}

/** Both clients, visible to the viewer and of one owner; NotFoundError or BadRequestError (field named) otherwise. */
async function assertClientsFor(db: Db | Tx, viewer: RestoreViewer, sourceClientId: string, targetClientId: string): Promise<{ ownerId: string }> {
  const rows = await db
    .select({ id: clients.id, ownerId: clients.ownerId })
    .from(clients)
    .where(inArray(clients.id, [...new Set([sourceClientId, targetClientId])]));
  const source = rows.find((r) => r.id === sourceClientId);
  const target = rows.find((r) => r.id === targetClientId);
  const visible = (row: { ownerId: string } | undefined) => row !== undefined && (viewer.isAdmin || row.ownerId === viewer.userId);
  if (!visible(source)) throw new NotFoundError('no such client');
  if (!visible(target)) throw BadRequestError.inField('targetClientId', 'no such client');
  if (source!.ownerId !== target!.ownerId) throw BadRequestError.inField('targetClientId', 'the target client must belong to the owner of the backup');
  return { ownerId: source!.ownerId };
}

/** Queues a job and tells the target's agent at once (live channel; its next ping otherwise). */
export async function createRestoreJob(
  ctx: AppContext,
  viewer: RestoreViewer,
  actor: Actor,
  input: RestoreRequest & { asOf: Date | null },
): Promise<RestoreJobRow> {
  if (!isUuid(input.sourceClientId)) throw new NotFoundError('no such client');
  if (!isUuid(input.targetClientId)) throw BadRequestError.inField('targetClientId', 'no such client');
  const request = normaliseRestoreRequest(input);
  const now = new Date();
  if (input.asOf !== null && input.asOf.getTime() > now.getTime() + 60_000) throw BadRequestError.inField('asOf', 'a time in the past (or empty for the latest backup)');
  return ctx.database.db.transaction(async (tx) => {
    await assertClientsFor(tx, viewer, request.sourceClientId, request.targetClientId);
    const job = await insertJob(tx, request, input.asOf ?? now, null, actor);
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'restore.job.create',
      targetType: 'client',
      targetId: request.sourceClientId,
      details: { jobId: job.id, targetClientId: request.targetClientId, paths: request.paths, targetDir: request.targetDir, postCommand: request.postCommand !== null },
    });
    return job;
  });
}

async function insertJob(tx: Tx, request: RestoreRequest, asOf: Date, scheduleId: string | null, actor: Actor): Promise<RestoreJobRow> {
  const [job] = await tx
    .insert(restoreJobs)
    .values({
      sourceClientId: request.sourceClientId,
      targetClientId: request.targetClientId,
      asOf,
      paths: request.paths,
      targetDir: request.targetDir,
      overwrite: request.overwrite,
      postCommand: request.postCommand,
      postCommandTimeoutSeconds: request.postCommandTimeoutSeconds,
      scheduleId,
      createdByUserId: actor.userId,
      createdByName: actor.name,
    })
    .returning();
  await notifyAgent(tx, request.targetClientId, 'restore');
  return job!;
}

/** A job the viewer may see (as owner of its clients, or admin); NotFoundError otherwise. */
export async function getRestoreJob(db: Db, viewer: RestoreViewer, jobId: string): Promise<RestoreJobRow & { sourceClientName: string; targetClientName: string }> {
  if (!isUuid(jobId)) throw new NotFoundError('no such restore job');
  const [row] = await db
    .select({ job: restoreJobs, sourceName: clients.name, ownerId: clients.ownerId, targetName: sql<string>`(select name from clients t where t.id = ${restoreJobs.targetClientId})` })
    .from(restoreJobs)
    .innerJoin(clients, eq(clients.id, restoreJobs.sourceClientId))
    .where(eq(restoreJobs.id, jobId));
  if (!row || !(viewer.isAdmin || row.ownerId === viewer.userId)) throw new NotFoundError('no such restore job');
  return { ...row.job, sourceClientName: row.sourceName, targetClientName: row.targetName };
}

export type ListedRestoreJob = RestoreJobRow & { sourceClientName: string; targetClientName: string };

/**
 * Jobs restoring from or onto a client, newest first; `before` pages back
 * (the createdAt of a page's last job, in milliseconds as JSON gives it).
 * A page never ends inside a millisecond: jobs made in one transaction (a
 * sweep of due schedules) share their created_at, and a cursor cut to
 * milliseconds would otherwise skip the ones a page left out. So `limit`
 * is a minimum once it is reached: the rest of the last job's millisecond
 * comes along, and the next page starts before that millisecond.
 */
export async function listRestoreJobs(db: Db, clientId: string, page: { limit: number; before?: Date | undefined }): Promise<ListedRestoreJob[]> {
  const ofClient = or(eq(restoreJobs.sourceClientId, clientId), eq(restoreJobs.targetClientId, clientId));
  const millisecond = sql`date_trunc('milliseconds', ${restoreJobs.createdAt})`;
  const select = () =>
    db
      .select({
        job: restoreJobs,
        sourceName: sql<string>`(select name from clients s where s.id = ${restoreJobs.sourceClientId})`,
        targetName: sql<string>`(select name from clients t where t.id = ${restoreJobs.targetClientId})`,
      })
      .from(restoreJobs);
  const rows = await select()
    .where(and(ofClient, page.before ? sql`${millisecond} < ${page.before.toISOString()}::timestamptz` : undefined))
    .orderBy(desc(restoreJobs.createdAt), desc(restoreJobs.id))
    .limit(page.limit);
  const last = rows.at(-1);
  if (last && rows.length === page.limit) {
    const lastMs = new Date(last.job.createdAt.getTime()).toISOString();
    const shown = rows.map((r) => r.job.id);
    rows.push(
      ...(await select()
        .where(and(ofClient, sql`${millisecond} = ${lastMs}::timestamptz`, notInArray(restoreJobs.id, shown)))
        .orderBy(desc(restoreJobs.createdAt), desc(restoreJobs.id))),
    );
  }
  return rows.map((r) => ({ ...r.job, sourceClientName: r.sourceName, targetClientName: r.targetName }));
}

/**
 * Cancels a job: a queued one ends at once; a running one is asked to stop
 * (the agent sees it in its next progress answer, within a second or two,
 * and finishes the job as cancelled). ConflictError for a finished job.
 */
export async function cancelRestoreJob(ctx: AppContext, viewer: RestoreViewer, actor: Actor, jobId: string): Promise<RestoreJobStatus> {
  const job = await getRestoreJob(ctx.database.db, viewer, jobId);
  return ctx.database.db.transaction(async (tx) => {
    const [queued] = await tx
      .update(restoreJobs)
      .set({ status: 'cancelled', finishedAt: sql`now()`, cancelRequestedAt: sql`now()`, error: `cancelled by ${actor.name} before it started` })
      .where(and(eq(restoreJobs.id, job.id), eq(restoreJobs.status, 'queued')))
      .returning({ id: restoreJobs.id });
    let status: RestoreJobStatus = 'cancelled';
    if (!queued) {
      const [running] = await tx
        .update(restoreJobs)
        .set({ cancelRequestedAt: sql`coalesce(${restoreJobs.cancelRequestedAt}, now())` })
        .where(and(eq(restoreJobs.id, job.id), eq(restoreJobs.status, 'running')))
        .returning({ id: restoreJobs.id });
      if (!running) throw new ConflictError(`the restore job already ended (${job.status})`);
      status = 'running';
      await notifyAgent(tx, job.targetClientId, 'restore');
    }
    await recordAudit(tx, { actorUserId: actor.userId, actorName: actor.name, action: 'restore.job.cancel', targetType: 'client', targetId: job.sourceClientId, details: { jobId: job.id } });
    return status;
  });
}

// ---- the agent's side ----------------------------------------------------------

/**
 * Hands the oldest queued job of this client to its agent and marks it
 * running; null when none waits. The agent works one job at a time, so a
 * job of this client still marked running was cut off (the agent restarted):
 * it ends as failed first, saying so. A job whose clients no longer share an
 * owner (one was moved) fails instead of running.
 */
export async function claimRestoreJob(ctx: AppContext, clientId: string): Promise<RestoreJobSpec | null> {
  return ctx.database.db.transaction(async (tx) => {
    await tx
      .update(restoreJobs)
      .set({ status: 'failed', finishedAt: sql`now()`, error: 'interrupted: the agent started again before finishing this job' })
      .where(and(eq(restoreJobs.targetClientId, clientId), eq(restoreJobs.status, 'running')));
    for (;;) {
      const [next] = await tx
        .select({ id: restoreJobs.id })
        .from(restoreJobs)
        .where(and(eq(restoreJobs.targetClientId, clientId), eq(restoreJobs.status, 'queued')))
        .orderBy(asc(restoreJobs.createdAt))
        .limit(1)
        .for('update', { skipLocked: true });
      if (!next) return null;
      const [job] = await tx.update(restoreJobs).set({ status: 'running', startedAt: sql`now()` }).where(eq(restoreJobs.id, next.id)).returning();
      const owners = await tx
        .select({ id: clients.id, ownerId: clients.ownerId, name: clients.name })
        .from(clients)
        .where(inArray(clients.id, [job!.sourceClientId, job!.targetClientId]));
      const source = owners.find((o) => o.id === job!.sourceClientId);
      const target = owners.find((o) => o.id === job!.targetClientId);
      if (!source || !target || source.ownerId !== target.ownerId) {
        await tx
          .update(restoreJobs)
          .set({ status: 'failed', finishedAt: sql`now()`, error: 'refused: the source and target clients no longer belong to one owner' })
          .where(eq(restoreJobs.id, job!.id));
        continue;
      }
      ctx.log.info({ jobId: job!.id, sourceClientId: job!.sourceClientId, targetClientId: clientId }, 'restore job claimed');
      return {
        jobId: job!.id,
        sourceClientName: source.name,
        asOf: job!.asOf.toISOString(),
        paths: job!.paths,
        targetDir: job!.targetDir,
        overwrite: job!.overwrite,
        postCommand: job!.postCommand,
        postCommandTimeoutSeconds: job!.postCommandTimeoutSeconds,
      };
    }
  });
}

/** The running job of this agent; NotFoundError for another's or an unknown one, ConflictError once it ended. */
async function runningJobOf(db: Db, clientId: string, jobId: string): Promise<RestoreJobRow> {
  const [job] = await db
    .select()
    .from(restoreJobs)
    .where(and(eq(restoreJobs.id, jobId), eq(restoreJobs.targetClientId, clientId)))
    .limit(1);
  if (!job) throw new NotFoundError('no such restore job');
  if (job.status !== 'running') throw new ConflictError(`the restore job is not running (${job.status})`);
  return job;
}

/**
 * One page of the job's files: the source client's tree as of the job's
 * time, under each of its paths in turn. The cursor is opaque to the agent
 * (`<path index>:<last path>`).
 */
export async function restoreJobFiles(db: Db, clientId: string, jobId: string, cursor: string | undefined, limit: number): Promise<{ files: FilesPage['files']; nextCursor: string | null }> {
  const job = await runningJobOf(db, clientId, jobId);
  let index = 0;
  let after: string | undefined;
  if (cursor !== undefined && cursor !== '') {
    const match = /^(\d+):(.*)$/s.exec(cursor);
    if (!match || Number(match[1]) >= job.paths.length) throw BadRequestError.inField('cursor', 'not a cursor this job handed out');
    index = Number(match[1]);
    after = match[2] === '' ? undefined : match[2];
  }
  for (; index < job.paths.length; index += 1, after = undefined) {
    const page = await listTreeAsOf(db, job.sourceClientId, { asOf: job.asOf, prefix: job.paths[index]!, ...(after !== undefined && { after }), limit });
    if (page.nextAfter !== null) return { files: page.files, nextCursor: `${index}:${page.nextAfter}` };
    if (page.files.length > 0) return { files: page.files, nextCursor: index + 1 < job.paths.length ? `${index + 1}:` : null };
  }
  return { files: [], nextCursor: null };
}

/** Stores the agent's progress; answers whether a person asked to cancel. */
export async function reportRestoreProgress(db: Db, clientId: string, jobId: string, progress: RestoreJobProgress): Promise<{ cancelRequested: boolean }> {
  const job = await runningJobOf(db, clientId, jobId);
  await db.update(restoreJobs).set({ progress, progressAt: sql`now()` }).where(and(eq(restoreJobs.id, job.id), eq(restoreJobs.status, 'running')));
  return { cancelRequested: job.cancelRequestedAt !== null };
}

/** Ends the job with the agent's outcome. A scheduled job's failure raises an alert through the engine (evaluated by the caller). */
export async function finishRestoreJob(ctx: AppContext, clientId: string, jobId: string, outcome: RestoreJobFinish): Promise<RestoreJobRow> {
  const job = await runningJobOf(ctx.database.db, clientId, jobId);
  const [finished] = await ctx.database.db
    .update(restoreJobs)
    .set({
      status: outcome.status,
      finishedAt: sql`now()`,
      result: { filesRestored: outcome.filesRestored, bytesRestored: outcome.bytesRestored, filesFailed: outcome.filesFailed, failures: outcome.failures, command: outcome.command },
      error: outcome.error,
    })
    .where(and(eq(restoreJobs.id, job.id), eq(restoreJobs.status, 'running')))
    .returning();
  if (!finished) throw new ConflictError('the restore job is not running');
  await recordAudit(ctx.database.db, {
    actorUserId: null,
    actorName: 'agent',
    action: 'restore.job.finish',
    targetType: 'client',
    targetId: job.sourceClientId,
    details: { jobId: job.id, status: outcome.status, filesRestored: outcome.filesRestored, filesFailed: outcome.filesFailed, commandExitCode: outcome.command?.exitCode ?? null },
  });
  ctx.log.info({ jobId: job.id, status: outcome.status, filesRestored: outcome.filesRestored, filesFailed: outcome.filesFailed }, 'restore job finished');
  return finished;
}

// ---- schedules --------------------------------------------------------------------

export interface RestoreScheduleInput extends RestoreRequest {
  cron: string | null;
  intervalSeconds: number;
  timeZone: string;
}

export function scheduleOfRestore(row: { cron: string | null; intervalSeconds: number; timeZone: string }): BackupSchedule {
  return { intervalSeconds: row.intervalSeconds, cron: row.cron, timeZone: row.timeZone, window: null };
}

/** Creates a schedule; its first job is queued at the schedule's first time from now (not at once). */
export async function createRestoreSchedule(ctx: AppContext, viewer: RestoreViewer, actor: Actor, input: RestoreScheduleInput, now = new Date()): Promise<RestoreScheduleRow> {
  if (!isUuid(input.sourceClientId)) throw new NotFoundError('no such client');
  if (!isUuid(input.targetClientId)) throw BadRequestError.inField('targetClientId', 'no such client');
  const request = normaliseRestoreRequest(input);
  const schedule: BackupSchedule = { intervalSeconds: input.intervalSeconds, cron: input.cron, timeZone: input.timeZone || DEFAULT_TIME_ZONE, window: null };
  try {
    assertBackupSchedule(schedule, now);
  } catch (error) {
    // The backup form's message names its interval; this one names the field.
    if (error instanceof BadRequestError && error.field === 'intervalSeconds') throw BadRequestError.inField('intervalSeconds', 'at least 60 seconds');
    throw error;
  }
  // An interval schedule runs one interval from now; a cron one at its next time.
  const first = schedule.cron === null ? new Date(now.getTime() + schedule.intervalSeconds * 1000) : nextRunAt(schedule, null, now);
  return ctx.database.db.transaction(async (tx) => {
    await assertClientsFor(tx, viewer, request.sourceClientId, request.targetClientId);
    const [row] = await tx
      .insert(restoreSchedules)
      .values({
        sourceClientId: request.sourceClientId,
        targetClientId: request.targetClientId,
        paths: request.paths,
        targetDir: request.targetDir,
        overwrite: request.overwrite,
        postCommand: request.postCommand,
        postCommandTimeoutSeconds: request.postCommandTimeoutSeconds,
        intervalSeconds: schedule.intervalSeconds,
        cron: schedule.cron,
        timeZone: schedule.timeZone,
        nextRunAt: first,
        createdByUserId: actor.userId,
        createdByName: actor.name,
      })
      .returning();
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'restore.schedule.create',
      targetType: 'client',
      targetId: request.sourceClientId,
      details: { scheduleId: row!.id, targetClientId: request.targetClientId, schedule: describeSchedule(schedule) },
    });
    return row!;
  });
}

export type ListedRestoreSchedule = RestoreScheduleRow & { sourceClientName: string; targetClientName: string; lastJob: { id: string; status: RestoreJobStatus; finishedAt: Date | null } | null };

/** Schedules restoring from or onto a client, oldest first, with each one's latest job. */
export async function listRestoreSchedules(db: Db, clientId: string): Promise<ListedRestoreSchedule[]> {
  const rows = await db
    .select({
      schedule: restoreSchedules,
      sourceName: sql<string>`(select name from clients s where s.id = ${restoreSchedules.sourceClientId})`,
      targetName: sql<string>`(select name from clients t where t.id = ${restoreSchedules.targetClientId})`,
    })
    .from(restoreSchedules)
    .where(or(eq(restoreSchedules.sourceClientId, clientId), eq(restoreSchedules.targetClientId, clientId)))
    .orderBy(asc(restoreSchedules.createdAt));
  const latest = await latestJobsOf(db, rows.map((r) => r.schedule.id));
  return rows.map((r) => ({ ...r.schedule, sourceClientName: r.sourceName, targetClientName: r.targetName, lastJob: latest.get(r.schedule.id) ?? null }));
}

async function latestJobsOf(db: Db, scheduleIds: string[]): Promise<Map<string, { id: string; status: RestoreJobStatus; finishedAt: Date | null; error: string | null; result: RestoreJobRow['result'] }>> {
  if (scheduleIds.length === 0) return new Map();
  const rows = await db
    .selectDistinctOn([restoreJobs.scheduleId], {
      scheduleId: restoreJobs.scheduleId,
      id: restoreJobs.id,
      status: restoreJobs.status,
      finishedAt: restoreJobs.finishedAt,
      error: restoreJobs.error,
      result: restoreJobs.result,
    })
    .from(restoreJobs)
    .where(and(inArray(restoreJobs.scheduleId, scheduleIds), isNotNull(restoreJobs.finishedAt)))
    .orderBy(restoreJobs.scheduleId, desc(restoreJobs.createdAt));
  return new Map(rows.map((r) => [r.scheduleId!, r]));
}

async function scheduleFor(db: Db, viewer: RestoreViewer, scheduleId: string): Promise<RestoreScheduleRow> {
  if (!isUuid(scheduleId)) throw new NotFoundError('no such restore schedule');
  const [row] = await db
    .select({ schedule: restoreSchedules, ownerId: clients.ownerId })
    .from(restoreSchedules)
    .innerJoin(clients, eq(clients.id, restoreSchedules.sourceClientId))
    .where(eq(restoreSchedules.id, scheduleId));
  if (!row || !(viewer.isAdmin || row.ownerId === viewer.userId)) throw new NotFoundError('no such restore schedule');
  return row.schedule;
}

export async function deleteRestoreSchedule(ctx: AppContext, viewer: RestoreViewer, actor: Actor, scheduleId: string): Promise<void> {
  const schedule = await scheduleFor(ctx.database.db, viewer, scheduleId);
  await ctx.database.db.transaction(async (tx) => {
    await tx.delete(restoreSchedules).where(eq(restoreSchedules.id, schedule.id));
    await recordAudit(tx, { actorUserId: actor.userId, actorName: actor.name, action: 'restore.schedule.delete', targetType: 'client', targetId: schedule.sourceClientId, details: { scheduleId: schedule.id } });
  });
}

/** Queues the schedule's job now, as its time would ("Run now"); the schedule's next time stays. */
export async function runRestoreScheduleNow(ctx: AppContext, viewer: RestoreViewer, actor: Actor, scheduleId: string): Promise<RestoreJobRow> {
  const schedule = await scheduleFor(ctx.database.db, viewer, scheduleId);
  return ctx.database.db.transaction(async (tx) => {
    await assertClientsFor(tx, viewer, schedule.sourceClientId, schedule.targetClientId);
    const job = await insertJob(tx, schedule, new Date(), schedule.id, actor);
    await tx.update(restoreSchedules).set({ lastQueuedAt: sql`now()` }).where(eq(restoreSchedules.id, schedule.id));
    await recordAudit(tx, { actorUserId: actor.userId, actorName: actor.name, action: 'restore.schedule.run', targetType: 'client', targetId: schedule.sourceClientId, details: { scheduleId: schedule.id, jobId: job.id } });
    return job;
  });
}

/**
 * The schedule sweep (a periodic job, any replica): queues a job for every
 * enabled schedule whose time has come, "the latest" meaning the tree as of
 * now, and sets its next time. Rows are taken FOR UPDATE SKIP LOCKED, so two
 * replicas sweeping at once never queue one time twice. A schedule whose
 * previous job has not ended yet skips this time (a slow restore does not
 * pile up copies of itself) and says so in the log.
 */
export async function sweepRestoreSchedules(ctx: AppContext, now = new Date()): Promise<{ queued: number; skipped: number }> {
  let queued = 0;
  let skipped = 0;
  await ctx.database.db.transaction(async (tx) => {
    const due = await tx
      .select()
      .from(restoreSchedules)
      .where(and(eq(restoreSchedules.enabled, true), lte(restoreSchedules.nextRunAt, now)))
      .orderBy(asc(restoreSchedules.nextRunAt))
      .limit(100)
      .for('update', { skipLocked: true });
    for (const schedule of due) {
      const next = nextRunAt(scheduleOfRestore(schedule), now, new Date(now.getTime() + 1000));
      const [unfinished] = await tx
        .select({ id: restoreJobs.id })
        .from(restoreJobs)
        .where(and(eq(restoreJobs.scheduleId, schedule.id), inArray(restoreJobs.status, ['queued', 'running'])))
        .limit(1);
      if (unfinished) {
        skipped += 1;
        ctx.log.warn({ scheduleId: schedule.id, jobId: unfinished.id }, 'restore schedule due, but its previous job has not ended: skipping this time');
      } else {
        const actor: Actor = { userId: null, name: 'schedule' };
        const job = await insertJob(tx, schedule, now, schedule.id, actor);
        queued += 1;
        ctx.log.info({ scheduleId: schedule.id, jobId: job.id }, 'restore schedule queued a job');
      }
      await tx.update(restoreSchedules).set({ nextRunAt: next, ...(unfinished ? {} : { lastQueuedAt: now }) }).where(eq(restoreSchedules.id, schedule.id));
    }
  });
  return { queued, skipped };
}

/**
 * The latest finished job of each enabled schedule restoring onto this
 * client, where it did not succeed: the alert engine's restore_failed
 * conditions (alerts/restore-failures.ts).
 */
export async function failedScheduledRestores(db: Db, targetClientId: string): Promise<{ scheduleId: string; sourceClientName: string; paths: string[]; job: { id: string; status: RestoreJobStatus; finishedAt: Date | null; error: string | null; result: RestoreJobRow['result'] } }[]> {
  const schedules = await db
    .select({ id: restoreSchedules.id, paths: restoreSchedules.paths, sourceName: clients.name })
    .from(restoreSchedules)
    .innerJoin(clients, eq(clients.id, restoreSchedules.sourceClientId))
    .where(and(eq(restoreSchedules.targetClientId, targetClientId), eq(restoreSchedules.enabled, true)));
  const latest = await latestJobsOf(db, schedules.map((s) => s.id));
  return schedules.flatMap((s) => {
    const job = latest.get(s.id);
    return job && job.status !== 'succeeded' && job.status !== 'cancelled' ? [{ scheduleId: s.id, sourceClientName: s.sourceName, paths: s.paths, job }] : [];
  });
}
