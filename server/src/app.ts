import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { API_PREFIX, PROTOCOL_VERSION } from '@cairn/shared';
import { lazySchemaCompilers } from './lazy-schema-compilers.ts';
import type { AppContext } from './app-context.ts';
import { AppError, dropStreamHeaders } from './errors.ts';
import { ADMIN_API_PREFIX, adminApiRoutes } from './api/admin-api.routes.ts';
import { agentApiRoutes } from './api/agent-api.routes.ts';
import { downloadLinkRoutes } from './api/download-links.routes.ts';
import { tokenLoginRoutes } from './api/token-login.routes.ts';
import { DOWNLOAD_PATH } from './services/download-links.service.ts';
import { dashboardPlugin } from './dashboard/dashboard.plugin.ts';
import { healthRoutes } from './api/health.routes.ts';
import { addRequestMetricsHook, metricsRoutes } from './metrics/metrics.routes.ts';
import { formatSchemaErrors } from './schema-errors.ts';

export type App = FastifyInstance;

/**
 * Builds the server: external plugins, then the error handler, then routes.
 * All state lives in the database and the blob store (see AppContext), so any
 * number of these can serve behind a load balancer.
 */
export async function buildApp(ctx: AppContext): Promise<App> {
  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps the instance type the default one.
    loggerInstance: ctx.log as FastifyBaseLogger,
    bodyLimit: ctx.config.limits.maxJsonBodyBytes,
    trustProxy: ctx.config.trustProxy,
    // Ajv compiles `pattern` with the `u` flag (unicodeRegExp), which the shared text and path patterns rely on.
    ajv: { customOptions: { allErrors: false, removeAdditional: false, coerceTypes: 'array', unicodeRegExp: true } },
    schemaErrorFormatter: formatSchemaErrors,
    // Each route's schemas compiled at its first request, not at start-up (decision 170).
    schemaController: { compilersFactory: lazySchemaCompilers() },
  }).withTypeProvider<TypeBoxTypeProvider>();

  await app.register(swagger, {
    openapi: {
      info: { title: 'Cairn agent and admin API', version: String(PROTOCOL_VERSION) },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    hideUntagged: false,
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    dropStreamHeaders(reply);
    if (error instanceof AppError) {
      if (error.statusCode >= 500) request.log.error({ err: error }, 'request failed');
      return reply
        .status(error.statusCode)
        .send({ statusCode: error.statusCode, error: error.name, message: error.message, ...error.extra });
    }
    if (error.validation) {
      return reply.status(400).send({ statusCode: 400, error: 'Bad Request', message: error.message });
    }
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      return reply.status(status).send({ statusCode: status, error: 'Internal Server Error', message: 'internal error' });
    }
    return reply.status(status).send({ statusCode: status, error: error.name || 'Error', message: error.message });
  });

  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({ statusCode: 404, error: 'Not Found', message: `no route for ${request.method} ${request.url.split('?')[0]}` });
  });

  addRequestMetricsHook(app);
  await app.register(healthRoutes, { ctx });
  if (ctx.config.metricsToken !== undefined) await app.register(metricsRoutes, { ctx, token: ctx.config.metricsToken });
  await app.register(agentApiRoutes, { ctx, prefix: API_PREFIX });
  await app.register(adminApiRoutes, { ctx, prefix: ADMIN_API_PREFIX });
  await app.register(tokenLoginRoutes, { ctx, prefix: '/api/v1/auth' });
  await app.register(downloadLinkRoutes, { ctx, prefix: DOWNLOAD_PATH });
  await app.register(dashboardPlugin, { ctx });

  app.get('/docs/json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
