import { createGzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { NotFoundError } from '../errors.ts';

export interface TreeEntry {
  path: string;
  kind: 'file' | 'symlink';
  size: number;
  mtimeMs: number;
  mode: number;
  linkTarget: string | null;
  contentSha256: string | null;
}

export interface TarExportSource {
  /** Entries ordered by path, read lazily (a page at a time). */
  entries: AsyncIterable<TreeEntry>;
  /** The bytes of a content, or null when they are not available. */
  openContent(contentSha256: string): Promise<{ stream: Readable } | null>;
  /** Backed-up path of the exported folder's parent; entry names are relative to it. */
  base: string;
}

/**
 * A folder of the backed-up tree as a gzip-compressed tar stream. Files are
 * streamed from the blob store one after another (never buffered whole);
 * symlinks become symlink entries. Errors destroy the returned stream, which
 * cuts the download off rather than delivering a silently incomplete archive.
 */
export function createTarGzStream(source: TarExportSource): Readable {
  const pack = tar.pack();
  const gzip = createGzip();
  const strip = source.base === '/' ? 1 : source.base.length + 1;
  (async () => {
    for await (const entry of source.entries) {
      const header = { name: entry.path.slice(strip), mode: entry.mode & 0o7777, mtime: new Date(entry.mtimeMs) };
      if (entry.kind === 'symlink') {
        await new Promise<void>((resolve, reject) => {
          pack.entry({ ...header, type: 'symlink', linkname: entry.linkTarget ?? '' }, (error) => (error ? reject(error) : resolve()));
        });
        continue;
      }
      if (!entry.contentSha256) continue;
      const content = await source.openContent(entry.contentSha256);
      if (!content) throw new NotFoundError(`the stored content of ${entry.path} is missing`);
      await copyInto(content.stream, pack.entry({ ...header, type: 'file', size: entry.size }) as unknown as EntrySink);
    }
    pack.finalize();
  })().catch((error: unknown) => {
    pack.destroy(error as Error);
    gzip.destroy(error as Error);
  });
  pack.on('error', (error: Error) => gzip.destroy(error));
  pack.pipe(gzip);
  gzip.on('close', () => pack.destroy());
  return gzip;
}

/** The part of a tar-stream entry (a streamx writable) we use. */
interface EntrySink {
  write(chunk: Buffer): boolean;
  end(): void;
  destroy(error: Error): void;
  on(event: 'finish', listener: () => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  once(event: 'drain', listener: () => void): void;
}

/** Copies a node stream into a tar entry (a streamx writable), honouring backpressure. */
async function copyInto(content: Readable, sink: EntrySink): Promise<void> {
  const finished = new Promise<void>((resolve, reject) => {
    sink.on('finish', () => resolve());
    sink.on('error', reject);
  });
  try {
    for await (const chunk of content) {
      if (!sink.write(chunk as Buffer)) await new Promise<void>((resolve) => sink.once('drain', () => resolve()));
    }
  } catch (error) {
    sink.destroy(error as Error);
    throw error;
  }
  sink.end();
  await finished;
}
