import path from 'node:path';
import type { Logger } from 'pino';
import type { S3Config, ServerConfig } from '../config/server-config.ts';
import type { BlobStore } from './blob-store.ts';
import { DiskBlobStore } from './disk-blob-store.ts';
import type { S3BlobStore, S3BlobStoreOptions } from './s3-blob-store.ts';

/**
 * The configured blob store: S3 when `config.s3` is set, else files under
 * `DATA_DIR/blobs`. Leftovers of puts interrupted by a crash are swept first:
 * all of them on disk (this process owns the directory), only day-old ones on
 * S3 (other replicas may be uploading right now).
 */
export async function createBlobStore(config: ServerConfig, log: Logger): Promise<BlobStore> {
  return swept(config.s3 ? await s3Store(config.s3) : new DiskBlobStore(path.join(config.dataDir, 'blobs')), log);
}

/** The replica store (decision 161) when REPLICA_DIR or REPLICA_S3_BUCKET is set, swept like the primary; else undefined. */
export async function createReplicaStore(config: ServerConfig, log: Logger): Promise<BlobStore | undefined> {
  const replica = config.replica?.store;
  if (!replica) return undefined;
  return swept(replica.kind === 's3' ? await s3Store(replica.s3) : new DiskBlobStore(replica.dir), log.child({ store: 'replica' }));
}

/**
 * The metadata exports' store (decision 167), beside the replica's packs and
 * never listed by it: `REPLICA_DIR/exports`, or the replica bucket's
 * `exports/` prefix. Undefined without a replica.
 */
export async function createExportStore(config: ServerConfig, log: Logger): Promise<BlobStore | undefined> {
  const replica = config.replica?.store;
  if (!replica) return undefined;
  return swept(
    replica.kind === 's3' ? await s3Store(replica.s3, { keyPrefix: EXPORTS_PREFIX }) : new DiskBlobStore(path.join(replica.dir, 'exports')),
    log.child({ store: 'exports' }),
  );
}

/** The S3 key prefix of the exports in the replica bucket. */
export const EXPORTS_PREFIX = 'exports/';

/**
 * The S3 store, its module (and the AWS SDK, some 240 ms and 20 MiB) loaded
 * only when a bucket is configured: the zero-setup default never needs it (decision 170).
 */
async function s3Store(config: S3Config, options?: S3BlobStoreOptions): Promise<S3BlobStore> {
  const { S3BlobStore: Store } = await import('./s3-blob-store.ts');
  return new Store(config, options);
}

async function swept(store: BlobStore, log: Logger): Promise<BlobStore> {
  try {
    const removed = store.kind === 'disk' ? await store.sweepTemp(0) : await store.sweepTemp();
    // Nothing swept is not news: at info level it would be the one line printed before a database error.
    const level = removed > 0 ? 'info' : 'debug';
    log[level]({ blobStore: store.location, removed }, `swept ${removed} temp leftover(s) from interrupted uploads`);
  } catch (error) {
    // A store that cannot list its leftovers still serves; start anyway and say so.
    log.warn(
      { blobStore: store.location, err: error },
      'could not sweep temp leftovers of interrupted uploads; on S3 add a lifecycle rule AbortIncompleteMultipartUpload',
    );
  }
  return store;
}
