import { randomBytes } from 'node:crypto';
import { and, desc, eq, sql } from 'drizzle-orm';
import { sha256Hex, type EnrollRequest, type RegisterResponse } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import { newAgentToken } from '../auth/tokens.ts';
import { PG_UNIQUE_VIOLATION, pgErrorCode, type Db } from '../db/database.ts';
import { clients, enrollmentKeys, users } from '../db/schema.ts';
import { BadRequestError, ConflictError, NotFoundError, UnauthorizedError } from '../errors.ts';
import { recordAudit } from './audit-log.service.ts';
import { clientDashboardUrl } from './clients.service.ts';
import type { Actor } from './users.service.ts';

const KEY_PREFIX = 'cairn_enroll_';
/** A multi-use key lives at most this long: it is meant for a rollout, not for ever. */
export const MAX_MULTI_USE_DAYS = 90;
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
const NAME_PREFIX_PATTERN = /^[^\u0000-\u001f\u007f]{1,100}$/u;

export interface NewEnrollmentKey {
  ownerId: string;
  singleUse: boolean;
  /** Required for multi-use keys; optional for single-use ones. */
  expiresAt: Date | null;
  namePrefix: string | null;
  description: string;
}

export interface EnrollmentKeySummary {
  id: string;
  keyPrefix: string;
  description: string;
  ownerId: string;
  ownerUsername: string;
  singleUse: boolean;
  expiresAt: Date | null;
  namePrefix: string | null;
  useCount: number;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  createdAt: Date;
}

/** Where a key stands, for the list; `usable` when an agent could register with it now. */
export function enrollmentKeyState(key: Pick<EnrollmentKeySummary, 'singleUse' | 'useCount' | 'expiresAt' | 'revokedAt'>, now: Date): 'usable' | 'revoked' | 'expired' | 'used' {
  if (key.revokedAt !== null) return 'revoked';
  if (key.singleUse && key.useCount > 0) return 'used';
  if (key.expiresAt !== null && key.expiresAt.getTime() <= now.getTime()) return 'expired';
  return 'usable';
}

function hashEnrollmentKey(key: string): string {
  return sha256Hex(key);
}

/**
 * Checks a new key's settings; BadRequestError naming the field. A
 * multi-use key must expire within MAX_MULTI_USE_DAYS.
 */
export function assertEnrollmentKeySettings(input: NewEnrollmentKey, now: Date): void {
  if (input.expiresAt !== null) {
    if (Number.isNaN(input.expiresAt.getTime())) throw new BadRequestError('expiresAt: not a time');
    if (input.expiresAt.getTime() <= now.getTime()) throw new BadRequestError('expiresAt: must be in the future');
  }
  if (!input.singleUse) {
    if (input.expiresAt === null) throw new BadRequestError('expiresAt: a multi-use key needs an expiry');
    if (input.expiresAt.getTime() > now.getTime() + MAX_MULTI_USE_DAYS * 86_400_000) {
      throw new BadRequestError(`expiresAt: a multi-use key expires within ${MAX_MULTI_USE_DAYS} days`);
    }
  }
  if (input.namePrefix !== null && !NAME_PREFIX_PATTERN.test(input.namePrefix)) {
    throw new BadRequestError('namePrefix: 1-100 characters, no control characters');
  }
  if (input.description.length > 200) throw new BadRequestError('description: at most 200 characters');
}

/** Creates a key; returns it once (only its SHA-256 is stored). The caller checks who may fix `ownerId`. */
export async function createEnrollmentKey(ctx: AppContext, input: NewEnrollmentKey, actor: Actor): Promise<{ id: string; key: string }> {
  assertEnrollmentKeySettings(input, new Date());
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  const keyPrefix = key.slice(0, KEY_PREFIX.length + 6);
  const id = await ctx.database.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(enrollmentKeys)
      .values({
        keyHash: hashEnrollmentKey(key),
        keyPrefix,
        description: input.description,
        ownerId: input.ownerId,
        createdBy: actor.userId,
        singleUse: input.singleUse,
        expiresAt: input.expiresAt,
        namePrefix: input.namePrefix,
      })
      .returning({ id: enrollmentKeys.id });
    if (!row) throw new Error('insert returned no row');
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'enrollment_key.create',
      targetType: 'enrollment_key',
      targetId: row.id,
      details: {
        keyPrefix,
        ownerId: input.ownerId,
        singleUse: input.singleUse,
        expiresAt: input.expiresAt?.toISOString() ?? null,
        namePrefix: input.namePrefix,
      },
    });
    return row.id;
  });
  return { id, key };
}

/** Keys newest first; only `ownerId`'s when given (a non-admin sees only their own). */
export async function listEnrollmentKeys(db: Db, filter: { ownerId?: string } = {}): Promise<EnrollmentKeySummary[]> {
  return db
    .select({
      id: enrollmentKeys.id,
      keyPrefix: enrollmentKeys.keyPrefix,
      description: enrollmentKeys.description,
      ownerId: enrollmentKeys.ownerId,
      ownerUsername: users.username,
      singleUse: enrollmentKeys.singleUse,
      expiresAt: enrollmentKeys.expiresAt,
      namePrefix: enrollmentKeys.namePrefix,
      useCount: enrollmentKeys.useCount,
      lastUsedAt: enrollmentKeys.lastUsedAt,
      revokedAt: enrollmentKeys.revokedAt,
      createdAt: enrollmentKeys.createdAt,
    })
    .from(enrollmentKeys)
    .innerJoin(users, eq(users.id, enrollmentKeys.ownerId))
    .where(filter.ownerId === undefined ? undefined : eq(enrollmentKeys.ownerId, filter.ownerId))
    .orderBy(desc(enrollmentKeys.createdAt));
}

/** Revokes a key (clients it registered keep working). NotFoundError for an unknown key or, with `ownerId`, another user's. */
export async function revokeEnrollmentKey(ctx: AppContext, keyId: string, actor: Actor, filter: { ownerId?: string } = {}): Promise<void> {
  await ctx.database.db.transaction(async (tx) => {
    const updated = await tx
      .update(enrollmentKeys)
      .set({ revokedAt: sql`coalesce(${enrollmentKeys.revokedAt}, now())` })
      .where(and(eq(enrollmentKeys.id, keyId), filter.ownerId === undefined ? undefined : eq(enrollmentKeys.ownerId, filter.ownerId)))
      .returning({ id: enrollmentKeys.id, keyPrefix: enrollmentKeys.keyPrefix });
    const [row] = updated;
    if (!row) throw new NotFoundError('no such enrollment key');
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'enrollment_key.revoke',
      targetType: 'enrollment_key',
      targetId: keyId,
      details: { keyPrefix: row.keyPrefix },
    });
  });
}

/**
 * Registers an agent with an enrollment key: a new client of the key's owner
 * with a fresh token. The key's use is counted in the same transaction as the
 * client is created, so two agents racing for one single-use key get one
 * client between them, and a refused name does not use the key up.
 * UnauthorizedError naming the problem (unknown, revoked, expired, used, owner
 * disabled); BadRequestError for a name without the key's prefix;
 * ConflictError when the owner already has a client of that name (a key never
 * takes over a client: that is how a revoked client stays revoked).
 */
export async function enrollClient(ctx: AppContext, request: EnrollRequest): Promise<RegisterResponse> {
  const name = request.clientName.trim();
  if (name === '') throw new BadRequestError('clientName must not be blank');
  const keyHash = hashEnrollmentKey(request.enrollmentKey.trim());
  const token = newAgentToken();
  try {
    const clientId = await ctx.database.db.transaction(async (tx) => {
      const [key] = await tx
        .select({ key: enrollmentKeys, ownerName: users.username, ownerDisabled: users.disabled })
        .from(enrollmentKeys)
        .innerJoin(users, eq(users.id, enrollmentKeys.ownerId))
        .where(eq(enrollmentKeys.keyHash, keyHash))
        .for('update', { of: enrollmentKeys })
        .limit(1);
      if (!key) throw new UnauthorizedError('enrollment key is not valid');
      const state = enrollmentKeyState(key.key, new Date());
      if (state === 'revoked') throw new UnauthorizedError('enrollment key was revoked');
      if (state === 'used') throw new UnauthorizedError('enrollment key was already used (it is single-use)');
      if (state === 'expired') throw new UnauthorizedError(`enrollment key expired at ${key.key.expiresAt?.toISOString()}`);
      if (key.ownerDisabled) throw new UnauthorizedError("enrollment key's owner is disabled");
      if (key.key.namePrefix !== null && !name.startsWith(key.key.namePrefix)) {
        throw new BadRequestError(`clientName must start with "${key.key.namePrefix}" (this enrollment key's prefix)`);
      }
      const [row] = await tx
        .insert(clients)
        .values({ ownerId: key.key.ownerId, name, hostname: request.hostname, tokenHash: token.hash, tokenPrefix: token.prefix, agentVersion: request.agentVersion ?? null })
        .returning({ id: clients.id });
      if (!row) throw new Error('insert returned no row');
      await tx
        .update(enrollmentKeys)
        .set({ useCount: sql`${enrollmentKeys.useCount} + 1`, lastUsedAt: sql`now()` })
        .where(eq(enrollmentKeys.id, key.key.id));
      await recordAudit(tx, {
        actorUserId: null,
        actorName: `enrollment key ${key.key.keyPrefix}`,
        action: 'client.enroll',
        targetType: 'client',
        targetId: row.id,
        details: { name, hostname: request.hostname, ownerId: key.key.ownerId, enrollmentKeyId: key.key.id, tokenPrefix: token.prefix },
      });
      return row.id;
    });
    return { clientId, token: token.token, dashboardUrl: clientDashboardUrl(ctx.config, clientId) };
  } catch (error) {
    if (pgErrorCode(error) === PG_UNIQUE_VIOLATION) {
      throw new ConflictError(`clientName: a client named "${name}" already exists; an enrollment key only registers new clients`);
    }
    throw error;
  }
}
