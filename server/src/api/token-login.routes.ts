/**
 * POST /api/v1/auth/token (issue 14): username and password in, a new
 * personal access token out, for `cairn login`. The same checks as the
 * dashboard's sign-in: per-IP rate limit, per-account failure limit counted
 * from the audit log, one answer for unknown user, wrong password and
 * disabled user. The token is the user's own, made by them (decision 107),
 * and audited like one made on their page.
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { IsoTime, isStorableText } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { LOGIN_ACCOUNT_LIMIT, LOGIN_IP_LIMIT } from '../dashboard/auth.routes.ts';
import { createDashboardRepository } from '../dashboard/dashboard.repository.ts';
import { AppError, BadRequestError, UnauthorizedError } from '../errors.ts';
import { API_TOKEN_DEFAULT_DAYS, API_TOKEN_MAX_DAYS, createApiToken } from '../services/api-tokens.service.ts';
import { recordAudit } from '../services/audit-log.service.ts';
import { verifyUserCredentials } from '../services/users.service.ts';
import { AdminError } from './admin-api.schemas.ts';

class TooManyRequestsError extends AppError {
  constructor(message: string) {
    super(429, message);
  }
}

const TokenLogin = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 200 }),
    password: Type.String({ minLength: 1, maxLength: 1000 }),
    /** The token's name on the user's page; default "cairn CLI". */
    tokenName: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    readOnly: Type.Optional(Type.Boolean()),
    expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: API_TOKEN_MAX_DAYS })),
  },
  { additionalProperties: false },
);

const TokenIssued = Type.Object({
  token: Type.String(),
  tokenId: Type.String(),
  name: Type.String(),
  readOnly: Type.Boolean(),
  expiresAt: IsoTime,
  user: Type.Object({ id: Type.String(), username: Type.String(), isAdmin: Type.Boolean() }),
});

export const tokenLoginRoutes: FastifyPluginAsyncTypebox<{ ctx: AppContext; now?: () => Date }> = async (app, { ctx, now: clock }) => {
  const now = clock ?? (() => new Date());
  const db = ctx.database.db;
  const repo = createDashboardRepository(db);
  await app.register(rateLimit, { global: false });

  app.post(
    '/token',
    {
      config: { rateLimit: { max: LOGIN_IP_LIMIT.max, timeWindow: LOGIN_IP_LIMIT.timeWindow } },
      schema: {
        tags: ['auth'],
        summary: 'Sign in with a password and get a new personal access token (what `cairn login` does); shown once',
        body: TokenLogin,
        response: { 201: TokenIssued, 400: AdminError, 401: AdminError, 429: AdminError },
      },
    },
    async (request, reply) => {
      const { username, password } = request.body;
      const name = (request.body.tokenName ?? 'cairn CLI').trim();
      if (name === '' || !isStorableText(name)) throw new BadRequestError('tokenName: a name of 1 to 100 characters', { fields: { tokenName: 'a name of 1 to 100 characters' } });
      const failures = await repo.recentLoginFailures(username.trim(), new Date(now().getTime() - LOGIN_ACCOUNT_LIMIT.windowMs));
      if (failures >= LOGIN_ACCOUNT_LIMIT.maxFailures) throw new TooManyRequestsError('too many sign-in attempts; wait a few minutes and try again');
      const user = await verifyUserCredentials(db, username, password);
      if (!user) {
        await recordAudit(db, { actorUserId: null, actorName: 'anonymous', action: 'login.failed', targetType: 'user', targetId: username.trim(), details: { ip: request.ip, via: 'api' } });
        throw new UnauthorizedError('invalid username or password');
      }
      await recordAudit(db, { actorUserId: user.id, actorName: user.username, action: 'login.succeeded', targetType: 'user', targetId: user.username, details: { ip: request.ip, via: 'api' } });
      const input = { name, readOnly: request.body.readOnly ?? false, expiresInDays: request.body.expiresInDays ?? API_TOKEN_DEFAULT_DAYS };
      const { token, row } = await createApiToken(ctx, user.id, input, { userId: user.id, name: `${user.username} (cairn login)` }, now());
      return reply.status(201).send({
        token,
        tokenId: row.id,
        name: row.name,
        readOnly: row.readOnly,
        expiresAt: row.expiresAt.toISOString(),
        user: { id: user.id, username: user.username, isAdmin: user.isAdmin },
      });
    },
  );
};
