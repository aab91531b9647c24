/**
 * Personal access tokens (issue 14): a name, read-only or full, an expiry.
 * The token is shown once; only its SHA-256 and a recognisable prefix are
 * stored. A token acts as its user on /api/v1/admin, with the user's
 * permissions (a read-only one only reads). A revoked or expired token, or
 * one of a disabled user, authenticates nothing.
 */
import { randomBytes } from 'node:crypto';
import { and, desc, eq, isNull } from 'drizzle-orm';
import { isStorableText, sha256Hex } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import type { Db } from '../db/database.ts';
import { apiTokens, users } from '../db/schema.ts';
import { NotFoundError } from '../errors.ts';
import { recordAudit } from './audit-log.service.ts';
import type { Actor } from './users.service.ts';

const TOKEN_PREFIX = 'cairn_pat_';
export const API_TOKEN_MAX_DAYS = 365;
export const API_TOKEN_DEFAULT_DAYS = 30;
const LAST_USED_GRANULARITY_MS = 60_000;

export interface ApiTokenRow {
  id: string;
  name: string;
  readOnly: boolean;
  tokenPrefix: string;
  createdAt: Date;
  expiresAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const rowColumns = {
  id: apiTokens.id,
  name: apiTokens.name,
  readOnly: apiTokens.readOnly,
  tokenPrefix: apiTokens.tokenPrefix,
  createdAt: apiTokens.createdAt,
  expiresAt: apiTokens.expiresAt,
  lastUsedAt: apiTokens.lastUsedAt,
  revokedAt: apiTokens.revokedAt,
};

export interface NewApiTokenInput {
  name: string;
  readOnly: boolean;
  expiresInDays: number;
}

/** Checks the form's fields; errors keyed by field name. */
export function parseApiTokenForm(fields: { name: string; access: string; expiresInDays: string }): {
  input: NewApiTokenInput | null;
  errors: Record<string, string>;
} {
  const errors: Record<string, string> = {};
  const name = fields.name.trim();
  if (name === '' || name.length > 100 || !isStorableText(name)) errors.name = 'a name of 1 to 100 characters';
  if (fields.access !== 'read' && fields.access !== 'full') errors.access = 'read or full';
  const daysText = fields.expiresInDays.trim() === '' ? String(API_TOKEN_DEFAULT_DAYS) : fields.expiresInDays.trim();
  const days = /^\d{1,3}$/.test(daysText) ? Number(daysText) : NaN;
  if (!(days >= 1 && days <= API_TOKEN_MAX_DAYS)) errors.expiresInDays = `a whole number of days from 1 to ${API_TOKEN_MAX_DAYS}`;
  if (Object.keys(errors).length > 0) return { input: null, errors };
  return { input: { name, readOnly: fields.access === 'read', expiresInDays: days }, errors };
}

export function hashApiToken(token: string): string {
  return sha256Hex(token);
}

/** Creates a token for `userId`; the returned `token` is the only time it exists in clear. */
export async function createApiToken(
  ctx: AppContext,
  userId: string,
  input: NewApiTokenInput,
  actor: Actor,
  now: Date,
): Promise<{ token: string; row: ApiTokenRow }> {
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const tokenPrefix = token.slice(0, TOKEN_PREFIX.length + 6);
  return ctx.database.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(apiTokens)
      .values({
        userId,
        name: input.name,
        readOnly: input.readOnly,
        tokenHash: hashApiToken(token),
        tokenPrefix,
        createdAt: now,
        expiresAt: new Date(now.getTime() + input.expiresInDays * 86_400_000),
      })
      .returning(rowColumns);
    if (!row) throw new Error('insert returned no row');
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'user.api-token.create',
      targetType: 'user',
      targetId: userId,
      details: { tokenId: row.id, name: input.name, readOnly: input.readOnly, tokenPrefix, expiresAt: row.expiresAt.toISOString() },
    });
    return { token, row };
  });
}

/** The user's tokens, newest first, revoked and expired ones too (the list says which). */
export async function listApiTokens(db: Db, userId: string): Promise<ApiTokenRow[]> {
  return db.select(rowColumns).from(apiTokens).where(eq(apiTokens.userId, userId)).orderBy(desc(apiTokens.createdAt));
}

/** Revokes one of the user's tokens at once; NotFoundError when they have no such live token. */
export async function revokeApiToken(ctx: AppContext, userId: string, tokenId: string, actor: Actor, now: Date): Promise<void> {
  await ctx.database.db.transaction(async (tx) => {
    const updated = await tx
      .update(apiTokens)
      .set({ revokedAt: now })
      .where(and(eq(apiTokens.id, tokenId), eq(apiTokens.userId, userId), isNull(apiTokens.revokedAt)))
      .returning({ name: apiTokens.name, tokenPrefix: apiTokens.tokenPrefix });
    const row = updated[0];
    if (!row) throw new NotFoundError('no such token');
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'user.api-token.revoke',
      targetType: 'user',
      targetId: userId,
      details: { tokenId, name: row.name, tokenPrefix: row.tokenPrefix },
    });
  });
}

export interface ApiTokenIdentity {
  tokenId: string;
  tokenName: string;
  readOnly: boolean;
  expiresAt: Date;
  user: { id: string; username: string; isAdmin: boolean };
}

/** The user a bearer token acts as, or null: unknown, revoked, expired, or the user is disabled. */
export async function authenticateApiToken(db: Db, token: string, now: Date): Promise<ApiTokenIdentity | null> {
  if (!token.startsWith(TOKEN_PREFIX)) return null;
  const [row] = await db
    .select({
      id: apiTokens.id,
      name: apiTokens.name,
      readOnly: apiTokens.readOnly,
      expiresAt: apiTokens.expiresAt,
      revokedAt: apiTokens.revokedAt,
      lastUsedAt: apiTokens.lastUsedAt,
      userId: users.id,
      username: users.username,
      isAdmin: users.isAdmin,
      disabled: users.disabled,
    })
    .from(apiTokens)
    .innerJoin(users, eq(users.id, apiTokens.userId))
    .where(eq(apiTokens.tokenHash, hashApiToken(token)))
    .limit(1);
  if (!row || row.revokedAt !== null || row.disabled || row.expiresAt.getTime() <= now.getTime()) return null;
  if (row.lastUsedAt === null || now.getTime() - row.lastUsedAt.getTime() >= LAST_USED_GRANULARITY_MS) {
    await db.update(apiTokens).set({ lastUsedAt: now }).where(eq(apiTokens.id, row.id));
  }
  return { tokenId: row.id, tokenName: row.name, readOnly: row.readOnly, expiresAt: row.expiresAt, user: { id: row.userId, username: row.username, isAdmin: row.isAdmin } };
}
