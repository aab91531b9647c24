import type { FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../app-context.ts';

/** The admin dashboard (server-rendered, Eta). */
export const dashboardPlugin: FastifyPluginAsync<{ ctx: AppContext }> = async (app, _opts) => {
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.type('text/plain').send('Cairn server'));
};
