import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { AppContext } from '../app-context.ts';
import { UnauthorizedError } from '../errors.ts';
import { replicaStatus } from '../storage/replication-job.ts';
import { readFleetSnapshot, renderFleetMetrics } from './fleet-metrics.ts';
import { observeHttpRequest, processRegistry, UNMATCHED_ROUTE } from './process-metrics.ts';

/**
 * Times every request of the app, labelled by the route's pattern. Added on
 * the root instance so it sees the routes of every plugin.
 */
export function addRequestMetricsHook(app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    observeHttpRequest(request.method, request.routeOptions.url ?? UNMATCHED_ROUTE, reply.statusCode, reply.elapsedTime / 1000);
  });
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * `GET /metrics` in Prometheus text format, for a scraper holding
 * METRICS_TOKEN (decision 66). The answer names every client of every user,
 * so it is the operator's, like an admin session. Registered only when the
 * token is configured: without one the path is unknown (404).
 */
export const metricsRoutes: FastifyPluginAsync<{ ctx: AppContext; token: string }> = async (app, { ctx, token }) => {
  const expected = digest(`Bearer ${token}`);

  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    // Compared as digests: equal lengths for timingSafeEqual, and the time taken says nothing about the token.
    const given = digest(request.headers.authorization ?? '');
    if (!timingSafeEqual(given, expected)) {
      reply.header('www-authenticate', 'Bearer realm="metrics"');
      throw new UnauthorizedError('a valid metrics token is required (Authorization: Bearer <METRICS_TOKEN>)');
    }
    const now = new Date();
    const snapshot = await readFleetSnapshot(ctx.database.db, now);
    if (ctx.replica) snapshot.replica = await replicaStatus(ctx, now);
    const fleet = await renderFleetMetrics(snapshot);
    const own = await processRegistry.metrics();
    return reply.type(processRegistry.contentType).send(`${fleet}\n${own}`);
  });
};
