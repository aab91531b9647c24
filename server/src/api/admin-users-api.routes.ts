/**
 * /api/v1/admin/users/...: the user pages' actions (create, disable, reset
 * or change a password, retention policy and its preview, alert email and
 * webhook, sessions, tokens, download links, delete), with the dashboard's
 * permissions: administrators act on anyone; a user on their own page only
 * (403 for another user), and only the user themselves changes their own
 * password or makes their own tokens. The same services and form parsers as
 * users.routes.ts; registered inside adminApiRoutes, so the token hook applies.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AppContext } from '../app-context.ts';
import { previewUserRules, type PreviewView } from '../dashboard/prune-preview.ts';
import { parseNewUser, parsePolicy } from '../dashboard/users.routes.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { parseAlertEmailSetting, parseAlertWebhookSetting, setUserAlertEmail, setUserAlertWebhook } from '../services/alert-recipients.service.ts';
import { createApiToken, listApiTokens, parseApiTokenForm, revokeApiToken } from '../services/api-tokens.service.ts';
import { listLiveDownloadLinks, revokeAllCredentials, revokeDownloadLink } from '../services/download-links.service.ts';
import { recordAudit } from '../services/audit-log.service.ts';
import { listUserSessions, revokeSession } from '../services/sessions.service.ts';
import { changeOwnPassword, createUser, deleteUser, resetUserPassword, setUserDisabled, setUserRetention, WrongPasswordError } from '../services/users.service.ts';
import {
  actorOf,
  ERRORS,
  existingUser,
  fieldErrors,
  iso,
  parseApiRetentionRules,
  requireAdminToken,
  requireSelfOrAdminToken,
  requireSelfToken,
  TAGS,
  TOKEN_AUTH,
  userJson,
} from './admin-api-context.ts';
import {
  AdminError,
  AdminUser,
  AlertEmailSetting,
  AlertRecipientSettings,
  AlertWebhookSetting,
  ApiTokenList,
  CreatedApiToken,
  CredentialsRevoked,
  DeleteUserQuery,
  DownloadLinkList,
  NewApiToken,
  NewUser,
  Ok,
  PasswordChange,
  PasswordReset,
  PrunePreview,
  SessionList,
  UserDeleted,
  UserIdParams,
  UserLinkParams,
  UserPolicy,
  UserSessionParams,
  UserStatus,
  UserTokenParams,
} from './admin-api.schemas.ts';
import type { Static } from 'typebox';

/** The simulator's view as JSON (times as ISO strings). */
export function previewJson(view: PreviewView): Static<typeof PrunePreview> {
  return {
    rules: view.heading,
    pruneCount: view.count,
    pruneBytes: view.bytes,
    bytesComplete: view.bytesComplete,
    pruned: view.shown,
    keptCount: view.keptCount,
    kept: view.kept,
    restorePoints: view.restorePoints.map((p) => ({ ...p, finishedAt: p.finishedAt.toISOString() })),
    overridden: view.overridden,
    held: view.held,
  };
}

export const adminUsersApiRoutes: FastifyPluginAsyncTypebox<{ ctx: AppContext; now: () => Date }> = async (app, { ctx, now }) => {
  const db = ctx.database.db;
  const schema = <T extends object>(summary: string, extra: T) => ({ tags: TAGS, summary, security: TOKEN_AUTH, ...extra });

  app.post('/users', { schema: schema('Create a user (administrators only); 409 when the username is taken', { body: NewUser, response: { 201: AdminUser, ...ERRORS, 409: AdminError } }) }, async (request, reply) => {
    requireAdminToken(request, 'create users');
    const { username, password, isAdmin = false } = request.body;
    const defaults = ctx.config.retention;
    const versions = request.body.retentionVersions ?? defaults.defaultVersions;
    const days = request.body.retentionDays === undefined ? (defaults.defaultDays ?? null) : request.body.retentionDays;
    const { input, errors } = parseNewUser({ username: username.trim(), password, isAdmin, retentionVersions: String(versions), retentionDays: days === null ? '' : String(days) });
    if (!input) throw fieldErrors(errors);
    const created = await createUser(ctx, input, actorOf(request));
    return reply.code(201).send(userJson(created));
  });

  app.put(
    '/users/:id/status',
    { schema: schema('Disable or enable a user (administrators only): disabling ends their sessions and stops their tokens and links', { params: UserIdParams, body: UserStatus, response: { 200: AdminUser, ...ERRORS } }) },
    async (request) => {
      const admin = requireAdminToken(request, 'disable or enable users');
      const target = await existingUser(db, request.params.id);
      if (request.body.disabled && target.id === admin.id) throw fieldErrors({ disabled: 'you cannot disable your own account' });
      await setUserDisabled(ctx, target.id, request.body.disabled, actorOf(request));
      return userJson(await existingUser(db, target.id));
    },
  );

  app.put(
    '/users/:id/password',
    { schema: schema("Reset a user's password (administrators only); ends all their sessions", { params: UserIdParams, body: PasswordReset, response: { 200: Ok, ...ERRORS } }) },
    async (request) => {
      requireAdminToken(request, 'reset passwords');
      const target = await existingUser(db, request.params.id);
      try {
        await resetUserPassword(ctx, target.id, request.body.password, actorOf(request));
      } catch (error) {
        if (error instanceof BadRequestError) throw fieldErrors({ password: error.message });
        throw error;
      }
      return { ok: true as const };
    },
  );

  app.post(
    '/users/:id/change-password',
    {
      schema: schema('Change your own password (the current one must match); ends all your sessions, tokens stay', {
        params: UserIdParams,
        body: PasswordChange,
        response: { 200: Ok, ...ERRORS },
      }),
    },
    async (request) => {
      const self = requireSelfToken(request, request.params.id);
      const { currentPassword, newPassword } = request.body;
      if (currentPassword === '') throw fieldErrors({ currentPassword: 'enter your current password' });
      if (newPassword === currentPassword) throw fieldErrors({ newPassword: 'must differ from the current password' });
      try {
        await changeOwnPassword(ctx, self.id, { currentPassword, newPassword, keepSessionId: null });
      } catch (error) {
        if (error instanceof WrongPasswordError) throw fieldErrors({ currentPassword: 'does not match your current password' });
        if (error instanceof BadRequestError) throw fieldErrors({ newPassword: error.message });
        throw error;
      }
      return { ok: true as const };
    },
  );

  /** The policy as the dashboard's parsers read it, or a 400 naming the API's fields. */
  function parseUserPolicy(body: Static<typeof UserPolicy>) {
    const { policy, errors } = parsePolicy({ retentionVersions: String(body.retentionVersions), retentionDays: body.retentionDays === null ? '' : String(body.retentionDays) });
    const rules = parseApiRetentionRules(body.retentionRules);
    if (!policy || !rules.rules) throw fieldErrors({ ...errors, ...rules.errors });
    return { policy, rules: rules.rules };
  }

  app.put(
    '/users/:id/policy',
    { schema: schema("Set a user's retention policy: versions, days, folder rules, restore points (administrators only)", { params: UserIdParams, body: UserPolicy, response: { 200: AdminUser, ...ERRORS } }) },
    async (request) => {
      requireAdminToken(request, 'change retention policies');
      const target = await existingUser(db, request.params.id);
      const { policy, rules } = parseUserPolicy(request.body);
      await setUserRetention(ctx, target.id, { ...policy, rules }, actorOf(request));
      return userJson(await existingUser(db, target.id));
    },
  );

  app.post(
    '/users/:id/policy/preview',
    {
      // A preview saves and prunes nothing.
      config: { readOnlyAllowed: true },
      schema: schema("What this policy as the user's would prune now and what it keeps until when, over the user's clients (administrators only; saves nothing)", {
        params: UserIdParams,
        body: UserPolicy,
        response: { 200: PrunePreview, ...ERRORS },
      }),
    },
    async (request) => {
      requireAdminToken(request, 'preview retention policies');
      const target = await existingUser(db, request.params.id);
      const { policy, rules } = parseUserPolicy(request.body);
      return previewJson(await previewUserRules(ctx, target.id, policy, rules, now()));
    },
  );

  app.get(
    '/users/:id/alert-recipients',
    { schema: schema("The user's alert email and webhook (the webhook secret never: its last 4 characters)", { params: UserIdParams, response: { 200: AlertRecipientSettings, ...ERRORS } }) },
    async (request) => {
      requireSelfOrAdminToken(request, request.params.id);
      const user = await existingUser(db, request.params.id);
      return {
        email: user.alertEmail,
        emailTypes: user.alertEmailTypes,
        webhookUrl: user.alertWebhookUrl,
        webhookSecretHint: user.alertWebhookSecretHint,
        webhookTypes: user.alertWebhookTypes,
      };
    },
  );

  app.put(
    '/users/:id/alert-email',
    { schema: schema('Set where this user gets alert emails about their clients, and which types', { params: UserIdParams, body: AlertEmailSetting, response: { 200: Ok, ...ERRORS } }) },
    async (request) => {
      requireSelfOrAdminToken(request, request.params.id);
      const target = await existingUser(db, request.params.id);
      const { setting, errors } = parseAlertEmailSetting(request.body.email ?? '', request.body.types);
      if (!setting) throw fieldErrors(errors, { alertEmail: 'email', alertEmailTypes: 'types' });
      await setUserAlertEmail(ctx, target.id, setting, actorOf(request));
      return { ok: true as const };
    },
  );

  app.put(
    '/users/:id/alert-webhook',
    { schema: schema("Set this user's signed alert webhook, its secret and types", { params: UserIdParams, body: AlertWebhookSetting, response: { 200: Ok, ...ERRORS } }) },
    async (request) => {
      requireSelfOrAdminToken(request, request.params.id);
      const target = await existingUser(db, request.params.id);
      const { url, secret, types } = request.body;
      const { setting, errors } = parseAlertWebhookSetting(url ?? '', secret ?? '', types, target.alertWebhookSecretHint !== null);
      if (!setting) throw fieldErrors(errors, { alertWebhookUrl: 'url', alertWebhookSecret: 'secret', alertWebhookTypes: 'types' });
      await setUserAlertWebhook(ctx, target.id, setting, actorOf(request));
      return { ok: true as const };
    },
  );

  app.get('/users/:id/sessions', { schema: schema("The user's signed-in browsers", { params: UserIdParams, response: { 200: SessionList, ...ERRORS } }) }, async (request) => {
    requireSelfOrAdminToken(request, request.params.id);
    const target = await existingUser(db, request.params.id);
    const sessions = await listUserSessions(db, target.id, now(), ctx.config.session);
    return { sessions: sessions.map((s) => ({ id: s.id, createdAt: s.createdAt.toISOString(), lastSeenAt: s.lastSeenAt.toISOString(), userAgent: s.userAgent, ip: s.ip })) };
  });

  app.delete(
    '/users/:id/sessions/:sessionId',
    { schema: schema('End one session of the user (signed out at its next request)', { params: UserSessionParams, response: { 200: Ok, ...ERRORS } }) },
    async (request) => {
      const actor = actorOf(request);
      requireSelfOrAdminToken(request, request.params.id);
      const target = await existingUser(db, request.params.id);
      const { sessionId } = request.params;
      if (!(await revokeSession(db, target.id, sessionId))) throw new NotFoundError('no such session');
      await recordAudit(db, { actorUserId: actor.userId, actorName: actor.name, action: 'user.session.revoke', targetType: 'user', targetId: target.id, details: { sessionId } });
      return { ok: true as const };
    },
  );

  app.get('/users/:id/tokens', { schema: schema("The user's personal access tokens, revoked and expired ones too", { params: UserIdParams, response: { 200: ApiTokenList, ...ERRORS } }) }, async (request) => {
    requireSelfOrAdminToken(request, request.params.id);
    const target = await existingUser(db, request.params.id);
    const tokens = await listApiTokens(db, target.id);
    return {
      tokens: tokens.map((t) => ({ ...t, createdAt: t.createdAt.toISOString(), expiresAt: t.expiresAt.toISOString(), lastUsedAt: iso(t.lastUsedAt), revokedAt: iso(t.revokedAt) })),
    };
  });

  app.post(
    '/users/:id/tokens',
    {
      schema: schema('Make a personal access token for yourself (shown once; default 30 days, at most 365)', {
        params: UserIdParams,
        body: NewApiToken,
        response: { 201: CreatedApiToken, ...ERRORS },
      }),
    },
    async (request, reply) => {
      const self = requireSelfToken(request, request.params.id);
      const { name, readOnly, expiresInDays } = request.body;
      const { input, errors } = parseApiTokenForm({ name, access: readOnly ? 'read' : 'full', expiresInDays: expiresInDays === undefined ? '' : String(expiresInDays) });
      if (!input) throw fieldErrors(errors, { access: 'readOnly' });
      const { token, row } = await createApiToken(ctx, self.id, input, actorOf(request), now());
      return reply.code(201).send({ id: row.id, token, name: row.name, readOnly: row.readOnly, expiresAt: row.expiresAt.toISOString() });
    },
  );

  app.delete(
    '/users/:id/tokens/:tokenId',
    { schema: schema('Revoke one token of the user (and so the links it made)', { params: UserTokenParams, response: { 200: Ok, ...ERRORS } }) },
    async (request) => {
      requireSelfOrAdminToken(request, request.params.id);
      const target = await existingUser(db, request.params.id);
      await revokeApiToken(ctx, target.id, request.params.tokenId, actorOf(request), now());
      return { ok: true as const };
    },
  );

  app.post(
    '/users/:id/credentials/revoke-all',
    { schema: schema('Revoke every live token and temporary download link of the user at once (this token too, when it is theirs)', { params: UserIdParams, response: { 200: CredentialsRevoked, ...ERRORS } }) },
    async (request) => {
      requireSelfOrAdminToken(request, request.params.id);
      const target = await existingUser(db, request.params.id);
      return revokeAllCredentials(ctx, target.id, actorOf(request), now());
    },
  );

  app.get(
    '/users/:id/download-links',
    { schema: schema("The user's temporary download links that work now, newest first", { params: UserIdParams, response: { 200: DownloadLinkList, ...ERRORS } }) },
    async (request) => {
      requireSelfOrAdminToken(request, request.params.id);
      const target = await existingUser(db, request.params.id);
      const links = await listLiveDownloadLinks(db, target.id, now());
      return {
        links: links.map((l) => ({
          ...l,
          versionId: l.versionId === null ? null : String(l.versionId),
          asOf: iso(l.asOf),
          createdAt: l.createdAt.toISOString(),
          expiresAt: l.expiresAt.toISOString(),
        })),
      };
    },
  );

  app.delete(
    '/users/:id/download-links/:linkId',
    {
      // Stopping a link only takes access away, like DELETE /me/token.
      config: { readOnlyAllowed: true },
      schema: schema("Revoke one of the user's temporary download links (404 when it is not theirs or no longer works)", { params: UserLinkParams, response: { 200: Ok, ...ERRORS } }),
    },
    async (request) => {
      requireSelfOrAdminToken(request, request.params.id);
      const target = await existingUser(db, request.params.id);
      await revokeDownloadLink(ctx, target.id, request.params.linkId, actorOf(request), now());
      return { ok: true as const };
    },
  );

  app.delete(
    '/users/:id',
    {
      schema: schema('Delete a user with their clients and backups (administrators only; `confirmUsername` must repeat the username)', {
        params: UserIdParams,
        querystring: DeleteUserQuery,
        response: { 200: UserDeleted, ...ERRORS, 409: AdminError },
      }),
    },
    async (request) => {
      const admin = requireAdminToken(request, 'delete users');
      const target = await existingUser(db, request.params.id);
      if (target.id === admin.id) throw new ConflictError('you cannot delete your own account');
      if (request.query.confirmUsername.trim() !== target.username) throw fieldErrors({ confirmUsername: `type ${target.username} to confirm` });
      return deleteUser(ctx, target.id, actorOf(request));
    },
  );
};
