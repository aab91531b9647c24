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
  /**
   * The bytes of a content and their true size (the header's size: never the
   * entry's claimed one), or null when they are not available. A stream that
   * fails (damaged bytes) fails the archive.
   */
  openContent(contentSha256: string): Promise<{ size: number; stream: Readable } | null>;
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
  // Set when the download ends early (client gone, error): stops reading the tree and the blob store.
  const stop = new AbortController();
  const strip = source.base === '/' ? 1 : source.base.length + 1;
  (async () => {
    for await (const entry of source.entries) {
      if (stop.signal.aborted) return;
      const header = { name: entry.path.slice(strip), mode: entry.mode & 0o7777, mtime: new Date(entry.mtimeMs) };
      if (entry.kind === 'symlink') {
        await untilDone(stop.signal, (done) => {
          pack.entry({ ...header, type: 'symlink', linkname: entry.linkTarget ?? '' }, done);
        });
        continue;
      }
      if (!entry.contentSha256) continue;
      const content = await source.openContent(entry.contentSha256);
      if (!content) throw new NotFoundError(`the stored content of ${entry.path} is missing`);
      await copyInto(content.stream, pack.entry({ ...header, type: 'file', size: content.size }) as unknown as EntrySink, stop.signal);
    }
    pack.finalize();
  })().catch((error: unknown) => {
    stop.abort();
    pack.destroy(error as Error);
    gzip.destroy(error as Error);
  });
  pack.on('error', (error: Error) => gzip.destroy(error));
  pack.pipe(gzip);
  gzip.on('close', () => {
    stop.abort();
    pack.destroy();
  });
  return gzip;
}

/** The part of a tar-stream entry (a streamx writable) we use. */
interface EntrySink {
  write(chunk: Buffer): boolean;
  end(): void;
  destroy(error?: Error): void;
  on(event: 'finish', listener: () => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  once(event: 'drain', listener: () => void): void;
}

class ArchiveAbortedError extends Error {
  constructor() {
    super('the archive download ended early');
  }
}

/** Resolves when `start`'s callback fires; rejects with ArchiveAbortedError if `signal` aborts first. */
function untilDone(signal: AbortSignal, start: (done: (error?: Error | null) => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new ArchiveAbortedError());
    const onAbort = () => reject(new ArchiveAbortedError());
    signal.addEventListener('abort', onAbort, { once: true });
    start((error) => {
      signal.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve();
    });
  });
}

/**
 * Copies a node stream into a tar entry (a streamx writable), honouring
 * backpressure. An abort ends the copy and destroys `content`, so an
 * abandoned download does not keep a blob stream open.
 */
async function copyInto(content: Readable, sink: EntrySink, signal: AbortSignal): Promise<void> {
  const finished = untilDone(signal, (done) => {
    sink.on('finish', () => done());
    sink.on('error', (error) => done(error));
  });
  finished.catch(() => {}); // observed below; an early abort must not surface as unhandled
  try {
    for await (const chunk of content) {
      if (!sink.write(chunk as Buffer)) await untilDone(signal, (done) => sink.once('drain', () => done()));
    }
  } catch (error) {
    content.destroy();
    sink.destroy(error as Error);
    throw error;
  }
  sink.end();
  await finished;
}
