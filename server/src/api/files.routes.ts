import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ErrorBody, FilesPage, FilesQuery, VersionsQuery, VersionsResponse } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { listPathVersions, listTreeAsOf } from '../services/backup-repository.ts';
import { agentOf, BEARER } from './agent-auth.ts';

/** Listings for resync and restore: the tree as of a time, and the versions of one path. */
export const fileRoutes: FastifyPluginAsyncTypebox<{ ctx: AppContext }> = async (app, { ctx }) => {
  const errors = { 400: ErrorBody, 401: ErrorBody };

  app.get(
    '/files',
    {
      schema: {
        tags: ['agent'],
        summary: 'The tree as of `asOf` (default now), by path, paged with `after`',
        security: BEARER,
        querystring: FilesQuery,
        response: { 200: FilesPage, ...errors },
      },
    },
    async (request) => {
      const { asOf, prefix, after, limit } = request.query;
      return listTreeAsOf(ctx.database.db, agentOf(request).clientId, {
        ...(asOf !== undefined && { asOf: new Date(asOf) }),
        ...(prefix !== undefined && { prefix }),
        ...(after !== undefined && { after }),
        ...(limit !== undefined && { limit }),
      });
    },
  );

  app.get(
    '/versions',
    {
      schema: {
        tags: ['agent'],
        summary: 'Every retained version of one path, newest first',
        security: BEARER,
        querystring: VersionsQuery,
        response: { 200: VersionsResponse, ...errors },
      },
    },
    async (request) => ({ versions: await listPathVersions(ctx.database.db, agentOf(request).clientId, request.query.path) }),
  );
};
