/**
 * The public end of temporary download links (issue 14): GET
 * /api/v1/download/<token>, no session and no bearer token, the URL itself
 * is the credential. Unknown: 404; expired, revoked or otherwise no longer
 * valid: 410 saying why; a version since pruned by retention: 410 too.
 * Every use of a known link, served or refused, is audited
 * (`download-link.use`). The bytes go through the same replies as the
 * dashboard's downloads, checked chunk by chunk as they stream.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AppContext } from '../app-context.ts';
import { createDashboardRepository } from '../dashboard/dashboard.repository.ts';
import { sendArchive, sendVersion } from '../dashboard/downloads.ts';
import { AppError, NotFoundError } from '../errors.ts';
import { recordDownloadLinkUse, resolveDownloadLink } from '../services/download-links.service.ts';
import { AdminError } from './admin-api.schemas.ts';

export class GoneError extends AppError {
  constructor(message: string) {
    super(410, message);
  }
}

const TokenParams = Type.Object({ token: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_-]+$' }) });

export const downloadLinkRoutes: FastifyPluginAsyncTypebox<{ ctx: AppContext; now?: () => Date }> = async (app, { ctx, now: clock }) => {
  const now = clock ?? (() => new Date());
  const db = ctx.database.db;
  const repo = createDashboardRepository(db);

  app.get(
    '/:token',
    {
      schema: {
        tags: ['download'],
        summary: 'Download through a temporary link: a file version, or a folder archive (.tar.gz); no authentication, the URL is the credential',
        params: TokenParams,
        response: {
          200: { description: 'The bytes: application/octet-stream (a version) or application/gzip (an archive)', type: 'string', format: 'binary' },
          400: AdminError,
          404: AdminError,
          410: AdminError,
        },
      },
    },
    async (request, reply) => {
      const found = await resolveDownloadLink(db, request.params.token, now());
      if (found.state === 'unknown') throw new NotFoundError('no such download link');
      const who = { ip: request.ip, userAgent: String(request.headers['user-agent'] ?? '').slice(0, 200) };
      if (found.state === 'gone') {
        await recordDownloadLinkUse(db, found.link, { outcome: 'refused', reason: found.reason, ...who });
        throw new GoneError(`this download link no longer works: ${found.reason}`);
      }
      const { link } = found;
      const client = { id: link.clientId, name: link.clientName, ownerId: link.clientOwnerId };
      if (link.target.kind === 'version') {
        const version = await repo.findVersion(link.clientId, link.target.versionId);
        if (!version || version.kind !== 'file' || !version.contentSha256) {
          await recordDownloadLinkUse(db, link, { outcome: 'refused', reason: 'version no longer kept', ...who });
          throw new GoneError('this download link no longer works: the version is no longer kept');
        }
        await recordDownloadLinkUse(db, link, { outcome: 'served', kind: 'version', path: version.path, ...who });
        return sendVersion(ctx, reply, client, { path: version.path, contentSha256: version.contentSha256 }, request.log);
      }
      await recordDownloadLinkUse(db, link, { outcome: 'served', kind: 'archive', path: link.target.path, ...who });
      return sendArchive(ctx, reply, client, link.target.path, link.target.asOf, request.log);
    },
  );
};
