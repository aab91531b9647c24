import type { FastifyPluginAsync } from 'fastify';
import { acknowledgeAlert } from '../alerts/alert-engine.ts';
import type { AlertType } from '../alerts/alert-event.ts';
import { BadRequestError, ConflictError } from '../errors.ts';
import { actorOf, type DashboardDeps, field, queryParam, redirectAfterPost, renderPage, viewer } from './dashboard-context.ts';
import { ALERT_TYPE_LABELS, viewHelpers } from './view-helpers.ts';

const STATES = ['unresolved', 'open', 'acknowledged', 'resolved', 'all'] as const;
const TYPES = Object.keys(ALERT_TYPE_LABELS) as AlertType[];
const PAGE_SIZE = 300;
/** Where an acknowledge form may send the browser back to: a dashboard page, never another site. */
const BACK = /^\/(alerts(\?[\w=&%.-]*)?|clients\/[0-9a-f-]{36})?$/i;

export const alertsRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const { repo, ctx } = deps;

  app.get('/alerts', async (request, reply) => {
    const user = viewer(request);
    const stateParam = queryParam(request, 'state') || 'unresolved';
    const state = STATES.find((s) => s === stateParam);
    if (!state) throw new BadRequestError(`state: one of ${STATES.join(', ')}`);
    const typeParam = queryParam(request, 'type');
    const type = TYPES.find((t) => t === typeParam);
    if (typeParam !== '' && !type) throw new BadRequestError(`type: one of ${TYPES.join(', ')}`);
    const clientParam = queryParam(request, 'client');
    const client = clientParam === '' ? null : await repo.getClient(user, clientParam);
    const alerts = await repo.listAlerts(user, {
      state: state === 'all' ? undefined : state,
      type,
      clientId: client?.id,
      limit: PAGE_SIZE,
    });
    const clients = await repo.listClientSummaries(user);
    return renderPage(request, reply, deps, 'alerts', {
      title: 'Alerts',
      nav: 'alerts',
      alerts,
      states: STATES,
      types: TYPES,
      clients,
      filter: { state, type: type ?? '', client: client?.id ?? '' },
      back: `/alerts${viewHelpers(deps.now()).query({ state: state === 'unresolved' ? '' : state, type, client: client?.id })}`,
    });
  });

  app.post<{ Params: { id: string } }>('/alerts/:id/acknowledge', async (request, reply) => {
    const user = viewer(request);
    const alert = await repo.getAlert(user, request.params.id);
    const back = field(request.body, 'back') || '/alerts';
    if (!BACK.test(back)) throw new BadRequestError('back: a dashboard page (/alerts or a client page)');
    if (!(await acknowledgeAlert(ctx.database.db, alert.id, actorOf(user), deps.now()))) {
      throw new ConflictError(`this alert is already ${alert.state === 'open' ? 'acknowledged or resolved' : alert.state}`);
    }
    return redirectAfterPost(reply, `${back}${back.includes('?') ? '&' : '?'}notice=alert-acknowledged`);
  });
};
