/**
 * Temporary download links (issue 14, decisions 136-138): a URL for one file
 * version or one folder archive that works without a session until it
 * expires (default 1 hour, at most 7 days) or is revoked. The URL carries
 * `cairn_dl_` + 256 random bits; only their SHA-256 is stored, with what the
 * link opens and who made it.
 *
 * A link works only while all of these hold, checked on every use:
 * - it has not expired and has not been revoked (`revoked_at`);
 * - the personal access token that made it (when made through the API) is
 *   neither revoked nor expired;
 * - its user exists, is not disabled, and may still see the client (its
 *   owner, or an administrator).
 * "Revoke all tokens and links" on the user's page revokes every live token
 * and every live link of the user at once, which is how a link made on the
 * dashboard (no token) is stopped early.
 */
import { randomBytes } from 'node:crypto';
import { and, desc, eq, gt, isNull, or, sql } from 'drizzle-orm';
import { sha256Hex } from '@cairn/shared';
import type { AppContext } from '../app-context.ts';
import type { ServerConfig } from '../config/server-config.ts';
import type { Db } from '../db/database.ts';
import { apiTokens, clients, downloadLinks, users } from '../db/schema.ts';
import { NotFoundError } from '../errors.ts';
import { recordAudit } from './audit-log.service.ts';
import type { Actor } from './users.service.ts';

const LINK_PREFIX = 'cairn_dl_';
export const DOWNLOAD_LINK_DEFAULT_SECONDS = 3600;
export const DOWNLOAD_LINK_MAX_SECONDS = 7 * 86_400;
/** Where the public download endpoint lives; a link's URL is this plus its token. */
export const DOWNLOAD_PATH = '/api/v1/download';

export type DownloadTarget = { kind: 'version'; versionId: number; path: string } | { kind: 'archive'; path: string; asOf: Date };

export interface NewDownloadLink {
  userId: string;
  /** The personal access token making it (its expiry caps the link's); absent on the dashboard. */
  apiToken?: { id: string; expiresAt: Date } | undefined;
  clientId: string;
  target: DownloadTarget;
  expiresInSeconds: number;
}

export interface CreatedDownloadLink {
  id: string;
  /** The secret part of the URL; exists in clear only in this answer. */
  token: string;
  tokenPrefix: string;
  /** `DOWNLOAD_PATH/<token>`, to put after the server's origin. */
  path: string;
  expiresAt: Date;
}

/**
 * A link's full URL: under PUBLIC_URL when it is set (the address people
 * reach, e.g. behind a proxy that rewrites the host), else under the origin
 * the request making it reached (decision 154).
 */
export function downloadLinkUrl(config: Pick<ServerConfig, 'publicUrl' | 'publicUrlConfigured'>, requestOrigin: string, linkPath: string): string {
  return `${(config.publicUrlConfigured ? config.publicUrl : requestOrigin).replace(/\/+$/, '')}${linkPath}`;
}

/** The error for an expiry outside 1 second to 7 days, naming the field; null when it is fine. */
export function expiryError(seconds: number): string | null {
  return Number.isInteger(seconds) && seconds >= 1 && seconds <= DOWNLOAD_LINK_MAX_SECONDS ? null : `from 1 second to 7 days (${DOWNLOAD_LINK_MAX_SECONDS} seconds)`;
}

/** Makes a link; audited as `download-link.create` on the client. */
export async function createDownloadLink(ctx: AppContext, input: NewDownloadLink, actor: Actor, now: Date): Promise<CreatedDownloadLink> {
  const token = LINK_PREFIX + randomBytes(32).toString('base64url');
  const tokenPrefix = token.slice(0, LINK_PREFIX.length + 6);
  let expiresAt = new Date(now.getTime() + input.expiresInSeconds * 1000);
  // A link cannot outlive the token that made it: say so in its expiry rather than surprise later.
  if (input.apiToken && input.apiToken.expiresAt < expiresAt) expiresAt = input.apiToken.expiresAt;
  const { target } = input;
  return ctx.database.db.transaction(async (tx) => {
    const [row] = await tx
      .insert(downloadLinks)
      .values({
        tokenHash: sha256Hex(token),
        tokenPrefix,
        userId: input.userId,
        apiTokenId: input.apiToken?.id ?? null,
        clientId: input.clientId,
        kind: target.kind,
        fileVersionId: target.kind === 'version' ? target.versionId : null,
        path: target.path,
        asOf: target.kind === 'archive' ? target.asOf : null,
        createdAt: now,
        expiresAt,
      })
      .returning({ id: downloadLinks.id });
    if (!row) throw new Error('insert returned no row');
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'download-link.create',
      targetType: 'client',
      targetId: input.clientId,
      details: {
        linkId: row.id,
        tokenPrefix,
        kind: target.kind,
        path: target.path,
        ...(target.kind === 'version' ? { versionId: target.versionId } : { asOf: target.asOf.toISOString() }),
        expiresAt: expiresAt.toISOString(),
        ...(input.apiToken ? { apiTokenId: input.apiToken.id } : {}),
      },
    });
    return { id: row.id, token, tokenPrefix, path: `${DOWNLOAD_PATH}/${token}`, expiresAt };
  });
}

export interface ResolvedDownloadLink {
  id: string;
  tokenPrefix: string;
  userId: string;
  clientId: string;
  clientName: string;
  clientOwnerId: string;
  target: DownloadTarget;
}

export type DownloadLinkLookup =
  | { state: 'unknown' }
  | { state: 'gone'; reason: string; link: Pick<ResolvedDownloadLink, 'id' | 'tokenPrefix' | 'clientId'> }
  | { state: 'valid'; link: ResolvedDownloadLink };

/** What a presented link opens, or why it no longer works (see the module comment for the rules). */
export async function resolveDownloadLink(db: Db, token: string, now: Date): Promise<DownloadLinkLookup> {
  if (!token.startsWith(LINK_PREFIX) || token.length > 100) return { state: 'unknown' };
  const [row] = await db
    .select({
      id: downloadLinks.id,
      tokenPrefix: downloadLinks.tokenPrefix,
      userId: downloadLinks.userId,
      clientId: downloadLinks.clientId,
      kind: downloadLinks.kind,
      fileVersionId: downloadLinks.fileVersionId,
      path: downloadLinks.path,
      asOf: downloadLinks.asOf,
      expiresAt: downloadLinks.expiresAt,
      revokedAt: downloadLinks.revokedAt,
      apiTokenId: downloadLinks.apiTokenId,
      apiTokenRevokedAt: apiTokens.revokedAt,
      apiTokenExpiresAt: apiTokens.expiresAt,
      userDisabled: users.disabled,
      userIsAdmin: users.isAdmin,
      clientName: clients.name,
      clientOwnerId: clients.ownerId,
    })
    .from(downloadLinks)
    .innerJoin(users, eq(users.id, downloadLinks.userId))
    .innerJoin(clients, eq(clients.id, downloadLinks.clientId))
    .leftJoin(apiTokens, eq(apiTokens.id, downloadLinks.apiTokenId))
    .where(eq(downloadLinks.tokenHash, sha256Hex(token)))
    .limit(1);
  if (!row) return { state: 'unknown' };
  const brief = { id: row.id, tokenPrefix: row.tokenPrefix, clientId: row.clientId };
  const t = now.getTime();
  const reason =
    row.expiresAt.getTime() <= t
      ? 'expired'
      : row.revokedAt !== null
        ? 'revoked'
        : row.apiTokenId !== null && row.apiTokenRevokedAt !== null
          ? 'the token that made it was revoked'
          : row.apiTokenId !== null && row.apiTokenExpiresAt !== null && row.apiTokenExpiresAt.getTime() <= t
            ? 'the token that made it expired'
            : row.userDisabled
              ? 'its user is disabled'
              : !row.userIsAdmin && row.clientOwnerId !== row.userId
                ? 'its user can no longer see this client'
                : null;
  if (reason !== null) return { state: 'gone', reason, link: brief };
  const target: DownloadTarget =
    row.kind === 'version' ? { kind: 'version', versionId: row.fileVersionId!, path: row.path } : { kind: 'archive', path: row.path, asOf: row.asOf! };
  return {
    state: 'valid',
    link: { ...brief, userId: row.userId, clientName: row.clientName, clientOwnerId: row.clientOwnerId, target },
  };
}

/** Audits one use of a link (served or refused), and counts a served one. */
export async function recordDownloadLinkUse(
  db: Db,
  link: Pick<ResolvedDownloadLink, 'id' | 'tokenPrefix' | 'clientId'>,
  details: { outcome: 'served' | 'refused'; reason?: string; ip: string; userAgent: string; kind?: string; path?: string },
): Promise<void> {
  await db.transaction(async (tx) => {
    if (details.outcome === 'served') await tx.update(downloadLinks).set({ uses: sql`${downloadLinks.uses} + 1` }).where(eq(downloadLinks.id, link.id));
    await recordAudit(tx, {
      actorUserId: null,
      actorName: `download link ${link.tokenPrefix}`,
      action: 'download-link.use',
      targetType: 'client',
      targetId: link.clientId,
      details: { linkId: link.id, ...details },
    });
  });
}

export interface LiveDownloadLink {
  id: string;
  tokenPrefix: string;
  clientId: string;
  clientName: string;
  kind: 'version' | 'archive';
  path: string;
  versionId: number | null;
  asOf: Date | null;
  createdAt: Date;
  expiresAt: Date;
  uses: number;
  /** The personal access token that made it; null when made on the dashboard. */
  apiTokenName: string | null;
}

/** At most this many are listed; a user rarely has more than a handful alive (7 days at most each). */
export const LIVE_LINKS_LISTED = 500;

/** The user's links that work now (not expired, not revoked, their token alive), newest first. */
export async function listLiveDownloadLinks(db: Db, userId: string, now: Date): Promise<LiveDownloadLink[]> {
  const rows = await db
    .select({
      id: downloadLinks.id,
      tokenPrefix: downloadLinks.tokenPrefix,
      clientId: downloadLinks.clientId,
      clientName: clients.name,
      kind: downloadLinks.kind,
      path: downloadLinks.path,
      versionId: downloadLinks.fileVersionId,
      asOf: downloadLinks.asOf,
      createdAt: downloadLinks.createdAt,
      expiresAt: downloadLinks.expiresAt,
      uses: downloadLinks.uses,
      apiTokenName: apiTokens.name,
    })
    .from(downloadLinks)
    .innerJoin(clients, eq(clients.id, downloadLinks.clientId))
    .leftJoin(apiTokens, eq(apiTokens.id, downloadLinks.apiTokenId))
    .where(
      and(
        eq(downloadLinks.userId, userId),
        isNull(downloadLinks.revokedAt),
        gt(downloadLinks.expiresAt, now),
        or(isNull(downloadLinks.apiTokenId), and(isNull(apiTokens.revokedAt), gt(apiTokens.expiresAt, now))),
      ),
    )
    .orderBy(desc(downloadLinks.createdAt))
    .limit(LIVE_LINKS_LISTED);
  return rows;
}

/**
 * Revokes one live link of the user; NotFoundError when the user has no such
 * live link (another user's link is "no such link" too). Audited as
 * `download-link.revoke` on the link's client.
 */
export async function revokeDownloadLink(ctx: AppContext, userId: string, linkId: string, actor: Actor, now: Date): Promise<void> {
  await ctx.database.db.transaction(async (tx) => {
    const [row] = await tx
      .update(downloadLinks)
      .set({ revokedAt: now })
      .where(and(eq(downloadLinks.id, linkId), eq(downloadLinks.userId, userId), isNull(downloadLinks.revokedAt), gt(downloadLinks.expiresAt, now)))
      .returning({ clientId: downloadLinks.clientId, tokenPrefix: downloadLinks.tokenPrefix, kind: downloadLinks.kind, path: downloadLinks.path });
    if (!row) throw new NotFoundError('no such download link');
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'download-link.revoke',
      targetType: 'client',
      targetId: row.clientId,
      details: { linkId, tokenPrefix: row.tokenPrefix, kind: row.kind, path: row.path, userId },
    });
  });
}

/**
 * Revokes every live personal access token and every live download link of
 * the user, in one transaction; audited with the counts.
 */
export async function revokeAllCredentials(ctx: AppContext, userId: string, actor: Actor, now: Date): Promise<{ tokens: number; links: number }> {
  return ctx.database.db.transaction(async (tx) => {
    const tokens = await tx
      .update(apiTokens)
      .set({ revokedAt: now })
      .where(and(eq(apiTokens.userId, userId), isNull(apiTokens.revokedAt)))
      .returning({ id: apiTokens.id });
    const links = await tx
      .update(downloadLinks)
      .set({ revokedAt: now })
      .where(and(eq(downloadLinks.userId, userId), isNull(downloadLinks.revokedAt), sql`${downloadLinks.expiresAt} > ${now.toISOString()}::timestamptz`))
      .returning({ id: downloadLinks.id });
    const counts = { tokens: tokens.length, links: links.length };
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'user.credentials.revoke-all',
      targetType: 'user',
      targetId: userId,
      details: counts,
    });
    return counts;
  });
}
