import type { FastifyPluginAsync } from 'fastify';
import { BadRequestError } from '../errors.ts';
import { type DashboardDeps, queryParam, renderPage, requireAdmin } from './dashboard-context.ts';

const FILTERS = ['client', 'user', 'login', 'restore'] as const;

export const auditRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  app.get('/audit', async (request, reply) => {
    requireAdmin(request);
    const requested = queryParam(request, 'action');
    const action = (FILTERS as readonly string[]).includes(requested) ? requested : '';
    if (requested !== action) throw new BadRequestError(`action: one of ${FILTERS.join(', ')}`);
    const entries = await deps.repo.listAudit({ limit: 300, action: action ? action + '.' : undefined });
    return renderPage(request, reply, deps, 'audit', { title: 'Audit log', nav: 'audit', entries, action, filters: FILTERS });
  });
};
