import { createGzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { FileKind } from '@cairn/shared';
import { NotFoundError } from '../errors.ts';

export interface TreeEntry {
  path: string;
  kind: FileKind;
  size: number;
  mtimeMs: number;
  mode: number;
  linkTarget: string | null;
  contentSha256: string | null;
  uid?: number | null;
  gid?: number | null;
  hardlinkGroup?: string | null;
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
 * symlinks become symlink entries, directories directory entries (before
 * their contents: entries come in path order, and tar sets a directory's
 * mode and mtime after extracting what is in it). A file of a hard-link group
 * whose first member (in path order) is already in the archive with the same
 * content becomes a tar hard link to it. Owners are numeric ids. Errors
 * destroy the returned stream, which cuts the download off rather than
 * delivering a silently incomplete archive.
 */
export function createTarGzStream(source: TarExportSource): Readable {
  const pack = tar.pack();
  const gzip = createGzip();
  // Set when the download ends early (client gone, error): stops reading the tree and the blob store.
  const stop = new AbortController();
  const strip = source.base === '/' ? 1 : source.base.length + 1;
  // Hard-link group and content -> the name its first member got in this archive.
  const linked = new Map<string, string>();
  (async () => {
    for await (const entry of source.entries) {
      if (stop.signal.aborted) return;
      const name = entry.path.slice(strip);
      const header = {
        name,
        mode: entry.mode & 0o7777,
        mtime: new Date(entry.mtimeMs),
        ...(entry.uid != null ? { uid: entry.uid } : {}),
        ...(entry.gid != null ? { gid: entry.gid } : {}),
      };
      const linkOnly = (extra: { type: 'symlink' | 'directory' | 'link'; linkname?: string; name?: string }) =>
        untilDone(stop.signal, (done) => {
          pack.entry({ ...header, ...extra }, done);
        });
      if (entry.kind === 'symlink') {
        await linkOnly({ type: 'symlink', linkname: entry.linkTarget ?? '' });
        continue;
      }
      if (entry.kind === 'directory') {
        await linkOnly({ type: 'directory', name: `${name}/` });
        continue;
      }
      if (!entry.contentSha256) continue;
      if (entry.hardlinkGroup) {
        const key = `${entry.hardlinkGroup}:${entry.contentSha256}`;
        const first = linked.get(key);
        if (first !== undefined) {
          await linkOnly({ type: 'link', linkname: first });
          continue;
        }
        linked.set(key, name);
      }
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
