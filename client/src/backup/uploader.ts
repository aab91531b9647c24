import { createHash, randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { LIMITS, partFilename, type SimilarHint, type UploadResult } from '@cairn/shared';
import type { ApiClient } from '../net/api-client.ts';
import { FileChangedError, READ_BYTES, openNoFollow } from './file-hasher.ts';

/**
 * One part to upload: `size` bytes of `path` from `offset` (0: a whole
 * file), which hashed to `sha256`; the file had `fileSize` bytes (default:
 * `size`) and this mtime when it was hashed. A chunk of a large file is a
 * range of it.
 */
export interface UploadItem {
  sha256: string;
  size: number;
  path: string;
  mtimeMs: number;
  offset?: number;
  fileSize?: number;
  /** The previous version of this file, for the server to store the bytes as deltas against (decision 171). */
  similar?: SimilarHint;
  /**
   * The part's bytes, kept from when they were hashed (decision 202): sent
   * as they are, without opening the file. What was hashed is what is sent.
   */
  bytes?: Uint8Array;
}

export interface UploadOutcome {
  /** Content hashes the server now holds for this user (stored or existing). */
  uploaded: UploadResult[];
  /** Items whose file changed under us: the caller re-hashes them. */
  changed: UploadItem[];
}

/**
 * Sends one multipart request with a part per item (field name = SHA-256).
 * Each part is read with large reads (positioned, from its offset) and
 * streamed, never buffered whole; its bytes are hashed on the way and the
 * part is only closed when they still hash to what was declared. Parts of
 * the same file one after another (the chunks of a large file) share one
 * open descriptor. A file that changed aborts the request: the
 * server never sees the end of that part and keeps nothing of it. The caller
 * then asks again what is missing (parts before it may have been stored).
 * A part with its bytes in hand (a small file's, kept from hashing) is sent
 * from them: nothing is opened, and it cannot have changed.
 */
export async function uploadBatch(
  api: ApiClient,
  runId: string,
  items: readonly UploadItem[],
  onBytes: (bytes: number) => void,
): Promise<UploadOutcome> {
  const boundary = `cairn-${randomBytes(12).toString('hex')}`;
  let changedItem: UploadItem | undefined;
  async function* body(): AsyncGenerator<Uint8Array> {
    const files = new OpenFiles();
    try {
      for (const item of items) {
        yield Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="${item.sha256}"; filename="${partFilename(item.sha256, item.similar)}"\r\n` +
            `Content-Type: application/octet-stream\r\n\r\n`,
        );
        if (item.bytes !== undefined) {
          onBytes(item.bytes.length);
          if (item.bytes.length > 0) yield item.bytes;
        } else {
          try {
            yield* partBytes(await files.open(item), item, onBytes);
          } catch (error) {
            if (error instanceof FileChangedError) changedItem = item;
            throw error;
          }
        }
        yield Buffer.from('\r\n');
      }
      yield Buffer.from(`--${boundary}--\r\n`);
    } finally {
      await files.close();
    }
  }
  try {
    const response = await api.upload({ runId }, boundary, body());
    return { uploaded: response.results, changed: [] };
  } catch (error) {
    if (changedItem !== undefined) return { uploaded: [], changed: [changedItem] };
    throw error;
  }
}

/** The one file a request is reading, kept open while its next part is from the same file (checked once per open). */
class OpenFiles {
  #path: string | undefined;
  #handle: FileHandle | undefined;

  async open(item: UploadItem): Promise<FileHandle> {
    if (this.#handle !== undefined && this.#path === item.path) return this.#handle;
    await this.close();
    let handle: FileHandle;
    try {
      handle = await openNoFollow(item.path);
    } catch (error) {
      throw new FileChangedError(item.path, `cannot open: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    this.#handle = handle;
    this.#path = item.path;
    const stats = await handle.stat();
    if (stats.size !== (item.fileSize ?? item.size) || stats.mtimeMs !== item.mtimeMs) throw new FileChangedError(item.path, 'size or mtime differ from when it was hashed');
    return handle;
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    this.#path = undefined;
    await handle?.close();
  }
}

async function* partBytes(handle: FileHandle, item: UploadItem, onBytes: (bytes: number) => void): AsyncGenerator<Uint8Array> {
  const hash = createHash('sha256');
  let position = item.offset ?? 0;
  let remaining = item.size;
  while (remaining > 0) {
    // A fresh buffer per read: the previous one may still be queued on the socket.
    const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, remaining));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) throw new FileChangedError(item.path, 'shorter than when it was hashed');
    const chunk = buffer.subarray(0, bytesRead);
    hash.update(chunk);
    position += bytesRead;
    remaining -= bytesRead;
    onBytes(bytesRead);
    yield chunk;
  }
  if (hash.digest('hex') !== item.sha256) throw new FileChangedError(item.path, 'content no longer matches its hash');
}

export const UPLOAD_LIMITS = { maxBytes: LIMITS.uploadBatchBytes, maxParts: LIMITS.uploadParts };
