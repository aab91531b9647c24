import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  ErrorBody,
  FileVersion,
  LIMITS,
  OkResponse,
  RestoreJobFinish,
  RestoreJobParams,
  RestoreJobProgress,
  RestoreJobProgressAnswer,
  RestoreJobSpec,
} from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { evaluateClientAlerts } from '../alerts/alert-engine.ts';
import { claimRestoreJob, finishRestoreJob, reportRestoreProgress, restoreJobFiles } from '../services/restore-jobs.service.ts';
import { agentOf, BEARER } from './agent-auth.ts';

const FilesCursorQuery = Type.Object({
  cursor: Type.Optional(Type.String({ maxLength: LIMITS.pathBytes + 16 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: LIMITS.maxPageSize })),
});
const JobFilesPage = Type.Object({ files: Type.Array(FileVersion), nextCursor: Type.Union([Type.Null(), Type.String()]) });

/** The agent's side of restore jobs (shared/src/restore-jobs.ts); mounted inside the bearer-token scope. */
export const restoreJobRoutes: FastifyPluginAsyncTypebox<{ ctx: AppContext }> = async (app, { ctx }) => {
  const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody };

  app.post(
    '/restore-jobs/claim',
    {
      schema: {
        tags: ['agent'],
        summary: 'Take the oldest queued restore job of this client (marks it running); 204 when none waits',
        security: BEARER,
        response: { 200: RestoreJobSpec, 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      const job = await claimRestoreJob(ctx, agentOf(request).clientId);
      return job ?? reply.status(204).send(null);
    },
  );

  app.get(
    '/restore-jobs/:jobId/files',
    {
      schema: {
        tags: ['agent'],
        summary: "One page of a running job's files: the source client's tree as of the job's time, under its paths",
        security: BEARER,
        params: RestoreJobParams,
        querystring: FilesCursorQuery,
        response: { 200: JobFilesPage, ...errors },
      },
    },
    async (request) =>
      restoreJobFiles(ctx.database.db, agentOf(request).clientId, request.params.jobId, request.query.cursor, request.query.limit ?? LIMITS.pageSize),
  );

  app.post(
    '/restore-jobs/:jobId/progress',
    {
      schema: {
        tags: ['agent'],
        summary: "A running job's progress; answers whether a person cancelled it",
        security: BEARER,
        params: RestoreJobParams,
        body: RestoreJobProgress,
        response: { 200: RestoreJobProgressAnswer, ...errors },
      },
    },
    async (request) => reportRestoreProgress(ctx.database.db, agentOf(request).clientId, request.params.jobId, request.body),
  );

  app.post(
    '/restore-jobs/:jobId/finish',
    {
      schema: {
        tags: ['agent'],
        summary: 'End a running job with its outcome (files, bytes, failures, the post-restore command)',
        security: BEARER,
        params: RestoreJobParams,
        body: RestoreJobFinish,
        response: { 200: OkResponse, ...errors },
      },
    },
    async (request) => {
      const { clientId } = agentOf(request);
      const job = await finishRestoreJob(ctx, clientId, request.params.jobId, request.body);
      // A scheduled job that failed raises (and a later success resolves) its alert now, not at the next pass.
      if (job.scheduleId !== null) {
        await evaluateClientAlerts(ctx, clientId).catch((error: unknown) => request.log.error({ err: error, clientId }, 'alert evaluation after a restore job failed'));
      }
      return { ok: true };
    },
  );
};
