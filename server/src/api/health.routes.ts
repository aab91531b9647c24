import type { FastifyPluginAsync } from 'fastify';
import { sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';

export const healthRoutes: FastifyPluginAsync<{ ctx: AppContext }> = async (app, { ctx }) => {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { hide: true } }, async (request, reply) => {
    const checks: Record<string, string> = {};
    try {
      await ctx.database.db.execute(sql`select 1`);
      checks.database = 'ok';
    } catch (error) {
      request.log.warn({ err: error }, 'readiness: database unreachable');
      checks.database = 'unreachable';
    }
    try {
      await ctx.blobs.check();
      checks.blobStore = 'ok';
    } catch (error) {
      request.log.warn({ err: error }, 'readiness: blob store unreachable');
      checks.blobStore = 'unreachable';
    }
    const ready = Object.values(checks).every((v) => v === 'ok');
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });
};
