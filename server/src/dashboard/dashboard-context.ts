import type { FastifyReply, FastifyRequest } from 'fastify';
import { isStorableText, STORABLE_TEXT_RULE } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { BadRequestError, ForbiddenError } from '../errors.ts';
import type { Actor } from '../services/users.service.ts';
import type { DashboardRepository, Viewer } from './dashboard.repository.ts';
import { viewHelpers } from './view-helpers.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in dashboard user; set by the session hook on every authenticated route. */
    dashboardUser: Viewer | null;
    /** The id of the `sessions` row behind the request (to list it as "this browser" and keep it on a password change). */
    dashboardSessionId: string | null;
  }
}

/** What every dashboard route file receives. */
export interface DashboardDeps {
  ctx: AppContext;
  repo: DashboardRepository;
  now: () => Date;
}

export type FormBody = Record<string, string | string[] | undefined>;

/** The first value of a urlencoded field as sent, '' when absent. */
function firstValue(body: unknown, name: string): string {
  if (!body || typeof body !== 'object') return '';
  const value = (body as FormBody)[name];
  if (Array.isArray(value)) return value[0] ?? '';
  return typeof value === 'string' ? value : '';
}

/**
 * One text field of a urlencoded form or query (the first value when
 * repeated). Text PostgreSQL cannot hold (a NUL) is refused here, for every
 * field at once, with a 400 naming it (decision 42).
 */
export function field(body: unknown, name: string): string {
  const value = firstValue(body, name);
  if (!isStorableText(value)) throw new BadRequestError(`${name}: ${STORABLE_TEXT_RULE}`);
  return value;
}

export function queryParam(request: FastifyRequest, name: string): string {
  return field(request.query, name);
}

export function viewer(request: FastifyRequest): Viewer {
  if (!request.dashboardUser) throw new ForbiddenError('sign in first');
  return request.dashboardUser;
}

export function requireAdmin(request: FastifyRequest): Viewer {
  const user = viewer(request);
  if (!user.isAdmin) throw new ForbiddenError('only administrators can open this page');
  return user;
}

/** The audit log's actor for a dashboard user. */
export function actorOf(user: Viewer): Actor {
  return { userId: user.id, name: user.username };
}

export function isSecureRequest(request: FastifyRequest): boolean {
  return request.protocol === 'https';
}

const NOTICES: Record<string, string> = {
  saved: 'Saved.',
  'verify-started': 'Verify run started: it reads every pack; reload to follow it.',
  'verify-running': 'A verify run is already running; reload to follow it.',
  'run-requested': 'Backup requested: a connected agent starts it within seconds, any other at its next heartbeat.',
  'token-revoked': 'Token revoked: the agent can no longer connect until it gets a new token.',
  'key-revoked': 'Enrollment key revoked: no agent can register with it any more; clients it registered keep working.',
  'user-created': 'User created.',
  'user-disabled': 'User disabled: their sessions ended and their tokens stop working.',
  'user-enabled': 'User enabled.',
  'password-reset': 'Password changed. The user\u2019s sessions ended.',
  'password-changed': 'Password changed. Your other sessions ended.',
  'session-revoked': 'Session ended.',
  'api-token-revoked': 'Token revoked: requests with it are refused from now on.',
  'download-link-revoked': 'Link revoked: it no longer downloads anything.',
  'credentials-revoked': 'Every API token and temporary download link of this user is revoked.',
  'user-deleted': 'User deleted, with their clients and backups.',
  'client-moved': 'Client moved to its new owner.',
  'policy-saved': 'Retention policy saved.',
  'retention-saved': 'Retention saved.',
  'alert-email-saved': 'Alert email saved.',
  'alert-webhook-saved': 'Alert webhook saved.',
  'logged-out': 'You are signed out.',
  'alert-acknowledged': 'Alert acknowledged.',
  'restore-queued': 'Restore job queued: a connected agent starts it within seconds, any other at its next heartbeat.',
  'restore-scheduled': 'Restore schedule saved.',
  'restore-cancelled': 'Restore job cancelled before it started.',
  'restore-cancelling': 'Cancel requested: the agent stops before its next file.',
  'restore-schedule-deleted': 'Restore schedule deleted; its past jobs stay listed.',
  expired: 'Your session expired. Please sign in again.',
};

/** Renders a page with the layout's common data: the user, a CSRF token for its forms, helpers. */
export async function renderPage(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: DashboardDeps,
  view: string,
  data: Record<string, unknown>,
  status = 200,
) {
  // Only ever looked up in NOTICES, and read while rendering error pages too: never refused.
  const noticeKey = firstValue(request.query, 'notice');
  const csrfToken = reply.generateCsrf({ secure: isSecureRequest(request) });
  const html = await reply.viewAsync(view, {
    user: request.dashboardUser,
    csrfToken,
    h: viewHelpers(deps.now()),
    notice: Object.hasOwn(NOTICES, noticeKey) ? NOTICES[noticeKey] : null,
    ...data,
  });
  return reply.status(status).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(html);
}

/** 303 after a successful POST, so a reload does not resubmit. */
export function redirectAfterPost(reply: FastifyReply, location: string) {
  return reply.redirect(location, 303);
}
