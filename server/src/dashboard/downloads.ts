/**
 * The two downloads, one file version and a folder's tree as a .tar.gz, as
 * replies: shared by the dashboard's routes (session) and the public
 * download-link endpoint (no session), so both send the same bytes, verified
 * the same way (openContentForUser checks every chunk as it streams).
 */
import path from 'node:path';
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import type { AppContext } from '../app-context.ts';
import { NotFoundError } from '../errors.ts';
import { listTreeAsOf } from '../services/backup-repository.ts';
import { openContentForUser } from '../services/content-store.service.ts';
import { createTarGzStream, type TreeEntry } from './tar-export.ts';

/** `attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266). */
export function attachment(filename: string): string {
  const fallback = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

interface ClientRef {
  id: string;
  name: string;
  ownerId: string;
}

/** The tree as of `asOf` under `dir`, read a page at a time. */
async function* treeEntries(ctx: AppContext, clientId: string, dir: string, asOf: Date): AsyncGenerator<TreeEntry> {
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

/** Sends one file version's bytes; NotFoundError when its stored content is missing. */
export async function sendVersion(
  ctx: AppContext,
  reply: FastifyReply,
  client: ClientRef,
  version: { path: string; contentSha256: string },
  log: FastifyBaseLogger,
): Promise<FastifyReply> {
  const content = await openContentForUser(ctx, client.ownerId, version.contentSha256, { clientId: client.id, log });
  if (!content) throw new NotFoundError('the stored content of that version is missing');
  // The content's own size, measured when it was stored: a version row claiming another size cannot make this hang.
  return reply
    .header('content-type', 'application/octet-stream')
    .header('content-length', String(content.size))
    .header('content-disposition', attachment(path.posix.basename(version.path)))
    .header('cache-control', 'no-store')
    .send(content.stream);
}

/** Sends the tree under `dir` as of `asOf` as a streamed .tar.gz. */
export function sendArchive(ctx: AppContext, reply: FastifyReply, client: ClientRef, dir: string, asOf: Date, log: FastifyBaseLogger): FastifyReply {
  const base = dir === '/' ? '/' : path.posix.dirname(dir);
  const stamp = asOf.toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-');
  const label = dir === '/' ? 'all' : path.posix.basename(dir);
  const stream = createTarGzStream({
    entries: treeEntries(ctx, client.id, dir, asOf),
    openContent: (sha) => openContentForUser(ctx, client.ownerId, sha, { clientId: client.id, log }),
    base,
  });
  return reply
    .header('content-type', 'application/gzip')
    .header('content-disposition', attachment(`${client.name}-${label}-${stamp}.tar.gz`))
    .header('cache-control', 'no-store')
    .send(stream);
}
