import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  ChangesRequest,
  ChangesResponse,
  ErrorBody,
  FinishRunRequest,
  RunParams,
  RunSummary,
  StartRunRequest,
  StartRunResponse,
} from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { applyChanges, finishRun, startRun } from '../services/backup-repository.ts';
import { agentOf, BEARER } from './agent-auth.ts';

/** Runs: start, send changes in batches, finish. Another client's run id is a 404. */
export const runRoutes: FastifyPluginAsyncTypebox<{ ctx: AppContext }> = async (app, { ctx }) => {
  const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody };

  app.post(
    '/runs',
    {
      schema: {
        tags: ['agent'],
        summary: 'Start a backup run',
        security: BEARER,
        body: StartRunRequest,
        response: { 200: StartRunResponse, ...errors },
      },
    },
    async (request) => startRun(ctx, agentOf(request).clientId, request.body),
  );

  app.post(
    '/runs/:runId/changes',
    {
      schema: {
        tags: ['agent'],
        summary: "Apply a batch of the run's file changes (all or nothing); 409 names content to upload first",
        security: BEARER,
        params: RunParams,
        body: ChangesRequest,
        response: { 200: ChangesResponse, ...errors, 413: ErrorBody },
      },
    },
    async (request) => applyChanges(ctx, agentOf(request), request.params.runId, request.body),
  );

  app.post(
    '/runs/:runId/finish',
    {
      schema: {
        tags: ['agent'],
        summary: 'Finish a run with its status, stats and pre-command results',
        security: BEARER,
        params: RunParams,
        body: FinishRunRequest,
        response: { 200: RunSummary, ...errors },
      },
    },
    async (request) => finishRun(ctx, agentOf(request).clientId, request.params.runId, request.body),
  );
};
