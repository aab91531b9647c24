import type { FastifyPluginAsync } from 'fastify';
import { formatDuration } from '@cairn/shared';
import { replicaStatus } from '../storage/replication-job.ts';
import { listDamage, listVerifyRuns, startVerifyRun } from '../storage/verify-job.ts';
import { type DashboardDeps, redirectAfterPost, renderPage, requireAdmin } from './dashboard-context.ts';

/** REPLICA_DELETE_GRACE_SECONDS for people: "7 days later", "12h 00m later", "at the next pass". */
function graceText(seconds: number): string {
  if (seconds === 0) return 'at the next pass';
  if (seconds % 86_400 === 0) return `${seconds / 86_400} day${seconds === 86_400 ? '' : 's'} later`;
  return `${formatDuration(seconds * 1000)} later`;
}

/** The verify job's page (admins): its runs, what is damaged now and what that affects, and "Verify now" (decision 132). */
export const verifyRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  app.get('/verify', async (request, reply) => {
    requireAdmin(request);
    const [runs, damaged, replica] = await Promise.all([listVerifyRuns(deps.ctx), listDamage(deps.ctx), replicaStatus(deps.ctx, deps.now())]);
    const config = deps.ctx.config.verify;
    return renderPage(request, reply, deps, 'verify', {
      title: 'Verify',
      nav: 'verify',
      runs,
      damaged,
      config,
      replica,
      replicaLagAlertSeconds: deps.ctx.config.alerts.replicaLagSeconds,
      replicaDeleteGrace: graceText(deps.ctx.config.replica?.deleteGraceSeconds ?? 0),
    });
  });

  app.post('/verify', async (request, reply) => {
    requireAdmin(request);
    const started = await startVerifyRun(deps.ctx);
    return redirectAfterPost(reply, `/verify?notice=${started ? 'verify-started' : 'verify-running'}`);
  });
};
