import type { FastifyPluginAsync } from 'fastify';
import { buildBytesChart, lastDays } from './bytes-chart.ts';
import { classifyClientHealth, type ClientHealth, HEALTH_STATES, scheduleFacts } from './client-health.ts';
import { type DashboardDeps, renderPage, viewer } from './dashboard-context.ts';
import type { DashboardRepository, Viewer } from './dashboard.repository.ts';

const CHART_DAYS = 30;
const OVERVIEW_ALERTS = 8;

/** Client summaries with their health, shared by the overview and the clients list. */
export async function clientsWithHealth(repo: DashboardRepository, user: Viewer, now: Date) {
  const summaries = await repo.listClientSummaries(user);
  return summaries.map((client) => {
    const withSchedule = { ...client, ...scheduleFacts(client, now) };
    return { ...withSchedule, health: classifyClientHealth(withSchedule, now) };
  });
}

export const overviewRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const { repo } = deps;

  app.get('/', async (request, reply) => {
    const user = viewer(request);
    const now = deps.now();
    const clients = await clientsWithHealth(repo, user, now);
    const byHealth = Object.fromEntries(HEALTH_STATES.map((state) => [state, 0])) as Record<ClientHealth, number>;
    for (const client of clients) byHealth[client.health] += 1;
    const totals = await repo.storageTotals(user);
    const days = lastDays(now, CHART_DAYS);
    const perDay = await repo.bytesPerDay(user, new Date(`${days[0]}T00:00:00Z`));
    const chart = buildBytesChart(days.map((day) => ({ day, uploaded: perDay.get(day)?.uploaded ?? 0, stored: perDay.get(day)?.stored ?? 0 })));
    const runs = await repo.recentRuns(user, 10);
    const alerts = await repo.listAlerts(user, { state: 'unresolved', limit: OVERVIEW_ALERTS + 1 });
    const attention = clients.filter((client) => client.health !== 'ok');
    return renderPage(request, reply, deps, 'overview', {
      title: 'Overview',
      nav: 'overview',
      clients,
      byHealth,
      healthStates: HEALTH_STATES,
      attention,
      totals,
      dedupRatio: totals.storedBytes > 0 ? totals.logicalBytes / totals.storedBytes : null,
      chart,
      runs,
      alerts: alerts.slice(0, OVERVIEW_ALERTS),
      moreAlerts: alerts.length > OVERVIEW_ALERTS,
    });
  });
};
