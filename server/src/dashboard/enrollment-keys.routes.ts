import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { BadRequestError } from '../errors.ts';
import {
  assertEnrollmentKeySettings,
  createEnrollmentKey,
  enrollmentKeyState,
  listEnrollmentKeys,
  MAX_MULTI_USE_DAYS,
  revokeEnrollmentKey,
  type NewEnrollmentKey,
} from '../services/enrollment-keys.service.ts';
import { listUsers } from '../services/users.service.ts';
import { parseDuration, type FieldErrors } from './client-config-form.ts';
import { actorOf, type DashboardDeps, field, redirectAfterPost, renderPage, viewer } from './dashboard-context.ts';

/** The form as typed, to show it again with its errors. */
export interface EnrollmentKeyFormValues {
  description: string;
  uses: string;
  expiresIn: string;
  namePrefix: string;
  ownerId: string;
}

const EMPTY_FORM = (ownerId: string): EnrollmentKeyFormValues => ({ description: '', uses: 'single', expiresIn: '7d', namePrefix: '', ownerId });

/** Reads the form into key settings, or field errors (expiresIn is a duration such as 12h or 7d; blank = never, single-use only). */
export function parseEnrollmentKeyForm(values: EnrollmentKeyFormValues, now: Date): { settings?: NewEnrollmentKey; errors: FieldErrors } {
  const errors: FieldErrors = {};
  if (values.uses !== 'single' && values.uses !== 'multi') errors.uses = 'choose single-use or multi-use';
  let expiresAt: Date | null = null;
  if (values.expiresIn.trim() !== '') {
    const seconds = parseDuration(values.expiresIn);
    if (seconds === null || seconds < 60) errors.expiresIn = 'a duration such as 12h or 7d';
    else expiresAt = new Date(now.getTime() + seconds * 1000);
  } else if (values.uses === 'multi') errors.expiresIn = 'a multi-use key needs an expiry';
  if (expiresAt !== null && values.uses === 'multi' && expiresAt.getTime() > now.getTime() + MAX_MULTI_USE_DAYS * 86_400_000) {
    errors.expiresIn = `at most ${MAX_MULTI_USE_DAYS}d for a multi-use key`;
  }
  const namePrefix = values.namePrefix.trim();
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  if (namePrefix.length > 100 || /[\u0000-\u001f\u007f]/.test(namePrefix)) errors.namePrefix = 'at most 100 characters, no control characters';
  if (values.description.length > 200) errors.description = 'at most 200 characters';
  if (Object.keys(errors).length > 0) return { errors };
  return {
    errors,
    settings: { ownerId: values.ownerId, singleUse: values.uses === 'single', expiresAt, namePrefix: namePrefix === '' ? null : namePrefix, description: values.description.trim() },
  };
}

/** /enrollment-keys: every user makes keys for their own clients; an admin may make them for anyone. */
export const enrollmentKeysRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const { repo, ctx } = deps;
  const db = ctx.database.db;

  async function renderKeys(request: FastifyRequest, reply: FastifyReply, form: { values: EnrollmentKeyFormValues; errors: FieldErrors }, extra: Record<string, unknown> = {}, status = 200) {
    const user = viewer(request);
    const now = deps.now();
    const keys = (await listEnrollmentKeys(db, user.isAdmin ? {} : { ownerId: user.id })).map((key) => ({ ...key, state: enrollmentKeyState(key, now) }));
    const owners = user.isAdmin ? await listUsers(db) : [];
    return renderPage(request, reply, deps, 'enrollment-keys', { title: 'Enrollment keys', nav: 'enrollment', keys, owners, form, serverUrl: ctx.config.publicUrl, ...extra }, status);
  }

  app.get('/enrollment-keys', async (request, reply) => renderKeys(request, reply, { values: EMPTY_FORM(viewer(request).id), errors: {} }));

  app.post('/enrollment-keys', async (request, reply) => {
    const user = viewer(request);
    const values: EnrollmentKeyFormValues = {
      description: field(request.body, 'description'),
      uses: field(request.body, 'uses'),
      expiresIn: field(request.body, 'expiresIn'),
      namePrefix: field(request.body, 'namePrefix'),
      ownerId: user.isAdmin ? field(request.body, 'ownerId') || user.id : user.id,
    };
    const now = deps.now();
    const parsed = parseEnrollmentKeyForm(values, now);
    if (!(await repo.userExists(values.ownerId))) parsed.errors.ownerId = 'choose an existing user';
    if (!parsed.settings || Object.keys(parsed.errors).length > 0) return renderKeys(request, reply, { values, errors: parsed.errors }, {}, 400);
    try {
      assertEnrollmentKeySettings(parsed.settings, now);
    } catch (error) {
      if (error instanceof BadRequestError) return renderKeys(request, reply, { values, errors: { expiresIn: error.message } }, {}, 400);
      throw error;
    }
    const created = await createEnrollmentKey(ctx, parsed.settings, actorOf(user));
    return renderKeys(request, reply, { values: EMPTY_FORM(user.id), errors: {} }, { created });
  });

  app.post<{ Params: { id: string } }>('/enrollment-keys/:id/revoke', async (request, reply) => {
    const user = viewer(request);
    if (!/^[0-9a-f-]{36}$/.test(request.params.id)) throw new BadRequestError('id: not an enrollment key id');
    await revokeEnrollmentKey(ctx, request.params.id, actorOf(user), user.isAdmin ? {} : { ownerId: user.id });
    return redirectAfterPost(reply, '/enrollment-keys?notice=key-revoked');
  });
};
