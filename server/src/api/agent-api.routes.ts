import type { FastifyPluginAsync } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  ClientConfig,
  EnrollRequest,
  ErrorBody,
  LogsRequest,
  OkResponse,
  PingRequest,
  PingResponse,
  RegisterRequest,
  RegisterResponse,
} from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { appendClientLogs } from '../services/backup-repository.ts';
import { getClientConfig, recordPing, registerClient } from '../services/clients.service.ts';
import { enrollClient } from '../services/enrollment-keys.service.ts';
import { agentOf, BEARER, requireAgentToken } from './agent-auth.ts';
import { contentRoutes } from './contents.routes.ts';
import { fileRoutes } from './files.routes.ts';
import { runRoutes } from './runs.routes.ts';
import { restoreJobRoutes } from './restore-jobs.routes.ts';
import { LiveHub } from '../live/live-hub.ts';
import { liveRoutes } from '../live/live.routes.ts';

/** Registrations per client IP and minute: each costs a scrypt hash, and passwords must not be guessable in bulk. */
const REGISTER_RATE = { max: 30, timeWindow: '1 minute' } as const;

/** Agent API v1 (see shared/src/protocol.ts), mounted under /api/v1. */
export const agentApiRoutes: FastifyPluginAsync<{ ctx: AppContext }> = async (plugin, { ctx }) => {
  const app = plugin.withTypeProvider<TypeBoxTypeProvider>();
  await app.register(rateLimit, { global: false });
  // One LISTEN connection for this process's agent streams; streams end before the server waits for its connections.
  const hub = new LiveHub(ctx.database, ctx.log);
  app.addHook('preClose', async () => hub.close());

  app.post(
    '/register',
    {
      config: { rateLimit: REGISTER_RATE },
      schema: {
        tags: ['agent'],
        summary: "Register an agent with its user's credentials; returns the client id and a token shown once",
        body: RegisterRequest,
        response: { 200: RegisterResponse, 400: ErrorBody, 401: ErrorBody, 429: ErrorBody },
      },
    },
    async (request) => registerClient(ctx, request.body),
  );

  app.post(
    '/enroll',
    {
      config: { rateLimit: REGISTER_RATE },
      schema: {
        tags: ['agent'],
        summary: 'Register an agent with an enrollment key from the dashboard; returns the client id and a token shown once',
        body: EnrollRequest,
        response: { 200: RegisterResponse, 400: ErrorBody, 401: ErrorBody, 409: ErrorBody, 429: ErrorBody },
      },
    },
    async (request) => enrollClient(ctx, request.body),
  );

  await app.register(async (authed) => {
    requireAgentToken(authed, ctx);
    const routes = authed.withTypeProvider<TypeBoxTypeProvider>();
    const errors = { 400: ErrorBody, 401: ErrorBody };

    routes.post(
      '/ping',
      {
        schema: {
          tags: ['agent'],
          summary: 'Heartbeat; answers whether a run was requested',
          security: BEARER,
          body: PingRequest,
          response: { 200: PingResponse, ...errors },
        },
      },
      async (request) => recordPing(ctx.database.db, agentOf(request).clientId, request.body),
    );

    routes.get(
      '/config',
      {
        schema: {
          tags: ['agent'],
          summary: "This client's central configuration",
          security: BEARER,
          response: { 200: ClientConfig, ...errors },
        },
      },
      async (request) => getClientConfig(ctx, agentOf(request).clientId),
    );

    routes.post(
      '/logs',
      {
        schema: {
          tags: ['agent'],
          summary: 'Store agent log entries',
          security: BEARER,
          body: LogsRequest,
          response: { 200: OkResponse, ...errors, 404: ErrorBody },
        },
      },
      async (request) => {
        await appendClientLogs(ctx.database.db, agentOf(request).clientId, request.body.entries);
        return { ok: true };
      },
    );

    await routes.register(liveRoutes, { ctx, hub });
    await routes.register(runRoutes, { ctx });
    await routes.register(restoreJobRoutes, { ctx });
    await routes.register(contentRoutes, { ctx });
    await routes.register(fileRoutes, { ctx });
  });
};
