/**
 * The dashboard session: a stateless cookie signed with the server's secret
 * key (HMAC through @fastify/cookie), so any replica that shares SECRET_KEY
 * accepts it. It carries the user id, a random session id (new at every
 * login), when it was issued and when it was last seen. The idle timeout is
 * enforced here, server-side, from `lastSeenAt`; each accepted request slides
 * it forward.
 */
import { randomBytes } from 'node:crypto';

export const SESSION_COOKIE = 'cairn_session';

export interface SessionData {
  userId: string;
  sessionId: string;
  /** Milliseconds since the epoch, server clock. */
  issuedAt: number;
  lastSeenAt: number;
}

export function newSession(userId: string, now: Date): SessionData {
  const at = now.getTime();
  return { userId, sessionId: randomBytes(18).toString('base64url'), issuedAt: at, lastSeenAt: at };
}

/** The cookie value before signing. */
export function encodeSession(session: SessionData): string {
  return Buffer.from(
    JSON.stringify({ u: session.userId, s: session.sessionId, i: session.issuedAt, l: session.lastSeenAt }),
  ).toString('base64url');
}

/** The session in an (already verified) cookie value, or null when it is malformed. */
export function decodeSession(value: string): SessionData | null {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    if (!parsed || typeof parsed !== 'object') return null;
    const { u, s, i, l } = parsed as Record<string, unknown>;
    if (typeof u !== 'string' || typeof s !== 'string' || typeof i !== 'number' || typeof l !== 'number') return null;
    return { userId: u, sessionId: s, issuedAt: i, lastSeenAt: l };
  } catch {
    return null;
  }
}

/** True when the session was last seen more than `idleMinutes` ago (or claims to be from the future). */
export function isSessionExpired(session: SessionData, now: Date, idleMinutes: number): boolean {
  const idleMs = now.getTime() - session.lastSeenAt;
  return idleMs > idleMinutes * 60_000 || idleMs < -60_000;
}
