import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { recordAudit } from '../services/audit-log.service.ts';
import { verifyUserCredentials } from '../services/users.service.ts';
import { type DashboardDeps, field, isSecureRequest, queryParam, redirectAfterPost, renderPage } from './dashboard-context.ts';
import { createSession, deleteSessionByToken, lookupSession, type SessionLookup } from '../services/sessions.service.ts';
import { SESSION_COOKIE } from './session.ts';

/** Per IP, counted by @fastify/rate-limit on each replica. */
export const LOGIN_IP_LIMIT = { max: 20, timeWindow: 15 * 60_000 };
/** Per account, counted from audit_log rows, so it holds across replicas. */
export const LOGIN_ACCOUNT_LIMIT = { maxFailures: 5, windowMs: 15 * 60_000 };

const INVALID_LOGIN = 'Invalid username or password.';
export const TOO_MANY_LOGINS = 'Too many sign-in attempts. Wait a few minutes and try again.';

function setSessionCookie(request: FastifyRequest, reply: FastifyReply, token: string, maxHours: number) {
  reply.setCookie(SESSION_COOKIE, token, {
    path: '/',
    httpOnly: true,
    sameSite: 'lax',
    secure: isSecureRequest(request),
    maxAge: maxHours * 3600,
  });
}

function clearSession(reply: FastifyReply) {
  reply.clearCookie(SESSION_COOKIE, { path: '/' });
}

/** Only same-site paths, never `//host` or a scheme, as the place to go after login. */
function safeNext(next: string): string {
  return next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/';
}

/** The session row behind the request's cookie, and its enabled user, or why there is none. */
async function readSession(request: FastifyRequest, deps: DashboardDeps, now: Date) {
  const raw = request.cookies[SESSION_COOKIE];
  if (!raw) return { raw, found: { state: 'none' } as SessionLookup };
  return { raw, found: await lookupSession(deps.ctx.database.db, raw, now, deps.ctx.config.session) };
}

/**
 * Accepts a live session of an enabled user (its last-seen time slides
 * forward in the table). Anything else clears the cookie and sends the
 * browser to the login page.
 */
export function sessionHook(deps: DashboardDeps) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const { raw, found } = await readSession(request, deps, deps.now());
    if (found.state !== 'valid') {
      if (raw) clearSession(reply);
      const next = request.method === 'GET' ? request.url : '/';
      return reply.redirect(`/login?${new URLSearchParams({ next, ...(found.state === 'expired' ? { notice: 'expired' } : {}) })}`, 303);
    }
    request.dashboardUser = found.user;
    request.dashboardSessionId = found.session.id;
  };
}

export const authRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const { repo } = deps;
  const db = deps.ctx.database.db;

  app.get('/login', async (request, reply) => {
    const next = safeNext(queryParam(request, 'next'));
    if ((await readSession(request, deps, deps.now())).found.state === 'valid') return reply.redirect(next, 303);
    return renderPage(request, reply, deps, 'login', { error: null, username: '', next });
  });

  app.post(
    '/login',
    {
      config: { rateLimit: { max: LOGIN_IP_LIMIT.max, timeWindow: LOGIN_IP_LIMIT.timeWindow, keyGenerator: (r: FastifyRequest) => r.ip } },
      preHandler: app.csrfProtection,
    },
    async (request, reply) => {
      const username = field(request.body, 'username').trim();
      const password = field(request.body, 'password');
      const next = safeNext(field(request.body, 'next'));
      const again = (error: string, status: number) => renderPage(request, reply, deps, 'login', { error, username, next }, status);
      if (username === '' || password === '') return again('Enter your username and password.', 400);

      const failures = await repo.recentLoginFailures(username, new Date(deps.now().getTime() - LOGIN_ACCOUNT_LIMIT.windowMs));
      if (failures >= LOGIN_ACCOUNT_LIMIT.maxFailures) return again(TOO_MANY_LOGINS, 429);

      // Unknown user, wrong password and disabled user: the same work, the same answer.
      const user = await verifyUserCredentials(db, username, password);
      if (!user) {
        await recordAudit(db, { actorUserId: null, actorName: 'anonymous', action: 'login.failed', targetType: 'user', targetId: username, details: { ip: request.ip } });
        return again(INVALID_LOGIN, 401);
      }

      await recordAudit(db, { actorUserId: user.id, actorName: user.username, action: 'login.succeeded', targetType: 'user', targetId: username, details: { ip: request.ip } });
      reply.clearCookie('cairn_csrf', { path: '/' });
      const { token } = await createSession(db, user.id, {
        userAgent: request.headers['user-agent'] ?? '',
        ip: request.ip,
        now: deps.now(),
        limits: deps.ctx.config.session,
      });
      setSessionCookie(request, reply, token, deps.ctx.config.session.maxHours);
      return redirectAfterPost(reply, next);
    },
  );

  app.post('/logout', { preHandler: app.csrfProtection }, async (request, reply) => {
    // The row goes, so a copy of the cookie stops working too.
    const raw = request.cookies[SESSION_COOKIE];
    if (raw) await deleteSessionByToken(db, raw);
    clearSession(reply);
    reply.clearCookie('cairn_csrf', { path: '/' });
    return redirectAfterPost(reply, '/login?notice=logged-out');
  });
};
