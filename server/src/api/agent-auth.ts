import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AppContext } from '../app-context.ts';
import { UnauthorizedError } from '../errors.ts';
import { authenticateAgentToken, type AgentIdentity } from '../services/clients.service.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated agent; set by the bearer-token hook of the agent API. */
    agent: AgentIdentity | null;
  }
}

/** OpenAPI security requirement of every authenticated agent route. */
export const BEARER = [{ bearer: [] }];

/**
 * Requires `Authorization: Bearer <token>` on every route of `app`: an
 * absent, unknown or revoked token (or a disabled owner) is a 401.
 */
export function requireAgentToken(app: FastifyInstance, ctx: AppContext): void {
  app.decorateRequest('agent', null);
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new UnauthorizedError('missing bearer token');
    const agent = await authenticateAgentToken(ctx.database.db, match[1]!);
    if (!agent) throw new UnauthorizedError('unknown or revoked token');
    request.agent = agent;
  });
}

/** The authenticated agent of a request that passed `requireAgentToken`. */
export function agentOf(request: FastifyRequest): AgentIdentity {
  if (!request.agent) throw new UnauthorizedError();
  return request.agent;
}
