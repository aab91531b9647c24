import { randomBytes } from 'node:crypto';
import { asc, count, eq, sql } from 'drizzle-orm';
import type { AlertType } from '../alerts/alert-event.ts';
import type { AppContext } from '../app-context.ts';
import { dummyPasswordHash, hashPassword, verifyPassword } from '../auth/password.ts';
import { PG_UNIQUE_VIOLATION, pgErrorCode, type Db } from '../db/database.ts';
import { clientPaths, clients, fileVersions, users } from '../db/schema.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { recordAudit } from './audit-log.service.ts';
import { endUserSessions } from './sessions.service.ts';
import type { StoredRetentionRules } from './retention-rules.ts';

/** Who performs a change, for the audit log. */
export interface Actor {
  userId: string | null;
  name: string;
}

export const SYSTEM_ACTOR: Actor = { userId: null, name: 'system' };

export const MIN_PASSWORD_LENGTH = 8;

export interface UserSummary {
  id: string;
  username: string;
  isAdmin: boolean;
  disabled: boolean;
  retentionVersions: number;
  retentionDays: number | null;
  /** Folder rules and restore points beside the base policy (decision 134). */
  retentionRules: StoredRetentionRules;
  /** Where this user's own alert emails go, and for which types (decision 89). */
  alertEmail: string | null;
  alertEmailTypes: AlertType[];
  /** This user's own alert webhook (decision 96); the secret itself is never read out, only its last 4 characters. */
  alertWebhookUrl: string | null;
  alertWebhookTypes: AlertType[];
  alertWebhookSecretHint: string | null;
  createdAt: Date;
}

const userSummaryColumns = {
  id: users.id,
  username: users.username,
  isAdmin: users.isAdmin,
  disabled: users.disabled,
  retentionVersions: users.retentionVersions,
  retentionDays: users.retentionDays,
  retentionRules: users.retentionRules,
  alertEmail: users.alertEmail,
  alertEmailTypes: users.alertEmailTypes,
  alertWebhookUrl: users.alertWebhookUrl,
  alertWebhookTypes: users.alertWebhookTypes,
  alertWebhookSecretHint: sql<string | null>`right(${users.alertWebhookSecret}, 4)`,
  createdAt: users.createdAt,
};

export interface NewUser {
  username: string;
  password: string;
  isAdmin?: boolean;
  /** Defaults: the server's DEFAULT_RETENTION_VERSIONS / DEFAULT_RETENTION_DAYS. */
  retentionVersions?: number;
  retentionDays?: number | null;
}

/**
 * Creates a user with a scrypt-hashed password. Throws BadRequestError for an
 * empty username or a password shorter than MIN_PASSWORD_LENGTH, and
 * ConflictError when the username is taken (the unique index decides).
 */
export async function createUser(ctx: AppContext, input: NewUser, actor: Actor): Promise<UserSummary> {
  const username = input.username.trim();
  if (username === '' || username.length > 200) throw new BadRequestError('username must be 1-200 characters');
  assertPasswordStrength(input.password);
  const passwordHash = await hashPassword(input.password);
  try {
    return await ctx.database.db.transaction(async (tx) => {
      const [created] = await tx
        .insert(users)
        .values({
          username,
          passwordHash,
          isAdmin: input.isAdmin ?? false,
          retentionVersions: input.retentionVersions ?? ctx.config.retention.defaultVersions,
          retentionDays: input.retentionDays === undefined ? (ctx.config.retention.defaultDays ?? null) : input.retentionDays,
        })
        .returning(userSummaryColumns);
      if (!created) throw new Error('insert returned no row');
      await recordAudit(tx, {
        actorUserId: actor.userId,
        actorName: actor.name,
        action: 'user.create',
        targetType: 'user',
        targetId: created.id,
        details: { username, isAdmin: created.isAdmin },
      });
      return created;
    });
  } catch (error) {
    if (pgErrorCode(error) === PG_UNIQUE_VIOLATION) throw new ConflictError(`username "${username}" is taken`);
    throw error;
  }
}

/**
 * The user when the username exists, is not disabled and the password
 * matches; null otherwise. Unknown users cost the same scrypt work as wrong
 * passwords, so the answer's timing does not reveal which usernames exist.
 */
export async function verifyUserCredentials(db: Db, username: string, password: string): Promise<UserSummary | null> {
  const [row] = await db
    .select({ ...userSummaryColumns, passwordHash: users.passwordHash })
    .from(users)
    .where(eq(users.username, username.trim()))
    .limit(1);
  const ok = await verifyPassword(password, row?.passwordHash ?? (await dummyPasswordHash()));
  if (!row || !ok || row.disabled) return null;
  const { passwordHash: _hash, ...user } = row;
  return user;
}

/**
 * Sets a new password (checked like createUser's) and ends the user's
 * sessions, all of them but `keepSessionId` (an admin resetting their own
 * password stays signed in). Throws NotFoundError for an unknown user.
 */
export async function resetUserPassword(
  ctx: AppContext,
  userId: string,
  newPassword: string,
  actor: Actor,
  options: { keepSessionId?: string } = {},
): Promise<void> {
  assertPasswordStrength(newPassword);
  const passwordHash = await hashPassword(newPassword);
  await ctx.database.db.transaction(async (tx) => {
    const updated = await tx.update(users).set({ passwordHash }).where(eq(users.id, userId)).returning({ id: users.id });
    if (updated.length === 0) throw new NotFoundError('no such user');
    const sessionsEnded = await endUserSessions(tx, userId, options.keepSessionId);
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'user.password.reset',
      targetType: 'user',
      targetId: userId,
      details: { sessionsEnded },
    });
  });
}

/** The current password did not match (a 400 on the form's currentPassword field). */
export class WrongPasswordError extends BadRequestError {
  constructor() {
    super('currentPassword: does not match your current password');
  }
}

/**
 * Self-service change: the current password must match (WrongPasswordError
 * otherwise), the new one is checked like createUser's; every other session
 * of the user ends, the one making the change stays.
 */
export async function changeOwnPassword(
  ctx: AppContext,
  userId: string,
  input: { currentPassword: string; newPassword: string; keepSessionId: string | null },
): Promise<void> {
  const [row] = await ctx.database.db.select({ username: users.username, passwordHash: users.passwordHash }).from(users).where(eq(users.id, userId)).limit(1);
  if (!row) throw new NotFoundError('no such user');
  if (!(await verifyPassword(input.currentPassword, row.passwordHash))) throw new WrongPasswordError();
  assertPasswordStrength(input.newPassword);
  const passwordHash = await hashPassword(input.newPassword);
  await ctx.database.db.transaction(async (tx) => {
    await tx.update(users).set({ passwordHash }).where(eq(users.id, userId));
    const sessionsEnded = await endUserSessions(tx, userId, input.keepSessionId ?? undefined);
    await recordAudit(tx, {
      actorUserId: userId,
      actorName: row.username,
      action: 'user.password.change',
      targetType: 'user',
      targetId: userId,
      details: { sessionsEnded },
    });
  });
}

/**
 * Deletes a user with everything they own (decision 104): their clients and,
 * through the foreign keys, those clients' versions, runs, logs and alerts,
 * their dedup ownership rows, sessions and API tokens. The stored bytes no
 * other user references become unreferenced and the garbage collector frees
 * them after its grace period. The audit log keeps the entries they made
 * (actor name kept, actor id set to null) and gets one for the deletion,
 * with the counts. Returns what was deleted; NotFoundError for an unknown user.
 */
export async function deleteUser(ctx: AppContext, userId: string, actor: Actor): Promise<{ username: string; clients: number; versions: number }> {
  return ctx.database.db.transaction(async (tx) => {
    const [target] = await tx.select({ username: users.username }).from(users).where(eq(users.id, userId)).for('update');
    if (!target) throw new NotFoundError('no such user');
    const [counts] = await tx
      .select({
        clients: sql<number>`count(distinct ${clients.id})::int`,
        versions: sql<number>`count(${fileVersions.id})::int`,
      })
      .from(clients)
      .leftJoin(clientPaths, eq(clientPaths.clientId, clients.id))
      .leftJoin(fileVersions, eq(fileVersions.pathId, clientPaths.id))
      .where(eq(clients.ownerId, userId));
    const summary = { username: target.username, clients: counts?.clients ?? 0, versions: counts?.versions ?? 0 };
    await tx.delete(users).where(eq(users.id, userId));
    await recordAudit(tx, { actorUserId: actor.userId, actorName: actor.name, action: 'user.delete', targetType: 'user', targetId: userId, details: summary });
    return summary;
  });
}

/** Disables (or re-enables) a user: a disabled user cannot log in or register agents, its agents' and API tokens stop working, and its sessions end. */
export async function setUserDisabled(ctx: AppContext, userId: string, disabled: boolean, actor: Actor): Promise<void> {
  await ctx.database.db.transaction(async (tx) => {
    const updated = await tx.update(users).set({ disabled }).where(eq(users.id, userId)).returning({ id: users.id });
    if (updated.length === 0) throw new NotFoundError('no such user');
    const sessionsEnded = disabled ? await endUserSessions(tx, userId) : 0;
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: disabled ? 'user.disable' : 'user.enable',
      targetType: 'user',
      targetId: userId,
      ...(disabled ? { details: { sessionsEnded } } : {}),
    });
  });
}

/**
 * Sets a user's default retention policy (versions >= 1; days null = no age
 * limit, else >= 1) and, when given, their folder and restore-point rules
 * (parsed by retention-rules-form.ts).
 */
export async function setUserRetention(
  ctx: AppContext,
  userId: string,
  policy: { versions: number; days: number | null; rules?: StoredRetentionRules },
  actor: Actor,
): Promise<void> {
  assertRetention(policy);
  await ctx.database.db.transaction(async (tx) => {
    const updated = await tx
      .update(users)
      .set({ retentionVersions: policy.versions, retentionDays: policy.days, ...(policy.rules !== undefined && { retentionRules: policy.rules }) })
      .where(eq(users.id, userId))
      .returning({ id: users.id });
    if (updated.length === 0) throw new NotFoundError('no such user');
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'user.retention.update',
      targetType: 'user',
      targetId: userId,
      details: policy,
    });
  });
}

/** Every user, by username. */
export async function listUsers(db: Db): Promise<UserSummary[]> {
  return db.select(userSummaryColumns).from(users).orderBy(asc(users.username));
}

/** One user, or null. */
export async function findUser(db: Db, userId: string): Promise<UserSummary | null> {
  const [row] = await db.select(userSummaryColumns).from(users).where(eq(users.id, userId)).limit(1);
  return row ?? null;
}

export interface InitialAdminResult {
  created: boolean;
  username: string;
  /** Set only when the password was generated; it is printed once and never stored in clear. */
  generatedPassword?: string;
}

/**
 * First start: when the database has no users, creates the admin from
 * ADMIN_USERNAME / ADMIN_PASSWORD, or with a generated password that is
 * logged exactly once in a clearly marked line. Safe when several replicas
 * start at once: only the one whose insert wins creates (and prints) it.
 */
export async function ensureInitialAdmin(ctx: AppContext): Promise<InitialAdminResult> {
  const username = ctx.config.adminUsername;
  const [existing] = await ctx.database.db.select({ n: count() }).from(users);
  if ((existing?.n ?? 0) > 0) return { created: false, username };
  const generatedPassword = ctx.config.adminPassword === undefined ? randomBytes(18).toString('base64url') : undefined;
  const password = ctx.config.adminPassword ?? (generatedPassword as string);
  const passwordHash = await hashPassword(password);
  const created = await ctx.database.db.transaction(async (tx) => {
    const rows = await tx
      .insert(users)
      .values({
        username,
        passwordHash,
        isAdmin: true,
        retentionVersions: ctx.config.retention.defaultVersions,
        retentionDays: ctx.config.retention.defaultDays ?? null,
      })
      .onConflictDoNothing({ target: users.username })
      .returning({ id: users.id });
    const row = rows[0];
    if (row) {
      await recordAudit(tx, {
        actorUserId: SYSTEM_ACTOR.userId,
        actorName: SYSTEM_ACTOR.name,
        action: 'user.create',
        targetType: 'user',
        targetId: row.id,
        details: { username, isAdmin: true, initialAdmin: true, passwordGenerated: generatedPassword !== undefined },
      });
    }
    return row !== undefined;
  });
  if (!created) return { created: false, username };
  if (generatedPassword !== undefined) {
    // The one and only time this password is shown. It sits in the message, not in
    // a field, because the logger redacts fields named `password`.
    const banner =
      `\n********** INITIAL ADMIN PASSWORD (shown once) **********\n` +
      `  user:     ${username}\n  password: ${generatedPassword}\n` +
      `  Log in to the dashboard and change it. It is not stored and will not be shown again.\n` +
      `*********************************************************`;
    if (ctx.log.isLevelEnabled('warn')) ctx.log.warn({ event: 'initial-admin-created', username }, banner);
    // A quieter LOG_LEVEL must not swallow the only chance to learn the password.
    else process.stdout.write(`${banner}\n`);
    return { created: true, username, generatedPassword };
  }
  ctx.log.info({ event: 'initial-admin-created', username }, `created the admin user "${username}" from ADMIN_PASSWORD`);
  return { created: true, username };
}

export function assertPasswordStrength(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) throw new BadRequestError(`password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > 1024) throw new BadRequestError('password must be at most 1024 characters');
}

export function assertRetention(policy: { versions: number; days: number | null }): void {
  if (!Number.isInteger(policy.versions) || policy.versions < 1) throw new BadRequestError('retention versions must be an integer >= 1');
  if (policy.days !== null && (!Number.isInteger(policy.days) || policy.days < 1)) {
    throw new BadRequestError('retention days must be an integer >= 1, or empty for no age limit');
  }
}
