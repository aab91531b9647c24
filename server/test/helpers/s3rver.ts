import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';
import type { S3Config } from '../../src/config/server-config.ts';

export interface RunningS3rver {
  /** `http://127.0.0.1:<port>`, for S3_ENDPOINT. */
  endpoint: string;
  /** A bucket created at start, empty. */
  bucket: string;
  /** s3rver accepts only these fixed credentials (`S3RVER`/`S3RVER`). */
  accessKeyId: string;
  secretAccessKey: string;
  /** Ready to pass as `ServerConfig.s3` (path-style addressing, region us-east-1). */
  s3Config: S3Config;
  /** The same settings as environment variables, for starting a server process. */
  env: Record<string, string>;
  /** Stops the server and removes its data directory. */
  close(): Promise<void>;
}

/**
 * Starts a real S3-protocol server (the npm package `s3rver`) on 127.0.0.1
 * and a free port, silent, storing under a fresh directory in os.tmpdir().
 * Use it wherever a test needs S3: the blob-store contract, server
 * integration tests, the deployment smoke test, benchmarks.
 *
 *   const s3 = await startS3rver();
 *   try { const store = new S3BlobStore(s3.s3Config); ... } finally { await s3.close(); }
 *
 * More buckets: `new CreateBucketCommand({ Bucket })` against `endpoint`
 * with the credentials above. Limits worth knowing: s3rver does not
 * implement ListMultipartUploads, AbortMultipartUpload or UploadPartCopy,
 * and it writes objects in place (real S3 and MinIO publish them atomically).
 */
export async function startS3rver(options: { bucket?: string } = {}): Promise<RunningS3rver> {
  const bucket = options.bucket ?? 'cairn-test';
  const directory = await mkdtemp(path.join(os.tmpdir(), 'cairn-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    // Path-style only: no *.localhost name resolution needed.
    vhostBuckets: false,
    configureBuckets: [{ name: bucket }],
  });
  let address;
  try {
    address = await server.run();
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  const endpoint = `http://127.0.0.1:${address.port}`;
  const accessKeyId = 'S3RVER';
  const secretAccessKey = 'S3RVER';
  const region = 'us-east-1';
  return {
    endpoint,
    bucket,
    accessKeyId,
    secretAccessKey,
    s3Config: { bucket, endpoint, region, forcePathStyle: true, accessKeyId, secretAccessKey },
    env: {
      S3_BUCKET: bucket,
      S3_ENDPOINT: endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
    },
    async close() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
