import type { FastifyPluginAsync } from 'fastify';
import { type DashboardDeps, queryParam, renderPage, requireAdmin } from './dashboard-context.ts';

const FILTERS = ['client', 'user', 'login'] as const;

export const auditRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  app.get('/audit', async (request, reply) => {
    requireAdmin(request);
    const requested = queryParam(request, 'action');
    const action = (FILTERS as readonly string[]).includes(requested) ? requested : '';
    const entries = await deps.repo.listAudit({ limit: 300, action: action ? action + '.' : undefined });
    return renderPage(request, reply, deps, 'audit', { title: 'Audit log', nav: 'audit', entries, action, filters: FILTERS });
  });
};
