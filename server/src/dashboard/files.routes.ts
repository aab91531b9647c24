import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { Type, type Static } from 'typebox';
import { FilePath, LIMITS, PathPrefix, displayPath, isCanonicalBackupPath, parseDuration } from '@cairn/shared';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { listPathVersions, listRuns } from '../services/backup-repository.ts';
import { createDownloadLink, downloadLinkUrl, expiryError, type DownloadTarget } from '../services/download-links.service.ts';
import { clientRestorePoints, clientRetentionRules, prunedPathsAsOf } from '../services/retention.service.ts';
import { actorOf, type DashboardDeps, field, renderPage, viewer } from './dashboard-context.ts';
import { sendArchive, sendVersion } from './downloads.ts';
import { fileSearchPatterns, SEARCH_TERM_MAX } from './file-search.ts';

const FILE_LIMIT = 2000;

/**
 * The query of the tree pages, validated like the agent API's (400 naming the
 * parameter, never a silent fallback to the root): `path` a canonical folder
 * or `/` (default `/`), `after` the canonical path a page ends with, `asOf`
 * read by parseAsOf.
 */
const TreeQuery = Type.Object({
  path: Type.Optional(PathPrefix),
  after: Type.Optional(FilePath),
  asOf: Type.Optional(Type.String({ maxLength: 64 })),
});
type TreeQuery = Static<typeof TreeQuery>;
const VersionsQuery = Type.Object({ path: FilePath });
type VersionsQuery = Static<typeof VersionsQuery>;
/** A page key of the search and deleted views: the id of the last path shown. */
const PathIdKey = Type.String({ pattern: '^[1-9][0-9]{0,14}$' });
const SearchQuery = Type.Object({ q: Type.Optional(Type.String({ maxLength: 1000 })), after: Type.Optional(PathIdKey) });
type SearchQuery = Static<typeof SearchQuery>;
const DeletedQuery = Type.Object({ path: Type.Optional(PathPrefix), before: Type.Optional(PathIdKey) });
type DeletedQuery = Static<typeof DeletedQuery>;
const SEARCH_PAGE_SIZE = 100;
const DELETED_PAGE_SIZE = 100;

/**
 * `?asOf=`: an ISO time, or the `YYYY-MM-DDTHH:MM` of a datetime-local input
 * read as UTC (the page says so). Absent or empty: now. Unreadable: a 400.
 */
export function parseAsOf(text: string, now: Date): { asOf: Date; explicit: boolean } {
  const trimmed = text.trim();
  if (trimmed === '') return { asOf: now, explicit: false };
  const withZone = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(trimmed) ? `${trimmed}Z` : trimmed;
  const parsed = new Date(withZone);
  if (Number.isNaN(parsed.getTime())) throw new BadRequestError(`asOf: not a time: ${JSON.stringify(trimmed)}; use an ISO time such as 2026-11-20T18:00Z`);
  return { asOf: parsed, explicit: true };
}

function breadcrumbs(dir: string): { name: string; path: string }[] {
  const crumbs = [{ name: 'All files', path: '/' }];
  let current = '';
  for (const part of dir.split('/').filter(Boolean)) {
    current += '/' + part;
    crumbs.push({ name: part, path: current });
  }
  return crumbs;
}

const RESTORE_POINTS_SHOWN = 60;

export const filesRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const { repo, ctx } = deps;

  app.get<{ Params: { id: string }; Querystring: TreeQuery }>('/clients/:id/files', { schema: { querystring: TreeQuery } }, async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    const dir = request.query.path ?? '/';
    const { asOf, explicit } = parseAsOf(request.query.asOf ?? '', deps.now());
    const after = request.query.after;
    const listing = await repo.listDirectory(client.id, dir, asOf, { limit: FILE_LIMIT, after });
    const runs = (await listRuns(ctx.database.db, client.id, { limit: 30 })).filter((run) => run.finishedAt !== null);
    const rules = await clientRetentionRules(ctx.database.db, client.id);
    const restorePoints = await clientRestorePoints(ctx.database.db, client.id, rules.restorePoints, deps.now());
    // A tree as of a time that is no kept restore point may lack versions pruning took since (decision 135).
    const isRestorePoint = restorePoints.some((point) => point.finishedAt.getTime() === asOf.getTime());
    const incomplete = explicit && !isRestorePoint ? { prunedFiles: await prunedPathsAsOf(ctx.database.db, client.id, asOf, dir) } : null;
    return renderPage(request, reply, deps, 'client-files', {
      title: `${client.name}: files`,
      nav: 'clients',
      tab: 'files',
      client,
      dir,
      parent: dir === '/' ? null : path.posix.dirname(dir),
      crumbs: breadcrumbs(dir),
      asOf,
      asOfParam: explicit ? asOf.toISOString() : '',
      asOfInput: asOf.toISOString().slice(0, 16),
      explicit,
      listing,
      after: after ?? null,
      runs,
      restorePoints: restorePoints.slice(0, RESTORE_POINTS_SHOWN),
      restorePointsTotal: restorePoints.length,
      isRestorePoint,
      incomplete,
    });
  });

  app.get<{ Params: { id: string }; Querystring: VersionsQuery }>('/clients/:id/versions', { schema: { querystring: VersionsQuery } }, async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    const filePath = request.query.path;
    const versions = await listPathVersions(ctx.database.db, client.id, filePath);
    if (versions.length === 0) throw new NotFoundError('no versions of that path');
    return renderPage(request, reply, deps, 'client-versions', {
      title: `${client.name}: ${displayPath(path.posix.basename(filePath))}`,
      nav: 'clients',
      tab: 'files',
      client,
      filePath,
      dir: path.posix.dirname(filePath),
      crumbs: breadcrumbs(filePath),
      versions,
    });
  });

  // File search across every retained version (decision 159): 100 paths a page, `after` the last path id shown.
  app.get<{ Params: { id: string }; Querystring: SearchQuery }>('/clients/:id/search', { schema: { querystring: SearchQuery } }, async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    const q = field(request.query, 'q');
    const after = request.query.after === undefined ? undefined : Number(request.query.after);
    const patterns = q.trim() === '' ? null : fileSearchPatterns(q);
    if (patterns !== null && 'error' in patterns) throw new BadRequestError(`q: ${patterns.error}`);
    if (after !== undefined && !(await repo.isClientPath(client.id, after))) throw new BadRequestError('after: not a path of this client');
    const found = patterns === null ? { hits: [], nextAfter: null } : await repo.searchPaths(client.id, patterns, { limit: SEARCH_PAGE_SIZE, after });
    return renderPage(request, reply, deps, 'client-search', {
      title: `${client.name}: find files`,
      nav: 'clients',
      tab: 'files',
      client,
      q,
      maxLength: SEARCH_TERM_MAX,
      error: null,
      searched: patterns !== null,
      hits: found.hits,
      nextAfter: found.nextAfter,
      paged: after !== undefined,
    });
  });

  // Paths deleted by a backup whose last version is kept (decision 160), newest deletion first.
  app.get<{ Params: { id: string }; Querystring: DeletedQuery }>('/clients/:id/deleted', { schema: { querystring: DeletedQuery } }, async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    const dir = request.query.path ?? '/';
    const before = request.query.before === undefined ? undefined : Number(request.query.before);
    if (before !== undefined && !(await repo.isClientPath(client.id, before))) throw new BadRequestError('before: not a path of this client');
    const { deleted, nextBefore } = await repo.listDeletedPaths(client.id, dir, { limit: DELETED_PAGE_SIZE, before });
    const [latest] = await listRuns(ctx.database.db, client.id, { limit: 1 });
    return renderPage(request, reply, deps, 'client-deleted', {
      title: `${client.name}: deleted files`,
      nav: 'clients',
      tab: 'files',
      client,
      dir,
      deleted,
      nextBefore,
      paged: before !== undefined,
      latestRunStartedAt: latest ? new Date(latest.startedAt) : null,
    });
  });

  app.get<{ Params: { id: string; versionId: string } }>('/clients/:id/versions/:versionId/download', async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    const versionId = /^\d{1,15}$/.test(request.params.versionId) ? Number(request.params.versionId) : null;
    const version = versionId === null ? null : await repo.findVersion(client.id, versionId);
    if (!version || version.kind !== 'file' || !version.contentSha256) throw new NotFoundError('no such file version');
    return sendVersion(ctx, reply, client, { path: version.path, contentSha256: version.contentSha256 }, request.log);
  });

  app.get<{ Params: { id: string }; Querystring: TreeQuery }>('/clients/:id/archive', { schema: { querystring: TreeQuery } }, async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    const dir = request.query.path ?? '/';
    const { asOf } = parseAsOf(request.query.asOf ?? '', deps.now());
    return sendArchive(ctx, reply, client, dir, asOf, request.log);
  });
  /**
   * Makes a temporary download link (issue 14) for one version (`versionId`)
   * or a folder's tree (`folder`, `asOf`), valid for `expires` ("1h", "1d",
   * "7d"...; default 1 hour). The URL is shown once, on the page answering
   * the POST, never through a redirect.
   */
  app.post<{ Params: { id: string } }>('/clients/:id/download-links', async (request, reply) => {
    const user = viewer(request);
    const client = await repo.getClient(user, request.params.id);
    const expiresText = field(request.body, 'expires').trim() || '1h';
    const seconds = parseDuration(expiresText);
    const expiry = seconds === null ? 'a duration such as 1h, 1d or 7d' : expiryError(seconds);
    if (expiry) throw new BadRequestError(`expires: ${expiry}`);
    const versionText = field(request.body, 'versionId').trim();
    let target: DownloadTarget;
    if (versionText !== '') {
      const version = /^\d{1,15}$/.test(versionText) ? await repo.findVersion(client.id, Number(versionText)) : null;
      if (!version || version.kind !== 'file' || !version.contentSha256) throw new NotFoundError('no such file version');
      target = { kind: 'version', versionId: version.id, path: version.path };
    } else {
      const folder = field(request.body, 'folder').trim() || '/';
      if (folder !== '/' && !isCanonicalBackupPath(folder, LIMITS.pathBytes)) throw new BadRequestError(`folder: not a canonical absolute path: ${JSON.stringify(folder)}`);
      const { asOf } = parseAsOf(field(request.body, 'asOf'), deps.now());
      target = { kind: 'archive', path: folder, asOf };
    }
    const link = await createDownloadLink(ctx, { userId: user.id, clientId: client.id, target, expiresInSeconds: seconds! }, actorOf(user), deps.now());
    return renderPage(request, reply, deps, 'download-link', {
      title: `${client.name}: download link`,
      nav: 'clients',
      client,
      target,
      url: downloadLinkUrl(ctx.config, `${request.protocol}://${request.host}`, link.path),
      expiresAt: link.expiresAt,
      back: target.kind === 'version' ? `/clients/${client.id}/versions?${new URLSearchParams({ path: target.path })}` : `/clients/${client.id}/files?${new URLSearchParams({ path: target.path })}`,
    });
  });
};
