/**
 * Restore jobs and schedules in the admin REST API (issue 13): the same
 * services and permission checks as the dashboard's Restores tab, for
 * scripts holding a personal access token. Registered inside adminApiRoutes,
 * so the token check and the read-only rule apply.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { IsoTime, PreCommandResult, RestoreJobFailure, RestoreJobProgress, RestoreJobStatus, Uuid } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import type { Viewer } from '../dashboard/dashboard.repository.ts';
import {
  cancelRestoreJob,
  createRestoreJob,
  createRestoreSchedule,
  deleteRestoreSchedule,
  getRestoreJob,
  listRestoreJobs,
  listRestoreSchedules,
  restoreRequestOf,
  runRestoreScheduleNow,
  type ListedRestoreJob,
  type ListedRestoreSchedule,
} from '../services/restore-jobs.service.ts';
import type { Actor } from '../services/users.service.ts';
import { AdminError, IdParams } from './admin-api.schemas.ts';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([Type.Null(), schema]);

const RestoreFields = {
  targetClientId: Type.Optional(Type.String({ description: 'default: the same client' })),
  paths: Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 100 }),
  targetDir: Type.String({ maxLength: 4096 }),
  overwrite: Type.Optional(Type.Boolean()),
  postCommand: Type.Optional(Nullable(Type.String({ maxLength: 4096 }))),
  postCommandTimeoutSeconds: Type.Optional(Type.Integer()),
};

export const NewRestoreJob = Type.Object({ ...RestoreFields, asOf: Type.Optional(Nullable(IsoTime)) }, { additionalProperties: false });
export const NewRestoreSchedule = Type.Object(
  { ...RestoreFields, cron: Type.Optional(Nullable(Type.String({ maxLength: 200 }))), intervalSeconds: Type.Optional(Type.Integer()), timeZone: Type.Optional(Type.String({ maxLength: 100 })) },
  { additionalProperties: false },
);

export const AdminRestoreJob = Type.Object({
  id: Uuid,
  status: RestoreJobStatus,
  sourceClientId: Uuid,
  sourceClientName: Type.String(),
  targetClientId: Uuid,
  targetClientName: Type.String(),
  asOf: IsoTime,
  paths: Type.Array(Type.String()),
  targetDir: Type.String(),
  overwrite: Type.Boolean(),
  postCommand: Nullable(Type.String()),
  scheduleId: Nullable(Uuid),
  createdBy: Type.String(),
  createdAt: IsoTime,
  startedAt: Nullable(IsoTime),
  finishedAt: Nullable(IsoTime),
  cancelRequestedAt: Nullable(IsoTime),
  progress: Nullable(RestoreJobProgress),
  result: Nullable(
    Type.Object({
      filesRestored: Type.Integer(),
      bytesRestored: Type.Integer(),
      filesFailed: Type.Integer(),
      failures: Type.Array(RestoreJobFailure),
      command: Nullable(PreCommandResult),
    }),
  ),
  error: Nullable(Type.String()),
});
const RestoreJobList = Type.Object({ jobs: Type.Array(AdminRestoreJob) });
const RestoreJobsQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })), before: Type.Optional(IsoTime) });

export const AdminRestoreSchedule = Type.Object({
  id: Uuid,
  sourceClientId: Uuid,
  sourceClientName: Type.String(),
  targetClientId: Uuid,
  targetClientName: Type.String(),
  paths: Type.Array(Type.String()),
  targetDir: Type.String(),
  overwrite: Type.Boolean(),
  postCommand: Nullable(Type.String()),
  cron: Nullable(Type.String()),
  intervalSeconds: Type.Integer(),
  timeZone: Type.String(),
  nextRunAt: Nullable(IsoTime),
  lastJob: Nullable(Type.Object({ id: Uuid, status: RestoreJobStatus, finishedAt: Nullable(IsoTime) })),
  createdAt: IsoTime,
});
const RestoreScheduleList = Type.Object({ schedules: Type.Array(AdminRestoreSchedule) });
const Cancelled = Type.Object({ status: RestoreJobStatus });
const Deleted = Type.Object({ deleted: Type.Boolean() });

const iso = (value: Date | null): string | null => (value === null ? null : value.toISOString());

function jobJson(job: ListedRestoreJob): Static<typeof AdminRestoreJob> {
  return {
    id: job.id,
    status: job.status,
    sourceClientId: job.sourceClientId,
    sourceClientName: job.sourceClientName,
    targetClientId: job.targetClientId,
    targetClientName: job.targetClientName,
    asOf: job.asOf.toISOString(),
    paths: job.paths,
    targetDir: job.targetDir,
    overwrite: job.overwrite,
    postCommand: job.postCommand,
    scheduleId: job.scheduleId,
    createdBy: job.createdByName,
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    cancelRequestedAt: iso(job.cancelRequestedAt),
    progress: job.progress,
    result: job.result,
    error: job.error,
  };
}

function scheduleJson(s: ListedRestoreSchedule): Static<typeof AdminRestoreSchedule> {
  return {
    id: s.id,
    sourceClientId: s.sourceClientId,
    sourceClientName: s.sourceClientName,
    targetClientId: s.targetClientId,
    targetClientName: s.targetClientName,
    paths: s.paths,
    targetDir: s.targetDir,
    overwrite: s.overwrite,
    postCommand: s.postCommand,
    cron: s.cron,
    intervalSeconds: s.intervalSeconds,
    timeZone: s.timeZone,
    nextRunAt: iso(s.nextRunAt),
    lastJob: s.lastJob ? { ...s.lastJob, finishedAt: iso(s.lastJob.finishedAt) } : null,
    createdAt: s.createdAt.toISOString(),
  };
}

export interface AdminRouteHelpers {
  viewerOf(request: FastifyRequest): Viewer;
  actorOf(request: FastifyRequest): Actor;
  visibleClient(request: FastifyRequest, id: string): Promise<{ id: string }>;
  tags: string[];
  security: { bearer: never[] }[];
}

export function registerRestoreJobAdminRoutes(plugin: FastifyInstance, ctx: AppContext, helpers: AdminRouteHelpers): void {
  const app = plugin.withTypeProvider<TypeBoxTypeProvider>();
  const db = ctx.database.db;
  const { tags, security } = helpers;
  const errors = { 400: AdminError, 401: AdminError, 403: AdminError, 404: AdminError };
  const restoreViewer = (request: FastifyRequest) => {
    const user = helpers.viewerOf(request);
    return { userId: user.id, isAdmin: user.isAdmin };
  };

  app.get(
    '/clients/:id/restore-jobs',
    { schema: { tags, summary: 'Restore jobs from or onto the client, newest first (page back with `before`: the createdAt of the last job; a page finishes the millisecond of its last job, so it may hold more than `limit`)', security, params: IdParams, querystring: RestoreJobsQuery, response: { 200: RestoreJobList, ...errors } } },
    async (request) => {
      const client = await helpers.visibleClient(request, request.params.id);
      const before = request.query.before === undefined ? undefined : new Date(request.query.before);
      return { jobs: (await listRestoreJobs(db, client.id, { limit: request.query.limit ?? 50, before })).map(jobJson) };
    },
  );

  app.post(
    '/clients/:id/restore-jobs',
    {
      schema: {
        tags,
        summary: "Restore the client's backup (as of `asOf`, default now) under `paths` into `targetDir` on the target client (same owner); its agent starts within seconds when connected",
        security,
        params: IdParams,
        body: NewRestoreJob,
        response: { 201: AdminRestoreJob, ...errors },
      },
    },
    async (request, reply) => {
      const client = await helpers.visibleClient(request, request.params.id);
      const body = request.body;
      const job = await createRestoreJob(ctx, restoreViewer(request), helpers.actorOf(request), {
        ...restoreRequestOf(client.id, body),
        asOf: body.asOf ? new Date(body.asOf) : null,
      });
      return reply.code(201).send(jobJson(await getRestoreJob(db, restoreViewer(request), job.id)));
    },
  );

  app.get(
    '/restore-jobs/:id',
    { schema: { tags, summary: 'One restore job with its progress and outcome', security, params: IdParams, response: { 200: AdminRestoreJob, ...errors } } },
    async (request) => jobJson(await getRestoreJob(db, restoreViewer(request), request.params.id)),
  );

  app.post(
    '/restore-jobs/:id/cancel',
    {
      schema: {
        tags,
        summary: 'Cancel a job: a queued one ends at once (status cancelled), a running one stops before its next file (status running until the agent reports); 409 once ended',
        security,
        params: IdParams,
        response: { 200: Cancelled, ...errors, 409: AdminError },
      },
    },
    async (request) => ({ status: await cancelRestoreJob(ctx, restoreViewer(request), helpers.actorOf(request), request.params.id) }),
  );

  app.get(
    '/clients/:id/restore-schedules',
    { schema: { tags, summary: 'Restore schedules from or onto the client', security, params: IdParams, response: { 200: RestoreScheduleList, ...errors } } },
    async (request) => {
      const client = await helpers.visibleClient(request, request.params.id);
      return { schedules: (await listRestoreSchedules(db, client.id)).map(scheduleJson) };
    },
  );

  app.post(
    '/clients/:id/restore-schedules',
    {
      schema: {
        tags,
        summary: 'Restore the latest backup on a schedule: `cron` in `timeZone`, or every `intervalSeconds`',
        security,
        params: IdParams,
        body: NewRestoreSchedule,
        response: { 201: AdminRestoreSchedule, ...errors },
      },
    },
    async (request, reply) => {
      const client = await helpers.visibleClient(request, request.params.id);
      const body = request.body;
      const created = await createRestoreSchedule(ctx, restoreViewer(request), helpers.actorOf(request), {
        ...restoreRequestOf(client.id, body),
        cron: body.cron ?? null,
        intervalSeconds: body.intervalSeconds ?? 86_400,
        timeZone: body.timeZone ?? 'UTC',
      });
      const listed = (await listRestoreSchedules(db, client.id)).find((s) => s.id === created.id)!;
      return reply.code(201).send(scheduleJson(listed));
    },
  );

  app.post(
    '/restore-schedules/:id/run',
    { schema: { tags, summary: "Queue the schedule's restore now", security, params: IdParams, response: { 201: AdminRestoreJob, ...errors } } },
    async (request, reply) => {
      const job = await runRestoreScheduleNow(ctx, restoreViewer(request), helpers.actorOf(request), request.params.id);
      return reply.code(201).send(jobJson(await getRestoreJob(db, restoreViewer(request), job.id)));
    },
  );

  app.delete(
    '/restore-schedules/:id',
    { schema: { tags, summary: 'Delete a restore schedule (its past jobs stay)', security, params: IdParams, response: { 200: Deleted, ...errors } } },
    async (request) => {
      await deleteRestoreSchedule(ctx, restoreViewer(request), helpers.actorOf(request), request.params.id);
      return { deleted: true };
    },
  );
}
