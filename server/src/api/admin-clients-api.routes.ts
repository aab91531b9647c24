/**
 * /api/v1/admin: the client page's remaining actions (make a client, its
 * agent token, owner, alert settings, the prune simulator), enrollment keys
 * and the server-wide settings pages (alert defaults, test notification).
 * The dashboard's permissions and form parsers, the same services; the token
 * hook of adminApiRoutes applies (registered inside it).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from 'typebox';
import {
  alertSettingsFormValues,
  type AlertSettingsInput,
  DETECTOR_LABELS,
  formatWatchedFolders,
  loadAlertDefaults,
  loadAlertDefaultsOverride,
  mergeAlertSettings,
  parseAlertSettingsForm,
  saveAlertDefaults,
  saveClientAlertSettings,
  THRESHOLD_FIELDS,
  WATCHED_FOLDERS_FIELD,
} from '../alerts/alert-settings.ts';
import { DEFAULT_ALERT_SETTINGS, type AlertSettings, type WatchedFolder } from '../alerts/detectors.ts';
import { sendTestNotification } from '../alerts/notifiers/test-notification.ts';
import type { AppContext } from '../app-context.ts';
import { parseRetentionOverride, type FieldErrors } from '../dashboard/client-config-form.ts';
import { createDashboardRepository } from '../dashboard/dashboard.repository.ts';
import { parseEnrollmentKeyForm } from '../dashboard/enrollment-keys.routes.ts';
import { previewClientRules } from '../dashboard/prune-preview.ts';
import { BadRequestError, ConflictError } from '../errors.ts';
import { createClient, findClient, moveClient, revokeClientToken, rotateClientToken } from '../services/clients.service.ts';
import { assertEnrollmentKeySettings, createEnrollmentKey, enrollmentKeyState, listEnrollmentKeys, revokeEnrollmentKey } from '../services/enrollment-keys.service.ts';
import { findUser } from '../services/users.service.ts';
import { actorOf, clientJson, ERRORS, fieldErrors, iso, parseApiRetentionRules, requireAdminToken, TAGS, TOKEN_AUTH, viewerOf, visibleClient } from './admin-api-context.ts';
import { previewJson } from './admin-users-api.routes.ts';
import {
  AdminClient,
  AdminError,
  AlertSettingsAnswer,
  AlertSettingsChange,
  ClientOwner,
  ClientRetentionPreview,
  ClientWithToken,
  CreatedEnrollmentKey,
  EnrollmentKeyList,
  IdParams,
  NewClient,
  NewEnrollmentKey,
  NotificationTestResult,
  Ok,
  PrunePreview,
} from './admin-api.schemas.ts';

type AlertValues = Static<typeof AlertSettingsAnswer>['settings'];
type AlertChange = Static<typeof AlertSettingsChange>;
const DETECTORS = Object.keys(DETECTOR_LABELS) as (keyof AlertSettings)[];

/** The settings the form shows, per detector. */
function alertSettingsJson(settings: AlertSettings): AlertValues {
  const values: Record<string, Record<string, unknown>> = Object.fromEntries(DETECTORS.map((d) => [d, { enabled: settings[d].enabled }]));
  for (const f of THRESHOLD_FIELDS) values[f.detector]![f.setting] = (settings[f.detector] as unknown as Record<string, number>)[f.setting];
  values.expectedFile!.folders = settings.expectedFile.folders;
  return values as AlertValues;
}

/** The API's change as the dashboard form would send it, over the values in force. */
function alertChangeAsInput(current: AlertSettings, change: AlertChange): AlertSettingsInput {
  const input = alertSettingsFormValues(current);
  const sent = change as Record<string, Record<string, unknown> | undefined>;
  for (const d of DETECTORS) {
    const enabled = sent[d]?.enabled;
    if (enabled !== undefined) input[`${d}.enabled`] = enabled ? 'on' : '';
  }
  for (const f of THRESHOLD_FIELDS) {
    const value = sent[f.detector]?.[f.setting];
    if (value !== undefined) input[f.name] = String(value);
  }
  const folders = (change as { expectedFile?: { folders?: WatchedFolder[] } }).expectedFile?.folders;
  if (folders !== undefined) input[WATCHED_FOLDERS_FIELD] = formatWatchedFolders(folders);
  return input;
}

/** The override to store for `change` over `layerBelow` (null: none), or a 400 naming the fields (`missedBackup.tolerance`). */
function parseAlertChange(change: AlertChange, inForce: AlertSettings, layerBelow: AlertSettings) {
  if (change.reset === true) {
    if (Object.keys(change).length > 1) throw fieldErrors({ reset: 'send reset alone' });
    return null;
  }
  const result = parseAlertSettingsForm(alertChangeAsInput(inForce, change), layerBelow);
  if (!result.ok) throw fieldErrors(result.errors);
  return result.override;
}

export const adminClientsApiRoutes: FastifyPluginAsyncTypebox<{ ctx: AppContext; now: () => Date }> = async (app, { ctx, now }) => {
  const db = ctx.database.db;
  const repo = createDashboardRepository(db);
  const schema = <T extends object>(summary: string, extra: T) => ({ tags: TAGS, summary, security: TOKEN_AUTH, ...extra });
  const clientAnswer = async (id: string): Promise<AdminClient> => clientJson((await findClient(db, id))!);

  app.post(
    '/clients',
    {
      schema: schema("Make a client by hand (an admin's for any owner); answers its agent token, shown once. 409 when the owner has a client of that name", {
        body: NewClient,
        response: { 201: ClientWithToken, ...ERRORS, 409: AdminError },
      }),
    },
    async (request, reply) => {
      const user = viewerOf(request);
      const ownerId = user.isAdmin ? (request.body.ownerId ?? user.id) : user.id;
      const name = request.body.name.trim();
      const errors: FieldErrors = {};
      if (name === '') errors.name = 'a name of 1 to 200 characters';
      if (!(await findUser(db, ownerId))) errors.ownerId = 'choose an existing user';
      if (Object.keys(errors).length > 0) throw fieldErrors(errors);
      const { clientId, token } = await createClient(ctx, ownerId, { name, hostname: (request.body.hostname ?? '').trim() }, actorOf(request));
      return reply.code(201).send({ client: await clientAnswer(clientId), token });
    },
  );

  app.post(
    '/clients/:id/token/rotate',
    { schema: schema("Issue the client a new agent token (shown once); the old one stops at once", { params: IdParams, response: { 200: ClientWithToken, ...ERRORS } }) },
    async (request) => {
      const client = await visibleClient(db, request, request.params.id);
      const { token } = await rotateClientToken(ctx, client.id, actorOf(request));
      return { client: await clientAnswer(client.id), token };
    },
  );

  app.delete(
    '/clients/:id/token',
    { schema: schema("Revoke the client's agent token: the agent is refused until it gets a new one", { params: IdParams, response: { 200: AdminClient, ...ERRORS } }) },
    async (request) => {
      const client = await visibleClient(db, request, request.params.id);
      await revokeClientToken(ctx, client.id, actorOf(request));
      return clientAnswer(client.id);
    },
  );

  app.put(
    '/clients/:id/owner',
    {
      schema: schema('Move the client to another owner (administrators only); 409 when that owner has a client of that name', {
        params: IdParams,
        body: ClientOwner,
        response: { 200: AdminClient, ...ERRORS, 409: AdminError },
      }),
    },
    async (request) => {
      requireAdminToken(request, 'move clients');
      const client = await visibleClient(db, request, request.params.id);
      if (!(await findUser(db, request.body.ownerId))) throw fieldErrors({ ownerId: 'choose an existing user' });
      await moveClient(ctx, client.id, request.body.ownerId, actorOf(request));
      return clientAnswer(client.id);
    },
  );

  app.post(
    '/clients/:id/prune-preview',
    {
      // A preview saves and prunes nothing.
      config: { readOnlyAllowed: true },
      schema: schema('The prune simulator: what this retention override (nulls: the owner’s) would prune now and what it keeps until when; saves nothing', {
        params: IdParams,
        body: ClientRetentionPreview,
        response: { 200: PrunePreview, ...ERRORS },
      }),
    },
    async (request) => {
      const client = await visibleClient(db, request, request.params.id);
      const { retention, retentionRules } = request.body;
      const errors: FieldErrors = {};
      const base = parseRetentionOverride(
        {
          retentionOverride: retention === null ? '' : 'on',
          retentionVersions: retention === null ? '' : String(retention.versions),
          retentionDays: retention === null || retention.days === null ? '' : String(retention.days),
        },
        errors,
      );
      const rules = retentionRules === null ? { rules: null, errors: {} } : parseApiRetentionRules(retentionRules);
      if (Object.keys(errors).length > 0 || Object.keys(rules.errors).length > 0) {
        throw fieldErrors({ ...errors, ...rules.errors }, { retentionVersions: 'retention.versions', retentionDays: 'retention.days' });
      }
      return previewJson(await previewClientRules(ctx, client, base, rules.rules, now()));
    },
  );

  app.get(
    '/clients/:id/alert-settings',
    { schema: schema("The client's alert settings in force (the server's defaults with its own changes)", { params: IdParams, response: { 200: AlertSettingsAnswer, ...ERRORS } }) },
    async (request) => {
      const client = await repo.getClient(viewerOf(request), request.params.id);
      return { settings: alertSettingsJson(mergeAlertSettings(await loadAlertDefaults(db), client.alertSettings)), overridden: client.alertSettings !== null };
    },
  );

  app.put(
    '/clients/:id/alert-settings',
    {
      schema: schema("Change the client's alert settings (only the values sent; `{\"reset\": true}`: back to the server's defaults); the form's limits", {
        params: IdParams,
        body: AlertSettingsChange,
        response: { 200: AlertSettingsAnswer, ...ERRORS },
      }),
    },
    async (request) => {
      const client = await repo.getClient(viewerOf(request), request.params.id);
      const defaults = await loadAlertDefaults(db);
      const override = parseAlertChange(request.body, mergeAlertSettings(defaults, client.alertSettings), defaults);
      await saveClientAlertSettings(ctx, client.id, override, actorOf(request));
      return { settings: alertSettingsJson(mergeAlertSettings(defaults, override)), overridden: override !== null };
    },
  );

  app.get(
    '/settings/alerts',
    { schema: schema('The server-wide alert defaults every client starts from (administrators only)', { response: { 200: AlertSettingsAnswer, ...ERRORS } }) },
    async (request) => {
      requireAdminToken(request, 'read the alert defaults');
      const override = await loadAlertDefaultsOverride(db);
      return { settings: alertSettingsJson(mergeAlertSettings(DEFAULT_ALERT_SETTINGS, override)), overridden: override !== null };
    },
  );

  app.put(
    '/settings/alerts',
    {
      schema: schema('Change the server-wide alert defaults (administrators only; only the values sent; `{"reset": true}`: the built-in ones)', {
        body: AlertSettingsChange,
        response: { 200: AlertSettingsAnswer, ...ERRORS },
      }),
    },
    async (request) => {
      requireAdminToken(request, 'change the alert defaults');
      const inForce = mergeAlertSettings(DEFAULT_ALERT_SETTINGS, await loadAlertDefaultsOverride(db));
      const override = parseAlertChange(request.body, inForce, DEFAULT_ALERT_SETTINGS);
      await saveAlertDefaults(ctx, override, actorOf(request));
      return { settings: alertSettingsJson(mergeAlertSettings(DEFAULT_ALERT_SETTINGS, override)), overridden: override !== null };
    },
  );

  app.post(
    '/settings/notifications/test',
    {
      schema: schema('Send one made-up alert through every configured channel (administrators only); 409 when none is configured, 502 when one failed', {
        response: { 200: NotificationTestResult, 502: NotificationTestResult, ...ERRORS, 409: AdminError },
      }),
    },
    async (request, reply) => {
      requireAdminToken(request, 'send test notifications');
      const { email, webhook } = ctx.config.notifications;
      if (!email && !webhook) throw new ConflictError('no notification channel is configured: set SMTP_URL or ALERT_WEBHOOK_URL');
      const outcomes = await sendTestNotification(ctx, actorOf(request), now());
      return reply.code(outcomes.every((o) => o.ok) ? 200 : 502).send({ outcomes });
    },
  );

  app.get(
    '/enrollment-keys',
    { schema: schema("Enrollment keys: the user's own (an admin's: all), with their state", { response: { 200: EnrollmentKeyList, ...ERRORS } }) },
    async (request) => {
      const user = viewerOf(request);
      const keys = await listEnrollmentKeys(db, user.isAdmin ? {} : { ownerId: user.id });
      return {
        keys: keys.map((k) => ({
          ...k,
          expiresAt: iso(k.expiresAt),
          lastUsedAt: iso(k.lastUsedAt),
          revokedAt: iso(k.revokedAt),
          createdAt: k.createdAt.toISOString(),
          state: enrollmentKeyState(k, now()),
        })),
      };
    },
  );

  app.post(
    '/enrollment-keys',
    {
      schema: schema('Make an enrollment key for agents to register with (shown once; an admin may make one for another owner)', {
        body: NewEnrollmentKey,
        response: { 201: CreatedEnrollmentKey, ...ERRORS },
      }),
    },
    async (request, reply) => {
      const user = viewerOf(request);
      const { description = '', singleUse, expiresInSeconds = 7 * 86_400, namePrefix = null, ownerId: wantedOwner } = request.body;
      const ownerId = user.isAdmin ? (wantedOwner ?? user.id) : user.id;
      const at = now();
      const parsed = parseEnrollmentKeyForm(
        { description, uses: singleUse ? 'single' : 'multi', expiresIn: expiresInSeconds === null ? '' : `${expiresInSeconds}s`, namePrefix: namePrefix ?? '', ownerId },
        at,
      );
      if (!(await findUser(db, ownerId))) parsed.errors.ownerId = 'choose an existing user';
      const rename = { expiresIn: 'expiresInSeconds', uses: 'singleUse' };
      if (!parsed.settings || Object.keys(parsed.errors).length > 0) throw fieldErrors(parsed.errors, rename);
      try {
        assertEnrollmentKeySettings(parsed.settings, at);
      } catch (error) {
        if (error instanceof BadRequestError) throw fieldErrors({ expiresInSeconds: error.message });
        throw error;
      }
      return reply.code(201).send(await createEnrollmentKey(ctx, parsed.settings, actorOf(request)));
    },
  );

  app.delete(
    '/enrollment-keys/:id',
    { schema: schema('Revoke an enrollment key (clients it registered keep working); another user’s is 404', { params: IdParams, response: { 200: Ok, ...ERRORS } }) },
    async (request) => {
      const user = viewerOf(request);
      await revokeEnrollmentKey(ctx, request.params.id, actorOf(request), user.isAdmin ? {} : { ownerId: user.id });
      return { ok: true as const };
    },
  );
};
