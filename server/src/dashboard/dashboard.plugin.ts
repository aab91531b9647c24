import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import csrf from '@fastify/csrf-protection';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import view from '@fastify/view';
import { Eta } from 'eta';
import type { AppContext } from '../app-context.ts';
import { AppError, dropStreamHeaders, StoredContentDamagedError } from '../errors.ts';
import { alertsRoutes } from './alerts.routes.ts';
import { auditRoutes } from './audit.routes.ts';
import { authRoutes, sessionHook, TOO_MANY_LOGINS } from './auth.routes.ts';
import { restoresRoutes } from './restores.routes.ts';
import { enrollmentKeysRoutes } from './enrollment-keys.routes.ts';
import { clientsRoutes } from './clients.routes.ts';
import { type DashboardDeps, renderPage } from './dashboard-context.ts';
import { createDashboardRepository } from './dashboard.repository.ts';
import { filesRoutes } from './files.routes.ts';
import { notificationsRoutes } from './notifications.routes.ts';
import { alertDefaultsRoutes } from './alert-defaults.routes.ts';
import { overviewRoutes } from './overview.routes.ts';
import { statsRoutes } from './stats.routes.ts';
import { resolveSecretKey } from './secret-key.ts';
import { usersRoutes } from './users.routes.ts';
import { serversRoutes } from './servers.routes.ts';
import { verifyRoutes } from './verify.routes.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/**
 * The admin dashboard: server-rendered pages (Eta), server-side sessions,
 * CSRF tokens on every form, security headers and a login rate limit. This
 * plugin is encapsulated (not wrapped in fastify-plugin), so cookies, helmet,
 * rate limits and the HTML error handler apply to the dashboard only and
 * never to the agent API under /api/v1.
 */
export const dashboardPlugin: FastifyPluginAsync<{ ctx: AppContext; now?: () => Date }> = async (app, opts) => {
  const { ctx } = opts;
  const deps: DashboardDeps = { ctx, repo: createDashboardRepository(ctx.database.db), now: opts.now ?? (() => new Date()) };
  const secret = await resolveSecretKey(ctx.config, ctx.log);

  app.decorateRequest('dashboardUser', null);
  app.decorateRequest('dashboardSessionId', null);
  await app.register(cookie, { secret, hook: 'onRequest' });
  await app.register(formbody, { bodyLimit: 256 * 1024 });
  await app.register(csrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: 'cairn_csrf',
    cookieOpts: { path: '/', sameSite: 'lax', httpOnly: true, signed: true },
  });
  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'self'"],
        objectSrc: ["'none'"],
      },
    },
    referrerPolicy: { policy: 'same-origin' },
  });
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: () => new AppError(429, TOO_MANY_LOGINS),
  });
  await app.register(view, {
    engine: { eta: new Eta({ views: path.join(HERE, 'views'), autoEscape: true }) },
    root: path.join(HERE, 'views'),
    viewExt: 'eta',
    // Compile each template once per process (the views ship with the server; a restart picks up edits).
    production: true,
  });
  await app.register(fastifyStatic, {
    root: path.join(HERE, 'public'),
    prefix: '/static/',
    maxAge: '1h',
  });

  app.setErrorHandler(async (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) request.log.error({ err: error }, 'dashboard request failed');
    if (status === 429 && request.url.startsWith('/login')) {
      return renderPage(request, reply, deps, 'login', { error: error.message, username: '', next: '' }, 429);
    }
    dropStreamHeaders(reply);
    const message =
      error instanceof StoredContentDamagedError
        ? 'The file was not sent: its stored content is damaged or missing. The details are in the server log.'
        : status >= 500
        ? 'Something went wrong on the server. The details are in the server log.'
        : error.code === 'FST_CSRF_INVALID_TOKEN' || error.code === 'FST_CSRF_MISSING_SECRET'
          ? 'This form expired or did not come from this dashboard. Go back, reload the page and try again.'
          : error.message;
    return renderPage(request, reply, deps, 'error', { status, message, title: status === 404 ? 'Not found' : 'Error' }, status);
  });

  await app.register(authRoutes, { deps });
  await app.register(async (authed) => {
    authed.addHook('onRequest', sessionHook(deps));
    authed.addHook('preHandler', (request, reply, done) => {
      if (request.method === 'GET' || request.method === 'HEAD') return done();
      authed.csrfProtection(request, reply, done);
    });
    await authed.register(overviewRoutes, { deps });
    await authed.register(clientsRoutes, { deps });
    await authed.register(enrollmentKeysRoutes, { deps });
    await authed.register(restoresRoutes, { deps });
    await authed.register(verifyRoutes, { deps });
    await authed.register(serversRoutes, { deps });
    await authed.register(filesRoutes, { deps });
    await authed.register(usersRoutes, { deps });
    await authed.register(auditRoutes, { deps });
    await authed.register(notificationsRoutes, { deps });
    await authed.register(alertDefaultsRoutes, { deps });
    await authed.register(alertsRoutes, { deps });
    await authed.register(statsRoutes, { deps });
  });
};
