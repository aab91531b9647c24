/**
 * What every /api/v1/admin route file shares: who the request acts as (the
 * personal access token's user), the dashboard's permission rules in the
 * API's terms, and the OpenAPI bits each route repeats.
 */
import type { FastifyRequest } from 'fastify';
import type { Db } from '../db/database.ts';
import type { Viewer } from '../dashboard/dashboard.repository.ts';
import { BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.ts';
import type { ApiTokenIdentity } from '../services/api-tokens.service.ts';
import { findClient } from '../services/clients.service.ts';
import { findUser, type Actor, type UserSummary } from '../services/users.service.ts';
import type { ClientSummary } from '../services/clients.service.ts';
import type { StoredRetentionRules } from '../services/retention-rules.ts';
import { parseRetentionRules, RESTORE_POINT_FIELDS, retentionRulesInput } from '../services/retention-rules-form.ts';
import { AdminError, type AdminClient } from './admin-api.schemas.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The personal access token behind an /api/v1/admin request and its user. */
    apiToken: ApiTokenIdentity | null;
  }
  interface FastifyContextConfig {
    /** A route that changes state but a read-only token may still call (it only reads, or only gives up access). */
    readOnlyAllowed?: boolean;
  }
}

export const TOKEN_AUTH = [{ bearer: [] }];
export const TAGS = ['admin'];
export const ERRORS = { 400: AdminError, 401: AdminError, 403: AdminError, 404: AdminError };

export function tokenOf(request: FastifyRequest): ApiTokenIdentity {
  if (!request.apiToken) throw new UnauthorizedError();
  return request.apiToken;
}

export function viewerOf(request: FastifyRequest): Viewer {
  return tokenOf(request).user;
}

/** Audited as the user, naming the token, so the log shows which script did it. */
export function actorOf(request: FastifyRequest): Actor {
  const token = tokenOf(request);
  return { userId: token.user.id, name: `${token.user.username} (API token "${token.tokenName}")` };
}

export const iso = (value: Date | null): string | null => (value === null ? null : value.toISOString());

/** The dashboard's `requireAdmin`: 403 naming what only administrators may do. */
export function requireAdminToken(request: FastifyRequest, what: string): Viewer {
  const user = viewerOf(request);
  if (!user.isAdmin) throw new ForbiddenError(`only administrators can ${what}`);
  return user;
}

/** The dashboard's user-page rule: administrators act on anyone, a user on themselves only (403). */
export function requireSelfOrAdminToken(request: FastifyRequest, userId: string): Viewer {
  const user = viewerOf(request);
  if (!user.isAdmin && user.id !== userId) throw new ForbiddenError('you can only act on your own user');
  return user;
}

/** Only the user themselves (their own password and tokens), as on the dashboard (403). */
export function requireSelfToken(request: FastifyRequest, userId: string): Viewer {
  const user = viewerOf(request);
  if (user.id !== userId) throw new ForbiddenError('only the user themselves can do this');
  return user;
}

/** The client if the token's user may see it (admins: any); 404 otherwise, as in the dashboard. */
export async function visibleClient(db: Db, request: FastifyRequest, id: string) {
  const user = viewerOf(request);
  const client = await findClient(db, id);
  if (!client || (!user.isAdmin && client.ownerId !== user.id)) throw new NotFoundError('no such client');
  return client;
}

export async function existingUser(db: Db, id: string): Promise<UserSummary> {
  const user = await findUser(db, id);
  if (!user) throw new NotFoundError('no such user');
  return user;
}

/** A 400 naming each bad field in `message` and in `fields`, with the dashboard form's messages. */
export function fieldErrors(errors: Record<string, string | undefined>, rename: Record<string, string> = {}): BadRequestError {
  const fields = Object.fromEntries(Object.entries(errors).map(([name, message]) => [rename[name] ?? name, message ?? 'invalid']));
  return new BadRequestError(
    Object.entries(fields)
      .map(([name, message]) => `${name}: ${message}`)
      .join('; '),
    { fields },
  );
}

export function clientJson(client: ClientSummary): AdminClient {
  return {
    id: client.id,
    name: client.name,
    hostname: client.hostname,
    ownerId: client.ownerId,
    ownerUsername: client.ownerUsername,
    agentVersion: client.agentVersion,
    tokenPrefix: client.tokenPrefix,
    lastPingAt: iso(client.lastPingAt),
    lastBackupAt: iso(client.lastBackupAt),
    runRequestedAt: iso(client.runRequestedAt),
    backupIntervalSeconds: client.backupIntervalSeconds,
    retention: { versions: client.retentionVersions, days: client.retentionDays },
    retentionRules: client.retentionRules,
    createdAt: client.createdAt.toISOString(),
  };
}

export function userJson(user: UserSummary) {
  const { id, username, isAdmin, disabled, retentionVersions, retentionDays, retentionRules, createdAt } = user;
  return { id, username, isAdmin, disabled, retentionVersions, retentionDays, retentionRules, createdAt: createdAt.toISOString() };
}

/** The API's retention rules checked by the dashboard form's parser, its errors under the API's field names. */
export function parseApiRetentionRules(rules: StoredRetentionRules): { rules: StoredRetentionRules | null; errors: Record<string, string> } {
  const input = retentionRulesInput(rules);
  // A 0 shows as empty in the form; the API's 0 is the same "none".
  const parsed = parseRetentionRules(input);
  const errors = Object.fromEntries(
    Object.entries(parsed.errors).map(([name, message]) => {
      const point = RESTORE_POINT_FIELDS.find((f) => f.field === name);
      return [point ? `retentionRules.restorePoints.${point.kind}` : 'retentionRules.folders', message];
    }),
  );
  return { rules: parsed.rules, errors };
}

