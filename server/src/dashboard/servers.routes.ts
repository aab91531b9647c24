import type { FastifyPluginAsync } from 'fastify';
import { FORGET_AFTER_HOURS, JOB_NAMES, listServers } from '../services/server-registry.service.ts';
import { type DashboardDeps, renderPage, requireAdmin } from './dashboard-context.ts';

/** The server replicas (admins): each one's state, heartbeat age and the jobs it runs now (decision 149). */
export const serversRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  app.get('/servers', async (request, reply) => {
    requireAdmin(request);
    const servers = await listServers(deps.ctx);
    return renderPage(request, reply, deps, 'servers', {
      title: 'Servers',
      nav: 'servers',
      servers,
      cluster: deps.ctx.config.cluster,
      jobNames: Object.values(JOB_NAMES),
      forgetAfterHours: FORGET_AFTER_HOURS,
    });
  });
};
