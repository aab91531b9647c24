import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { TYPE_LABELS } from '../alerts/notifiers/alert-digest.ts';
import { isUuid } from '../db/database.ts';
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError } from '../errors.ts';
import { parseAlertEmailSetting, parseAlertWebhookSetting, setUserAlertEmail, setUserAlertWebhook, USER_ALERT_TYPES } from '../services/alert-recipients.service.ts';
import type { RetentionPolicy } from '../services/retention-policy.ts';
import {
  parseRetentionRules,
  RESTORE_POINT_FIELDS,
  retentionRulesInput,
  retentionRulesInputFrom,
  type RetentionRulesInput,
} from '../services/retention-rules-form.ts';
import { listLiveDownloadLinks, revokeAllCredentials, revokeDownloadLink } from '../services/download-links.service.ts';
import { API_TOKEN_DEFAULT_DAYS, API_TOKEN_MAX_DAYS, createApiToken, listApiTokens, parseApiTokenForm, revokeApiToken } from '../services/api-tokens.service.ts';
import { recordAudit } from '../services/audit-log.service.ts';
import { listUserSessions, revokeSession } from '../services/sessions.service.ts';
import {
  changeOwnPassword,
  createUser,
  deleteUser,
  findUser,
  MIN_PASSWORD_LENGTH,
  resetUserPassword,
  WrongPasswordError,
  setUserDisabled,
  setUserRetention,
  type NewUser,
  type UserSummary,
} from '../services/users.service.ts';
import type { FieldErrors } from './client-config-form.ts';
import { previewUserRules } from './prune-preview.ts';
import { actorOf, type DashboardDeps, field, redirectAfterPost, renderPage, requireAdmin, viewer } from './dashboard-context.ts';
import type { Viewer } from './dashboard.repository.ts';

/** The values of a group of checkboxes: one arrives as a string, several as an array, none as nothing. */
function checkedValues(body: unknown, name: string): string[] {
  const raw = (body as Record<string, unknown> | undefined)?.[name];
  return (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).map(String);
}
const USERNAME = /^[A-Za-z0-9._@-]{1,64}$/;

export interface PolicyInput {
  retentionVersions: string;
  retentionDays: string;
}

/** Validates the policy fields; errors are keyed by field name. */
export function parsePolicy(input: PolicyInput): { policy: RetentionPolicy | null; errors: FieldErrors } {
  const errors: FieldErrors = {};
  const versionsText = input.retentionVersions.trim();
  const daysText = input.retentionDays.trim();
  const versions = /^\d{1,6}$/.test(versionsText) ? Number(versionsText) : NaN;
  if (!(versions >= 1 && versions <= 100_000)) errors.retentionVersions = 'a whole number from 1 to 100000';
  let days: number | null = null;
  if (daysText !== '') {
    days = /^\d{1,5}$/.test(daysText) ? Number(daysText) : NaN;
    if (!(days >= 1 && days <= 36_500)) errors.retentionDays = 'empty (no age limit) or a whole number of days from 1 to 36500';
  }
  return Object.keys(errors).length > 0 ? { policy: null, errors } : { policy: { versions, days }, errors };
}

/** The new-user form's checks (the admin API's too); errors keyed by field name. */
export function parseNewUser(form: PolicyInput & { username: string; password: string; isAdmin: boolean }): { input: NewUser | null; errors: FieldErrors } {
  const { policy, errors } = parsePolicy(form);
  if (!USERNAME.test(form.username)) errors.username = '1 to 64 letters, digits or . _ @ -';
  if (form.password.length < MIN_PASSWORD_LENGTH || form.password.length > 1024) errors.password = `at least ${MIN_PASSWORD_LENGTH} characters`;
  if (!policy || Object.keys(errors).length > 0) return { input: null, errors };
  return { input: { username: form.username, password: form.password, isAdmin: form.isAdmin, retentionVersions: policy.versions, retentionDays: policy.days }, errors };
}

function policyInput(user: UserSummary): PolicyInput & RetentionRulesInput {
  return {
    retentionVersions: String(user.retentionVersions),
    retentionDays: user.retentionDays === null ? '' : String(user.retentionDays),
    ...retentionRulesInput(user.retentionRules),
  };
}

export const usersRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const { repo, ctx } = deps;
  const db = ctx.database.db;

  async function renderUsers(request: FastifyRequest, reply: FastifyReply, form: Record<string, string>, errors: FieldErrors, status = 200) {
    const users = await repo.listUsersWithClientCounts();
    return renderPage(request, reply, deps, 'users', { title: 'Users', nav: 'users', users, form, errors }, status);
  }

  async function loadUser(id: string): Promise<UserSummary> {
    const user = (await repo.userExists(id)) ? await findUser(db, id) : null;
    if (!user) throw new NotFoundError('no such user');
    return user;
  }

  async function renderUser(
    request: FastifyRequest,
    reply: FastifyReply,
    target: UserSummary,
    extra: {
      policyForm?: PolicyInput & RetentionRulesInput;
      policyErrors?: FieldErrors;
      passwordError?: string;
      preview?: unknown;
      error?: string;
      alertEmailForm?: { alertEmail: string; alertEmailTypes: string[] };
      alertEmailErrors?: FieldErrors;
      alertWebhookForm?: { alertWebhookUrl: string; alertWebhookTypes: string[] };
      alertWebhookErrors?: FieldErrors;
      changePasswordErrors?: FieldErrors;
      tokenForm?: { name: string; access: string; expiresInDays: string };
      tokenErrors?: FieldErrors;
      newToken?: { token: string; name: string; readOnly: boolean; expiresAt: Date };
      deleteError?: string;
    },
    status = 200,
  ) {
    const clients = await repo.listClientSummaries(viewer(request), { ownerId: target.id });
    return renderPage(
      request,
      reply,
      deps,
      'user',
      {
        title: target.username,
        nav: 'users',
        target,
        clients,
        policyForm: extra.policyForm ?? policyInput(target),
        policyErrors: extra.policyErrors ?? {},
        restorePointFields: RESTORE_POINT_FIELDS,
        passwordError: extra.passwordError ?? null,
        preview: extra.preview ?? null,
        error: extra.error ?? null,
        // A user sees their own page for their alert email only; the account and retention forms are the admins'.
        canAdminister: viewer(request).isAdmin,
        alertTypes: USER_ALERT_TYPES.map((type) => ({ type, label: TYPE_LABELS[type] })),
        alertEmailForm: extra.alertEmailForm ?? { alertEmail: target.alertEmail ?? '', alertEmailTypes: target.alertEmailTypes },
        alertEmailErrors: extra.alertEmailErrors ?? {},
        // The secret is never sent back: the form only says one is set, by its last 4 characters.
        alertWebhookForm: extra.alertWebhookForm ?? { alertWebhookUrl: target.alertWebhookUrl ?? '', alertWebhookTypes: target.alertWebhookTypes },
        alertWebhookErrors: extra.alertWebhookErrors ?? {},
        alertWebhookSecretHint: target.alertWebhookSecretHint,
        isSelf: viewer(request).id === target.id,
        sessions: await listUserSessions(db, target.id, deps.now(), ctx.config.session),
        currentSessionId: request.dashboardSessionId,
        changePasswordErrors: extra.changePasswordErrors ?? {},
        apiTokens: (await listApiTokens(db, target.id)).map((t) => ({ ...t, expired: t.expiresAt.getTime() <= deps.now().getTime() })),
        tokenForm: extra.tokenForm ?? { name: '', access: 'read', expiresInDays: String(API_TOKEN_DEFAULT_DAYS) },
        tokenErrors: extra.tokenErrors ?? {},
        tokenMaxDays: API_TOKEN_MAX_DAYS,
        downloadLinks: await listLiveDownloadLinks(db, target.id, deps.now()),
        newToken: extra.newToken ?? null,
        deleteError: extra.deleteError ?? null,
        minPasswordLength: MIN_PASSWORD_LENGTH,
      },
      status,
    );
  }

  app.get('/users', async (request, reply) => {
    requireAdmin(request);
    const defaults = ctx.config.retention;
    return renderUsers(request, reply, { retentionVersions: String(defaults.defaultVersions), retentionDays: defaults.defaultDays ? String(defaults.defaultDays) : '' }, {});
  });

  app.post('/users', async (request, reply) => {
    const admin = requireAdmin(request);
    const form = {
      username: field(request.body, 'username').trim(),
      isAdmin: field(request.body, 'isAdmin'),
      retentionVersions: field(request.body, 'retentionVersions'),
      retentionDays: field(request.body, 'retentionDays'),
    };
    const { input, errors } = parseNewUser({ ...form, password: field(request.body, 'password'), isAdmin: form.isAdmin === 'on' });
    if (!input) return renderUsers(request, reply, form, errors, 400);
    try {
      const created = await createUser(ctx, input, actorOf(admin));
      return redirectAfterPost(reply, `/users/${created.id}?notice=user-created`);
    } catch (error) {
      if (error instanceof ConflictError) return renderUsers(request, reply, form, { username: error.message }, 409);
      throw error;
    }
  });

  /** An admin opens anyone's page, a user only their own (for their alert email). */
  function requireSelfOrAdmin(request: FastifyRequest<{ Params: { id: string } }>): Viewer {
    const user = viewer(request);
    if (!user.isAdmin && user.id !== request.params.id) throw new ForbiddenError('you can only open your own user page');
    return user;
  }

  app.get<{ Params: { id: string } }>('/users/:id', async (request, reply) => {
    requireSelfOrAdmin(request);
    return renderUser(request, reply, await loadUser(request.params.id), {});
  });

  app.post<{ Params: { id: string } }>('/users/:id/alert-email', async (request, reply) => {
    const actor = requireSelfOrAdmin(request);
    const target = await loadUser(request.params.id);
    const types = checkedValues(request.body, 'alertEmailTypes');
    const form = { alertEmail: field(request.body, 'alertEmail'), alertEmailTypes: types };
    const { setting, errors } = parseAlertEmailSetting(form.alertEmail, form.alertEmailTypes);
    if (!setting) return renderUser(request, reply, target, { alertEmailForm: form, alertEmailErrors: errors }, 400);
    await setUserAlertEmail(ctx, target.id, setting, actorOf(actor));
    return redirectAfterPost(reply, `/users/${target.id}?notice=alert-email-saved`);
  });

  app.post<{ Params: { id: string } }>('/users/:id/alert-webhook', async (request, reply) => {
    const actor = requireSelfOrAdmin(request);
    const target = await loadUser(request.params.id);
    const types = checkedValues(request.body, 'alertWebhookTypes');
    const form = { alertWebhookUrl: field(request.body, 'alertWebhookUrl'), alertWebhookTypes: types };
    const secret = field(request.body, 'alertWebhookSecret');
    const { setting, errors } = parseAlertWebhookSetting(form.alertWebhookUrl, secret, types, target.alertWebhookSecretHint !== null);
    if (!setting) return renderUser(request, reply, target, { alertWebhookForm: form, alertWebhookErrors: errors }, 400);
    await setUserAlertWebhook(ctx, target.id, setting, actorOf(actor));
    return redirectAfterPost(reply, `/users/${target.id}?notice=alert-webhook-saved`);
  });

  app.post<{ Params: { id: string } }>('/users/:id/status', async (request, reply) => {
    const admin = requireAdmin(request);
    const target = await loadUser(request.params.id);
    const disable = field(request.body, 'disabled') === 'true';
    if (disable && target.id === admin.id) {
      return renderUser(request, reply, target, { error: 'You cannot disable your own account.' }, 400);
    }
    await setUserDisabled(ctx, target.id, disable, actorOf(admin));
    return redirectAfterPost(reply, `/users/${target.id}?notice=${disable ? 'user-disabled' : 'user-enabled'}`);
  });

  app.post<{ Params: { id: string } }>('/users/:id/password', async (request, reply) => {
    const admin = requireAdmin(request);
    const target = await loadUser(request.params.id);
    try {
      // Ends the user's sessions; an admin resetting their own password keeps this one.
      const keepSessionId = target.id === admin.id ? (request.dashboardSessionId ?? undefined) : undefined;
      await resetUserPassword(ctx, target.id, field(request.body, 'password'), actorOf(admin), { keepSessionId });
    } catch (error) {
      if (error instanceof BadRequestError) return renderUser(request, reply, target, { passwordError: error.message }, 400);
      throw error;
    }
    return redirectAfterPost(reply, `/users/${target.id}?notice=password-reset`);
  });

  app.post<{ Params: { id: string } }>('/users/:id/policy', async (request, reply) => {
    const admin = requireAdmin(request);
    const target = await loadUser(request.params.id);
    const form = {
      retentionVersions: field(request.body, 'retentionVersions'),
      retentionDays: field(request.body, 'retentionDays'),
      ...retentionRulesInputFrom((name) => field(request.body, name)),
    };
    const { policy, errors } = parsePolicy(form);
    const parsedRules = parseRetentionRules(form);
    if (!policy || !parsedRules.rules) return renderUser(request, reply, target, { policyForm: form, policyErrors: { ...errors, ...parsedRules.errors } }, 400);
    if (field(request.body, 'action') === 'preview') {
      return renderUser(request, reply, target, { policyForm: form, preview: await previewUserRules(ctx, target.id, policy, parsedRules.rules, deps.now()) });
    }
    await setUserRetention(ctx, target.id, { ...policy, rules: parsedRules.rules }, actorOf(admin));
    return redirectAfterPost(reply, `/users/${target.id}?notice=policy-saved`);
  });

  /** Only the user themselves: their own password, their own tokens. */
  function requireSelf(request: FastifyRequest<{ Params: { id: string } }>): Viewer {
    const user = viewer(request);
    if (user.id !== request.params.id) throw new ForbiddenError('only the user themselves can do this');
    return user;
  }

  app.post<{ Params: { id: string } }>('/users/:id/change-password', async (request, reply) => {
    const self = requireSelf(request);
    const target = await loadUser(request.params.id);
    const currentPassword = field(request.body, 'currentPassword');
    const newPassword = field(request.body, 'newPassword');
    const errors: FieldErrors = {};
    if (currentPassword === '') errors.currentPassword = 'enter your current password';
    if (newPassword.length < MIN_PASSWORD_LENGTH || newPassword.length > 1024) errors.newPassword = `at least ${MIN_PASSWORD_LENGTH} characters`;
    else if (newPassword === currentPassword) errors.newPassword = 'must differ from the current password';
    if (Object.keys(errors).length > 0) return renderUser(request, reply, target, { changePasswordErrors: errors }, 400);
    try {
      await changeOwnPassword(ctx, self.id, { currentPassword, newPassword, keepSessionId: request.dashboardSessionId });
    } catch (error) {
      if (error instanceof WrongPasswordError) {
        return renderUser(request, reply, target, { changePasswordErrors: { currentPassword: 'does not match your current password' } }, 400);
      }
      throw error;
    }
    return redirectAfterPost(reply, `/users/${target.id}?notice=password-changed#account-security`);
  });

  app.post<{ Params: { id: string; sessionId: string } }>('/users/:id/sessions/:sessionId/revoke', async (request, reply) => {
    const actor = requireSelfOrAdmin(request);
    const target = await loadUser(request.params.id);
    const { sessionId } = request.params;
    if (!isUuid(sessionId) || !(await revokeSession(db, target.id, sessionId))) throw new NotFoundError('no such session');
    await recordAudit(db, { actorUserId: actor.id, actorName: actor.username, action: 'user.session.revoke', targetType: 'user', targetId: target.id, details: { sessionId } });
    if (sessionId === request.dashboardSessionId) return redirectAfterPost(reply, '/login?notice=logged-out');
    return redirectAfterPost(reply, `/users/${target.id}?notice=session-revoked#sessions`);
  });

  app.post<{ Params: { id: string } }>('/users/:id/tokens', async (request, reply) => {
    const self = requireSelf(request);
    const target = await loadUser(request.params.id);
    const form = { name: field(request.body, 'name'), access: field(request.body, 'access'), expiresInDays: field(request.body, 'expiresInDays') };
    const { input, errors } = parseApiTokenForm(form);
    if (!input) return renderUser(request, reply, target, { tokenForm: form, tokenErrors: errors }, 400);
    const { token, row } = await createApiToken(ctx, self.id, input, actorOf(self), deps.now());
    // Shown on this page, once: never stored in clear, never redirected through a URL.
    return renderUser(request, reply, target, { newToken: { token, name: row.name, readOnly: row.readOnly, expiresAt: row.expiresAt } });
  });

  app.post<{ Params: { id: string; tokenId: string } }>('/users/:id/tokens/:tokenId/revoke', async (request, reply) => {
    const actor = requireSelfOrAdmin(request);
    const target = await loadUser(request.params.id);
    if (!isUuid(request.params.tokenId)) throw new NotFoundError('no such token');
    await revokeApiToken(ctx, target.id, request.params.tokenId, actorOf(actor), deps.now());
    return redirectAfterPost(reply, `/users/${target.id}?notice=api-token-revoked#api-tokens`);
  });

  app.post<{ Params: { id: string; linkId: string } }>('/users/:id/download-links/:linkId/revoke', async (request, reply) => {
    const actor = requireSelfOrAdmin(request);
    const target = await loadUser(request.params.id);
    if (!isUuid(request.params.linkId)) throw new NotFoundError('no such download link');
    await revokeDownloadLink(ctx, target.id, request.params.linkId, actorOf(actor), deps.now());
    return redirectAfterPost(reply, `/users/${target.id}?notice=download-link-revoked#download-links`);
  });

  app.post<{ Params: { id: string } }>('/users/:id/credentials/revoke-all', async (request, reply) => {
    const actor = requireSelfOrAdmin(request);
    const target = await loadUser(request.params.id);
    await revokeAllCredentials(ctx, target.id, actorOf(actor), deps.now());
    return redirectAfterPost(reply, `/users/${target.id}?notice=credentials-revoked#api-tokens`);
  });

  app.post<{ Params: { id: string } }>('/users/:id/delete', async (request, reply) => {
    const admin = requireAdmin(request);
    const target = await loadUser(request.params.id);
    if (target.id === admin.id) return renderUser(request, reply, target, { deleteError: 'You cannot delete your own account.' }, 400);
    if (field(request.body, 'confirmUsername').trim() !== target.username) {
      return renderUser(request, reply, target, { deleteError: `confirmUsername: type ${target.username} to confirm` }, 400);
    }
    await deleteUser(ctx, target.id, actorOf(admin));
    return redirectAfterPost(reply, '/users?notice=user-deleted');
  });
};
