/**
 * Dashboard sessions, stored server-side (issue 14). The cookie holds 256
 * random bits; the `sessions` row keeps only their SHA-256, so a database
 * dump cannot be replayed as cookies. Every replica reads the same rows:
 * sign-out, a password change or reset and disabling a user end sessions at
 * once, everywhere. A session ends after `idleMinutes` without a request and
 * `maxHours` after sign-in, whatever the browser sends.
 */
import { randomBytes } from 'node:crypto';
import { and, desc, eq, gte, lt, ne, or } from 'drizzle-orm';
import { sha256Hex } from '@cairn/shared';
import type { Db, Tx } from '../db/database.ts';
import { sessions, users } from '../db/schema.ts';

/** last_seen_at is written at most this often, not at every request (the idle timeout is minutes). */
const LAST_SEEN_GRANULARITY_MS = 60_000;
const MAX_USER_AGENT = 300;

export interface SessionLimits {
  idleMinutes: number;
  maxHours: number;
}

export interface SessionRow {
  id: string;
  userId: string;
  createdAt: Date;
  lastSeenAt: Date;
  userAgent: string;
  ip: string;
}

export interface SessionUser {
  id: string;
  username: string;
  isAdmin: boolean;
}

export function hashSessionToken(token: string): string {
  return sha256Hex(token);
}

/** True when the session is past its idle timeout or its absolute lifetime (or claims to be from the future). */
export function isSessionExpired(session: { createdAt: Date; lastSeenAt: Date }, now: Date, limits: SessionLimits): boolean {
  const idleMs = now.getTime() - session.lastSeenAt.getTime();
  const ageMs = now.getTime() - session.createdAt.getTime();
  return idleMs > limits.idleMinutes * 60_000 || ageMs > limits.maxHours * 3_600_000 || idleMs < -60_000;
}

/**
 * A new session for `userId`; returns the cookie value (shown to the browser
 * only). Sessions of any user already expired are deleted on the way, so the
 * table does not grow with abandoned browsers.
 */
export async function createSession(
  db: Db,
  userId: string,
  info: { userAgent: string; ip: string; now: Date; limits: SessionLimits },
): Promise<{ token: string; id: string }> {
  const token = randomBytes(32).toString('base64url');
  const { now, limits } = info;
  await db
    .delete(sessions)
    .where(
      or(
        lt(sessions.lastSeenAt, new Date(now.getTime() - limits.idleMinutes * 60_000)),
        lt(sessions.createdAt, new Date(now.getTime() - limits.maxHours * 3_600_000)),
      ),
    );
  const [row] = await db
    .insert(sessions)
    .values({
      tokenHash: hashSessionToken(token),
      userId,
      createdAt: now,
      lastSeenAt: now,
      userAgent: info.userAgent.slice(0, MAX_USER_AGENT),
      ip: info.ip,
    })
    .returning({ id: sessions.id });
  if (!row) throw new Error('insert returned no row');
  return { token, id: row.id };
}

export type SessionLookup =
  | { state: 'valid'; session: SessionRow; user: SessionUser }
  | { state: 'expired' }
  | { state: 'none' };

/**
 * The session behind a cookie value and its (enabled) user. An expired
 * session is deleted; an accepted one has its last-seen time slid forward
 * (written at most once a minute).
 */
export async function lookupSession(db: Db, token: string, now: Date, limits: SessionLimits): Promise<SessionLookup> {
  const [row] = await db
    .select({
      id: sessions.id,
      userId: sessions.userId,
      createdAt: sessions.createdAt,
      lastSeenAt: sessions.lastSeenAt,
      userAgent: sessions.userAgent,
      ip: sessions.ip,
      username: users.username,
      isAdmin: users.isAdmin,
      disabled: users.disabled,
    })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(eq(sessions.tokenHash, hashSessionToken(token)))
    .limit(1);
  if (!row || row.disabled) return { state: 'none' };
  if (isSessionExpired(row, now, limits)) {
    await db.delete(sessions).where(eq(sessions.id, row.id));
    return { state: 'expired' };
  }
  if (now.getTime() - row.lastSeenAt.getTime() >= LAST_SEEN_GRANULARITY_MS) {
    await db.update(sessions).set({ lastSeenAt: now }).where(eq(sessions.id, row.id));
    row.lastSeenAt = now;
  }
  const { username, isAdmin, disabled: _disabled, ...session } = row;
  return { state: 'valid', session, user: { id: row.userId, username, isAdmin } };
}

/** Ends one session by its cookie value (sign-out). */
export async function deleteSessionByToken(db: Db, token: string): Promise<void> {
  await db.delete(sessions).where(eq(sessions.tokenHash, hashSessionToken(token)));
}

/** Ends one of the user's sessions by id; false when they have no such session. */
export async function revokeSession(db: Db | Tx, userId: string, sessionId: string): Promise<boolean> {
  const deleted = await db
    .delete(sessions)
    .where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId)))
    .returning({ id: sessions.id });
  return deleted.length > 0;
}

/** Ends every session of the user, but `exceptSessionId` when given; returns how many ended. */
export async function endUserSessions(db: Db | Tx, userId: string, exceptSessionId?: string): Promise<number> {
  const deleted = await db
    .delete(sessions)
    .where(exceptSessionId ? and(eq(sessions.userId, userId), ne(sessions.id, exceptSessionId)) : eq(sessions.userId, userId))
    .returning({ id: sessions.id });
  return deleted.length;
}

/** The user's live sessions (expired rows not yet deleted are left out), most recently seen first. */
export async function listUserSessions(db: Db, userId: string, now: Date, limits: SessionLimits): Promise<SessionRow[]> {
  return db
    .select({
      id: sessions.id,
      userId: sessions.userId,
      createdAt: sessions.createdAt,
      lastSeenAt: sessions.lastSeenAt,
      userAgent: sessions.userAgent,
      ip: sessions.ip,
    })
    .from(sessions)
    .where(
      and(
        eq(sessions.userId, userId),
        gte(sessions.lastSeenAt, new Date(now.getTime() - limits.idleMinutes * 60_000)),
        gte(sessions.createdAt, new Date(now.getTime() - limits.maxHours * 3_600_000)),
      ),
    )
    .orderBy(desc(sessions.lastSeenAt));
}
