import { Readable, pipeline } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3Config } from '../config/server-config.ts';
import {
  assertBlobKey,
  assertByteRange,
  PACK_KEY_PREFIX,
  packKeyOf,
  type BlobInfo,
  type BlobStore,
  type ByteRange,
  type PutOptions,
} from './blob-store.ts';
import { VerifyingStream } from './verifying-stream.ts';

const PREFIX = 'blobs/';
const OBJECT_KEY = /^blobs\/([a-f0-9]{2})\/([a-f0-9]{2})\/([a-f0-9]{64})$/;
const PACK_OBJECT_KEY = /^packs\/([a-f0-9]{2})\/([a-f0-9]{64})$/;
const KEY_PREFIX = /^(?:[a-z0-9-]+\/)*$/;

export interface S3BlobStoreOptions {
  /**
   * Put every object under this prefix (`exports/` makes `exports/blobs/…`
   * and `exports/packs/…`): a second store in the same bucket whose objects
   * the store without the prefix never lists (the metadata exports beside
   * the replica's packs, decision 167). Empty, or segments of [a-z0-9-] each ending in "/".
   */
  keyPrefix?: string;
}

/**
 * Blobs up to this size are buffered, verified, then sent with one PutObject.
 * Larger ones go through a multipart upload (parts of `S3_PART_BYTES`).
 */
export const S3_SINGLE_PUT_MAX_BYTES = 8 * 1024 * 1024;
export const S3_PART_BYTES = 8 * 1024 * 1024;
/** Parts in flight per large put: memory per put is about (this + 1) x S3_PART_BYTES. */
const PART_CONCURRENCY = 4;
/**
 * Replicas share the bucket, so a multipart upload younger than this may be
 * another replica's live put. 24 h is far longer than any upload takes.
 */
export const S3_DEFAULT_TEMP_AGE_MS = 24 * 60 * 60 * 1000;

/**
 * Blobs as objects `blobs/ab/cd/<sha256>` in one bucket, packs as
 * `packs/ab/<sha256>` beside them.
 *
 * Atomicity and verification come from S3 itself: a small blob is hashed in
 * memory before its single PutObject; a large one is written as a multipart
 * upload straight to its final key, and CompleteMultipartUpload (the moment
 * the object becomes visible, whole) is sent only after the last byte hashed
 * to the expected value. On a mismatch, a too-large body or a source error
 * the upload is aborted and no object ever appears. This needs no temp key
 * and no server-side copy, so there is no 5 GiB CopyObject limit: the limit
 * is S3's own, 10,000 parts x 8 MiB = 78 GiB per blob.
 *
 * A crashed put leaves an incomplete multipart upload (invisible to readers,
 * but billed); `sweepTemp` aborts those, and a bucket lifecycle rule
 * (AbortIncompleteMultipartUpload) is the belt to its braces.
 */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3' as const;
  readonly location: string;
  readonly bucket: string;
  readonly client: S3Client;
  readonly #keyPrefix: string;

  constructor(config: S3Config, options: S3BlobStoreOptions = {}) {
    this.bucket = config.bucket;
    this.#keyPrefix = options.keyPrefix ?? '';
    if (!KEY_PREFIX.test(this.#keyPrefix)) throw new RangeError(`invalid S3 key prefix "${this.#keyPrefix}"`);
    this.location = `s3://${config.bucket}/${this.#keyPrefix}${PREFIX}${config.endpoint ? ` at ${config.endpoint}` : ''}`;
    this.client = new S3Client({
      region: config.region,
      endpoint: config.endpoint,
      forcePathStyle: config.forcePathStyle,
      // Unset: the SDK's default chain (instance role, profile, web identity).
      credentials:
        config.accessKeyId !== undefined && config.secretAccessKey !== undefined
          ? { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey }
          : undefined,
      // The SDK's default extra CRC checksums break many S3-compatible servers;
      // the bytes are verified by their SHA-256 here anyway.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** The object key for a blob key. */
  objectKeyOf(key: string): string {
    const sha256 = assertBlobKey(key);
    if (sha256 !== key) return `${this.#keyPrefix}${PACK_KEY_PREFIX}${sha256.slice(0, 2)}/${sha256}`;
    return `${this.#keyPrefix}${PREFIX}${key.slice(0, 2)}/${key.slice(2, 4)}/${key}`;
  }

  async put(key: string, source: Readable, expectedSha256: string, options: PutOptions = {}): Promise<BlobInfo> {
    const objectKey = this.objectKeyOf(key);
    const verifier = new VerifyingStream(expectedSha256, { maxBytes: options.maxBytes, observe: options.observe, callerHashed: options.callerHashed });
    // Errors (source, too large, mismatch) surface through reading `verifier`.
    pipeline(source, verifier, () => undefined);
    const chunks = verifier[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let streamError: unknown;
    try {
      const head: Buffer[] = [];
      let headBytes = 0;
      while (headBytes <= S3_SINGLE_PUT_MAX_BYTES) {
        const next = await chunks.next();
        if (next.done) {
          // The verifier only ends cleanly when the hash matched.
          const body = Buffer.concat(head, headBytes);
          await this.client.send(
            new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: body, ContentLength: headBytes }),
          );
          return { key, size: headBytes };
        }
        head.push(next.value);
        headBytes += next.value.length;
      }
      const body = Readable.from(
        (async function* () {
          yield* head;
          head.length = 0;
          try {
            for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
          } catch (error) {
            streamError = error;
            throw error;
          }
        })(),
        // One chunk of read-ahead: the Upload's part buffers are the only big ones.
        { highWaterMark: 1 },
      );
      // Upload completes only after `body` ends cleanly, i.e. after the hash matched;
      // any body error makes it abort the multipart upload instead.
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: objectKey, Body: body },
        partSize: S3_PART_BYTES,
        queueSize: PART_CONCURRENCY,
      });
      await upload.done();
      return { key, size: verifier.bytes };
    } catch (error) {
      verifier.destroy();
      // Prefer the cause (mismatch, too large, source error) over a failed abort that followed it.
      throw streamError ?? error;
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable | null> {
    if (range) assertByteRange(range);
    const objectKey = this.objectKeyOf(key);
    // HTTP cannot ask for zero bytes (`bytes=5-4` is ignored and returns the whole object): ask whether it exists.
    if (range && range.start === range.end) return (await this.stat(key)) ? Readable.from([]) : null;
    try {
      const response = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          ...(range && { Range: `bytes=${range.start}-${range.end - 1}` }),
        }),
      );
      if (!(response.Body instanceof Readable)) throw new Error('S3 GetObject returned no readable body');
      if (range && response.ContentLength !== undefined && response.ContentLength > range.end - range.start) {
        // A server that ignored the Range header: never hand out bytes outside the range.
        response.Body.destroy();
        throw new Error(`S3 GetObject of ${objectKey} ignored the Range header`);
      }
      return response.Body;
    } catch (error) {
      if (isNotFound(error)) return null;
      // 416: the object exists but the range starts at or past its end (or it is empty).
      if (range && isRangeNotSatisfiable(error)) return Readable.from([]);
      throw error;
    }
  }

  async stat(key: string): Promise<BlobInfo | null> {
    try {
      const response = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKeyOf(key) }));
      return { key, size: response.ContentLength ?? 0 };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKeyOf(key) }));
  }

  /** Pages through ListObjectsV2 (1,000 keys a page) under `blobs/`, then `packs/`; memory stays flat. */
  async *list(): AsyncIterable<BlobInfo> {
    for await (const object of this.#listObjects(PREFIX)) {
      const match = object.Key === undefined ? null : OBJECT_KEY.exec(object.Key);
      const key = match?.[3];
      if (key === undefined || key.slice(0, 2) !== match?.[1] || key.slice(2, 4) !== match[2]) continue;
      yield { key, size: object.Size ?? 0 };
    }
    for await (const object of this.#listObjects(PACK_KEY_PREFIX)) {
      const match = object.Key === undefined ? null : PACK_OBJECT_KEY.exec(object.Key);
      const sha256 = match?.[2];
      if (sha256 === undefined || sha256.slice(0, 2) !== match?.[1]) continue;
      yield { key: packKeyOf(sha256), size: object.Size ?? 0 };
    }
  }

  async *#listObjects(prefix: string): AsyncIterable<{ Key?: string; Size?: number }> {
    let continuationToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.#keyPrefix}${prefix}`, ContinuationToken: continuationToken }),
      );
      // Keys are yielded without the store's own prefix, as if it were the bucket's root.
      for (const object of page.Contents ?? []) yield { Key: object.Key?.slice(this.#keyPrefix.length), Size: object.Size };
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken !== undefined);
  }

  /**
   * Aborts incomplete multipart uploads under `blobs/` and `packs/` started more than
   * `olderThanMs` ago. Throws when the server cannot list multipart uploads
   * (s3rver cannot; AWS S3 and MinIO can).
   */
  async sweepTemp(olderThanMs = S3_DEFAULT_TEMP_AGE_MS): Promise<number> {
    let removed = 0;
    for (const prefix of [PREFIX, PACK_KEY_PREFIX]) removed += await this.#abortUploadsUnder(`${this.#keyPrefix}${prefix}`, Date.now() - olderThanMs);
    return removed;
  }

  async #abortUploadsUnder(prefix: string, cutoff: number): Promise<number> {
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: prefix,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      );
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined) continue;
        if (upload.Initiated !== undefined && upload.Initiated.getTime() > cutoff) continue;
        await this.client.send(
          new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }),
        );
        removed += 1;
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
    return removed;
  }

  /** HeadBucket: proves the endpoint answers, the credentials work and the bucket exists (it is never created here). */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const reason = status === 404 ? 'the bucket does not exist' : status === 403 ? 'access denied' : String(error);
      throw new Error(`S3 blob store ${this.location} is not usable: ${reason}`, { cause: error });
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

function isRangeNotSatisfiable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 416 || ('name' in error && error.name === 'InvalidRange');
}

function isNotFound(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const name = 'name' in error ? error.name : undefined;
  return name === 'NoSuchKey' || name === 'NotFound';
}
