import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import { Type, type Static } from 'typebox';
import { FilePath, PathPrefix, displayPath } from '@cairn/shared';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { listPathVersions, listRuns, listTreeAsOf } from '../services/backup-repository.ts';
import { openContentForUser } from '../services/content-store.service.ts';
import { clientRestorePoints, clientRetentionRules, prunedPathsAsOf } from '../services/retention.service.ts';
import { type DashboardDeps, renderPage, viewer } from './dashboard-context.ts';
import { createTarGzStream, type TreeEntry } from './tar-export.ts';

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

/** `attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266). */
function attachment(filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

const RESTORE_POINTS_SHOWN = 60;

export const filesRoutes: FastifyPluginAsync<{ deps: DashboardDeps }> = async (app, { deps }) => {
  const { repo, ctx } = deps;

  /** The tree as of `asOf` under `dir`, read a page at a time. */
  async function* treeEntries(clientId: string, dir: string, asOf: Date): AsyncGenerator<TreeEntry> {
    let after: string | undefined;
    for (;;) {
      const page = await listTreeAsOf(ctx.database.db, clientId, { asOf, prefix: dir, after, limit: 500 });
      for (const file of page.files) {
        yield { ...file, contentSha256: file.sha256 };
      }
      if (page.nextAfter === null) return;
      after = page.nextAfter;
    }
  }

  app.get<{ Params: { id: string }; Querystring: TreeQuery }>('/clients/:id/files', { schema: { querystring: TreeQuery } }, async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    const dir = request.query.path ?? '/';
    const { asOf, explicit } = parseAsOf(request.query.asOf ?? '', deps.now());
    const after = request.query.after;
    const listing = await repo.listDirectory(client.id, dir, asOf, { limit: FILE_LIMIT, after });
    const runs = (await listRuns(ctx.database.db, client.id, { limit: 30 })).filter((run) => run.finishedAt !== null);
    const rules = await clientRetentionRules(ctx.database.db, client.id);
    const restorePoints = await clientRestorePoints(ctx.database.db, client.id, rules.restorePoints, deps.now());
    // A tree as of a time that is no kept restore point may lack versions pruning took since (decision 211).
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

  app.get<{ Params: { id: string; versionId: string } }>('/clients/:id/versions/:versionId/download', async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    const versionId = /^\d{1,15}$/.test(request.params.versionId) ? Number(request.params.versionId) : null;
    const version = versionId === null ? null : await repo.findVersion(client.id, versionId);
    if (!version || version.kind !== 'file' || !version.contentSha256) throw new NotFoundError('no such file version');
    const content = await openContentForUser(ctx, client.ownerId, version.contentSha256, { clientId: client.id, log: request.log });
    if (!content) throw new NotFoundError('the stored content of that version is missing');
    // The content's own size, measured when it was stored: a version row claiming another size cannot make this hang.
    return reply
      .header('content-type', 'application/octet-stream')
      .header('content-length', String(content.size))
      .header('content-disposition', attachment(path.posix.basename(version.path)))
      .header('cache-control', 'no-store')
      .send(content.stream);
  });

  app.get<{ Params: { id: string }; Querystring: TreeQuery }>('/clients/:id/archive', { schema: { querystring: TreeQuery } }, async (request, reply) => {
    const client = await repo.getClient(viewer(request), request.params.id);
    const dir = request.query.path ?? '/';
    const { asOf } = parseAsOf(request.query.asOf ?? '', deps.now());
    const base = dir === '/' ? '/' : path.posix.dirname(dir);
    const stamp = asOf.toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-');
    const label = dir === '/' ? 'all' : path.posix.basename(dir);
    const stream = createTarGzStream({
      entries: treeEntries(client.id, dir, asOf),
      openContent: (sha) => openContentForUser(ctx, client.ownerId, sha, { clientId: client.id, log: request.log }),
      base,
    });
    return reply
      .header('content-type', 'application/gzip')
      .header('content-disposition', attachment(`${client.name}-${label}-${stamp}.tar.gz`))
      .header('cache-control', 'no-store')
      .send(stream);
  });
};
