import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../app-context.ts';

/** Agent API v1 (see shared/src/protocol.ts). */
export const agentApiRoutes: FastifyPluginAsync<{ ctx: AppContext }> = async (_app, _opts) => {
  // Filled in by the server-core work.
};
