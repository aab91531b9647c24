import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  alertSettingsFormValues,
  type AlertSettingsInput,
  alertSettingsInputFrom,
  DETECTOR_LABELS,
  loadAlertDefaults,
  mergeAlertSettings,
  parseAlertSettingsForm,
  saveClientAlertSettings,
  THRESHOLD_FIELDS,
} from '../alerts/alert-settings.ts';
import { isUuid } from '../db/database.ts';
import { BadRequestError, ConflictError } from '../errors.ts';
import { findRun, listRuns } from '../services/backup-repository.ts';
import type { RunStatus } from '@cairn/shared';
import { liveProgressOf } from '../live/live-progress.ts';
import {
  createClient,
  findClient,
  moveClient,
  requestRun,
  revokeClientToken,
  rotateClientToken,
  updateClientSettings,
} from '../services/clients.service.ts';
import { findUser, listUsers } from '../services/users.service.ts';
import { NO_STORED_RULES, type StoredRetentionRules } from '../services/retention-rules.ts';
import { parseRetentionRules, RESTORE_POINT_FIELDS, retentionRulesInput, retentionRulesInputFrom, type RetentionRulesInput } from '../services/retention-rules-form.ts';
import { previewClientRules, type PreviewView } from './prune-preview.ts';
import {
  type ClientConfigInput,
  configFormValues,
  DEFAULT_PRE_COMMAND_TIMEOUT_SECONDS,
  type FieldErrors,
  parseRetentionOverride,
  validateClientConfig,
} from './client-config-form.ts';
import { classifyClientHealth, HEALTH_STATES, scheduleFacts } from './client-health.ts';
import { effectiveConfig } from './client-config-sources.ts';
import { actorOf, type DashboardDeps, field, queryParam, redirectAfterPost, renderPage, requireAdmin, viewer } from './dashboard-context.ts';
import type { LogLevelFilter, Viewer } from './dashboard.repository.ts';
import { clientsWithHealth } from './overview.routes.ts';

/** Offered by the schedule form's time zone field (any IANA name this runtime knows is accepted). */
const TIME_ZONES: readonly string[] = ['UTC', ...Intl.supportedValuesOf('timeZone').filter((zone) => zone !== 'UTC')];
const LOG_LEVELS: LogLevelFilter[] = ['debug', 'info', 'warn', 'error'];
const LOG_PAGE_SIZE = 200;
const RUN_PAGE_SIZE = 50;
const RUN_STATUSES: RunStatus[] = ['succeeded', 'partial', 'failed', 'running'];

/** The client page's retention card (views/_client-retention.eta): the base override, then folder and restore-point rules. */
type RetentionFormInput = { retentionOverride: string; retentionVersions: string; retentionDays: string; rulesOverride: string } & RetentionRulesInput;

interface RetentionCard {
  values: RetentionFormInput;
  errors: FieldErrors;
  preview: PreviewView | null;
}

function retentionFormValues(
  client: { retentionVersions: number | null; retentionDays: number | null; retentionRules: StoredRetentionRules | null },
  ownerRules: StoredRetentionRules,
): RetentionFormInput {
  return {
    retentionOverride: client.retentionVersions === null ? '' : 'on',
    retentionVersions: client.retentionVersions === null ? '' : String(client.retentionVersions),
    retentionDays: client.retentionDays === null ? '' : String(client.retentionDays),
    rulesOverride: client.retentionRules === null ? '' : 'on',
    // Without an override the owner's rules are shown, as the starting point of one.
    ...retentionRulesInput(client.retentionRules ?? ownerRules),
  };
}

export const clientsRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const { repo, ctx } = deps;
  const db = ctx.database.db;

  async function renderClientsList(
    request: FastifyRequest,
    reply: FastifyReply,
    form: { name: string; hostname: string; ownerId: string; errors: FieldErrors },
    status = 200,
  ) {
    const user = viewer(request);
    const requested = queryParam(request, 'health');
    const healthFilter = HEALTH_STATES.find((health) => health === requested) ?? null;
    if (requested !== '' && healthFilter === null) throw new BadRequestError(`health: one of ${HEALTH_STATES.join(', ')}`);
    const all = await clientsWithHealth(repo, user, deps.now());
    const clients = healthFilter ? all.filter((client) => client.health === healthFilter) : all;
    const owners = user.isAdmin ? await listUsers(db) : [];
    return renderPage(request, reply, deps, 'clients', { title: 'Clients', nav: 'clients', clients, owners, form, healthFilter }, status);
  }

  async function renderClientPage(
    request: FastifyRequest,
    reply: FastifyReply,
    user: Viewer,
    clientId: string,
    form: { values: ClientConfigInput; errors: FieldErrors } | null,
    status = 200,
    alertForm: { values: AlertSettingsInput; errors: Record<string, string> } | null = null,
    moveError: string | null = null,
    retentionCard: RetentionCard | null = null,
  ) {
    const client = await repo.getClient(user, clientId);
    const [listed] = await repo.listClientSummaries(user, { clientId: client.id });
    const summary = listed ? { ...listed, ...scheduleFacts(listed, deps.now()) } : undefined;
    const defaults = await loadAlertDefaults(db);
    const owner = await findUser(db, client.ownerId);
    return renderPage(
      request,
      reply,
      deps,
      'client',
      {
        title: client.name,
        nav: 'clients',
        tab: 'settings',
        client,
        summary,
        health: summary ? classifyClientHealth(summary, deps.now()) : 'ok',
        owner,
        retention: retentionCard ?? { values: retentionFormValues(client, owner?.retentionRules ?? NO_STORED_RULES), errors: {}, preview: null },
        restorePointFields: RESTORE_POINT_FIELDS,
        owners: user.isAdmin ? await listUsers(db) : [],
        moveError,
        runs: await listRuns(db, client.id, { limit: 20 }),
        effective: effectiveConfig(client, client.localConfig, client.localConfigAt),
        alerts: await repo.listAlerts(user, { state: 'unresolved', clientId: client.id, limit: 50 }),
        changes: await repo.listAudit({ limit: 10, targetId: client.id }),
        form: form ?? { values: configFormValues(client), errors: {} },
        defaultTimeout: DEFAULT_PRE_COMMAND_TIMEOUT_SECONDS,
        timeZones: TIME_ZONES,
        alertForm: alertForm ?? { values: alertSettingsFormValues(mergeAlertSettings(defaults, client.alertSettings)), errors: {} },
        alertDefaults: alertSettingsFormValues(defaults),
        alertOverridden: client.alertSettings !== null,
        detectorLabels: DETECTOR_LABELS,
        thresholdFields: THRESHOLD_FIELDS,
      },
      status,
    );
  }

  app.get('/clients', async (request, reply) => {
    return renderClientsList(request, reply, { name: '', hostname: '', ownerId: viewer(request).id, errors: {} });
  });

  app.post('/clients', async (request, reply) => {
    const user = viewer(request);
    const name = field(request.body, 'name').trim();
    const hostname = field(request.body, 'hostname').trim();
    const ownerId = user.isAdmin ? field(request.body, 'ownerId') || user.id : user.id;
    const errors: FieldErrors = {};
    if (name === '' || name.length > 200) errors.name = 'a name of 1 to 200 characters';
    if (hostname.length > 255) errors.hostname = 'at most 255 characters';
    if (!(await repo.userExists(ownerId))) errors.ownerId = 'choose an existing user';
    if (Object.keys(errors).length > 0) return renderClientsList(request, reply, { name, hostname, ownerId, errors }, 400);
    try {
      const { clientId, token } = await createClient(ctx, ownerId, { name, hostname }, actorOf(user));
      const client = await repo.getClient(user, clientId);
      return renderPage(request, reply, deps, 'token', { title: 'Client created', nav: 'clients', client, token, created: true });
    } catch (error) {
      if (error instanceof ConflictError) {
        return renderClientsList(request, reply, { name, hostname, ownerId, errors: { name: error.message } }, 409);
      }
      throw error;
    }
  });

  app.get<{ Params: { id: string } }>('/clients/:id', async (request, reply) => {
    return renderClientPage(request, reply, viewer(request), request.params.id, null);
  });

  // Polled by the client page's script while a backup runs (decision 124); any replica answers from the database.
  app.get<{ Params: { id: string } }>('/clients/:id/live.json', async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    reply.header('cache-control', 'no-store');
    return liveProgressOf(ctx.database.db, client.id);
  });

  app.post<{ Params: { id: string } }>('/clients/:id/config', async (request, reply) => {
    const user = viewer(request);
    const client = await repo.getClient(user, request.params.id);
    const input: ClientConfigInput = {
      monitoredPaths: field(request.body, 'monitoredPaths'),
      excludes: field(request.body, 'excludes'),
      preCommands: field(request.body, 'preCommands'),
      backupInterval: field(request.body, 'backupInterval'),
      scheduleKind: field(request.body, 'scheduleKind'),
      cron: field(request.body, 'cron'),
      timeZone: field(request.body, 'timeZone'),
      windowStart: field(request.body, 'windowStart'),
      windowEnd: field(request.body, 'windowEnd'),
    };
    const result = validateClientConfig(input);
    if (!result.ok) return renderClientPage(request, reply, user, client.id, { values: input, errors: result.errors }, 400);
    // Retention has its own card and route (below); this form leaves it as it is.
    const { retentionVersions: _versions, retentionDays: _days, ...settings } = result.values;
    await updateClientSettings(ctx, client.id, settings, actorOf(user));
    return redirectAfterPost(reply, `/clients/${client.id}?notice=saved`);
  });

  // The client's retention override, and its prune simulator (action=preview): nothing is saved or pruned by a preview.
  app.post<{ Params: { id: string } }>('/clients/:id/retention', async (request, reply) => {
    const user = viewer(request);
    const client = await repo.getClient(user, request.params.id);
    const values: RetentionFormInput = {
      retentionOverride: field(request.body, 'retentionOverride'),
      retentionVersions: field(request.body, 'retentionVersions'),
      retentionDays: field(request.body, 'retentionDays'),
      rulesOverride: field(request.body, 'rulesOverride'),
      ...retentionRulesInputFrom((name) => field(request.body, name)),
    };
    const errors: FieldErrors = {};
    const base = parseRetentionOverride(values, errors);
    const parsedRules = values.rulesOverride === 'on' ? parseRetentionRules(values) : { rules: null, errors: {} };
    Object.assign(errors, parsedRules.errors);
    if (Object.keys(errors).length > 0) return renderClientPage(request, reply, user, client.id, null, 400, null, null, { values, errors, preview: null });
    const rulesOverride = values.rulesOverride === 'on' ? parsedRules.rules : null;
    if (field(request.body, 'action') === 'preview') {
      const view = await previewClientRules(ctx, client, base, rulesOverride, deps.now());
      return renderClientPage(request, reply, user, client.id, null, 200, null, null, { values, errors: {}, preview: view });
    }
    await updateClientSettings(
      ctx,
      client.id,
      { retention: { versions: base.retentionVersions, days: base.retentionDays }, retentionRules: rulesOverride },
      actorOf(user),
    );
    return redirectAfterPost(reply, `/clients/${client.id}?notice=retention-saved#retention`);
  });

  app.post<{ Params: { id: string } }>('/clients/:id/alerts', async (request, reply) => {
    const user = viewer(request);
    const client = await repo.getClient(user, request.params.id);
    const input = alertSettingsInputFrom((name) => field(request.body, name));
    // The client stores what differs from the server-wide defaults as they are now.
    const result = field(request.body, 'reset') === 'on' ? { ok: true as const, override: null } : parseAlertSettingsForm(input, await loadAlertDefaults(db));
    if (!result.ok) return renderClientPage(request, reply, user, client.id, null, 400, { values: input, errors: result.errors });
    await saveClientAlertSettings(ctx, client.id, result.override, actorOf(user));
    return redirectAfterPost(reply, `/clients/${client.id}?notice=saved#alert-settings`);
  });

  app.post<{ Params: { id: string } }>('/clients/:id/run', async (request, reply) => {
    const user = viewer(request);
    const client = await repo.getClient(user, request.params.id);
    await requestRun(ctx, client.id, actorOf(user));
    return redirectAfterPost(reply, `/clients/${client.id}?notice=run-requested`);
  });

  app.post<{ Params: { id: string } }>('/clients/:id/token/rotate', async (request, reply) => {
    const user = viewer(request);
    const client = await repo.getClient(user, request.params.id);
    const { token } = await rotateClientToken(ctx, client.id, actorOf(user));
    const updated = await findClient(db, client.id);
    return renderPage(request, reply, deps, 'token', { title: 'New token', nav: 'clients', client: updated ?? client, token, created: false });
  });

  app.post<{ Params: { id: string } }>('/clients/:id/owner', async (request, reply) => {
    const admin = requireAdmin(request);
    const client = await repo.getClient(admin, request.params.id);
    const ownerId = field(request.body, 'ownerId');
    if (!(await repo.userExists(ownerId))) return renderClientPage(request, reply, admin, client.id, null, 400, null, 'ownerId: choose an existing user');
    try {
      await moveClient(ctx, client.id, ownerId, actorOf(admin));
    } catch (error) {
      if (error instanceof ConflictError) return renderClientPage(request, reply, admin, client.id, null, 409, null, error.message);
      throw error;
    }
    return redirectAfterPost(reply, `/clients/${client.id}?notice=client-moved`);
  });

  app.post<{ Params: { id: string } }>('/clients/:id/token/revoke', async (request, reply) => {
    const user = viewer(request);
    const client = await repo.getClient(user, request.params.id);
    await revokeClientToken(ctx, client.id, actorOf(user));
    return redirectAfterPost(reply, `/clients/${client.id}?notice=token-revoked`);
  });

  // The whole run history, a page at a time (keyset: `before` is the last run shown).
  app.get<{ Params: { id: string } }>('/clients/:id/runs', async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    const statusText = queryParam(request, 'status');
    const status = RUN_STATUSES.find((s) => s === statusText);
    if (statusText !== '' && status === undefined) throw new BadRequestError(`status: one of ${RUN_STATUSES.join(', ')}`);
    const before = queryParam(request, 'before');
    if (before !== '' && (!isUuid(before) || (await findRun(db, before))?.clientId !== client.id)) {
      throw new BadRequestError('before: must be the id of a run of this client');
    }
    const page = await listRuns(db, client.id, {
      limit: RUN_PAGE_SIZE + 1,
      ...(before !== '' && { afterRun: before }),
      ...(status !== undefined && { status }),
    });
    const runs = page.slice(0, RUN_PAGE_SIZE);
    return renderPage(request, reply, deps, 'client-runs', {
      title: `${client.name}: runs`,
      nav: 'clients',
      tab: 'runs',
      client,
      runs,
      status: status ?? null,
      statuses: RUN_STATUSES,
      pageSize: RUN_PAGE_SIZE,
      paged: before !== '',
      nextBefore: page.length > RUN_PAGE_SIZE ? runs[runs.length - 1]!.runId : null,
    });
  });

  app.get<{ Params: { id: string } }>('/clients/:id/logs', async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    const requested = queryParam(request, 'level') as LogLevelFilter;
    const level = LOG_LEVELS.includes(requested) ? requested : null;
    if ((requested as string) !== '' && level === null) throw new BadRequestError(`level: one of ${LOG_LEVELS.join(', ')}`);
    const beforeText = queryParam(request, 'before');
    if (beforeText !== '' && !/^[1-9][0-9]{0,14}$/.test(beforeText)) throw new BadRequestError('before: must be a log line id');
    const before = beforeText === '' ? undefined : Number(beforeText);
    const { logs, nextBefore } = await repo.listLogs(client.id, { level, limit: LOG_PAGE_SIZE, before });
    return renderPage(request, reply, deps, 'client-logs', {
      title: `${client.name}: logs`,
      nav: 'clients',
      tab: 'logs',
      client,
      logs,
      level,
      levels: LOG_LEVELS,
      paged: before !== undefined,
      nextBefore,
    });
  });
};
