import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '@cairn/shared';
import { createBlobStore } from '../../src/blob/create-blob-store.ts';
import { DiskBlobStore } from '../../src/blob/disk-blob-store.ts';
import { loadServerConfig } from '../../src/config/server-config.ts';
import { S3BlobStore } from '../../src/blob/s3-blob-store.ts';
import { StorageFullError } from '../../src/errors.ts';
import { startS3rver, type RunningS3rver } from '../helpers/s3rver.ts';
import { describeBlobStoreContract } from './blob-store.contract.ts';

const run = promisify(execFile);

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath, entry.name));
}

describeBlobStoreContract('disk', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-blobs-'));
  const store = new DiskBlobStore(path.join(dir, 'blobs'));
  return {
    store,
    rawEntries: () => filesUnder(dir),
    async plantTempLeftover() {
      await mkdir(store.tempDir, { recursive: true });
      await writeFile(path.join(store.tempDir, randomUUID()), randomBytes(100));
    },
    async close() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('S3 blob store on s3rver', () => {
  let s3: RunningS3rver;
  let admin: S3Client;

  beforeAll(async () => {
    s3 = await startS3rver();
    admin = new S3Client({
      region: s3.s3Config.region,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
  });

  afterAll(async () => {
    admin?.destroy();
    await s3?.close();
  });

  // A bucket per test keeps every case's "nothing left behind" check honest.
  describeBlobStoreContract('s3', async () => {
    const bucket = `cairn-${randomUUID()}`;
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    const store = new S3BlobStore({ ...s3.s3Config, bucket });
    return {
      store,
      async rawEntries() {
        const keys: string[] = [];
        let token: string | undefined;
        do {
          const page = await admin.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
          keys.push(...(page.Contents ?? []).map((object) => object.Key ?? ''));
          token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (token !== undefined);
        return keys;
      },
      // Leftovers on S3 are incomplete multipart uploads, which only ListMultipartUploads can see.
      plantTempLeftover: 's3rver does not implement ListMultipartUploads, so sweepTemp cannot run against it',
      // s3rver answers `Content-Range: bytes 0-0/0` with no body byte, and the client waits for that byte forever.
      rangedEmptyObjectGap: 's3rver announces one byte for a ranged get of an empty object and sends none',
      async close() {
        await store.close();
      },
    };
  });

  // The metadata exports' store (decision 167): the same contract under a key prefix of the replica's bucket.
  describeBlobStoreContract('s3 under a key prefix', async () => {
    const bucket = `cairn-${randomUUID()}`;
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    const store = new S3BlobStore({ ...s3.s3Config, bucket }, { keyPrefix: 'exports/' });
    return {
      store,
      async rawEntries() {
        const page = await admin.send(new ListObjectsV2Command({ Bucket: bucket }));
        return (page.Contents ?? []).map((object) => object.Key ?? '');
      },
      plantTempLeftover: 's3rver does not implement ListMultipartUploads, so sweepTemp cannot run against it',
      rangedEmptyObjectGap: 's3rver announces one byte for a ranged get of an empty object and sends none',
      async close() {
        await store.close();
      },
    };
  });

  it('keeps a prefixed store and the bucket-root store apart: neither lists, reads or deletes the other one\'s objects', async () => {
    const bucket = `cairn-${randomUUID()}`;
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    const root = new S3BlobStore({ ...s3.s3Config, bucket });
    const exports = new S3BlobStore({ ...s3.s3Config, bucket }, { keyPrefix: 'exports/' });
    try {
      const a = Buffer.from('in the root store');
      const b = Buffer.from('in the exports store');
      await root.put(sha256Hex(a), Readable.from([a]), sha256Hex(a));
      await exports.put(sha256Hex(b), Readable.from([b]), sha256Hex(b));
      const keysOf = async (store: S3BlobStore) => {
        const keys: string[] = [];
        for await (const info of store.list()) keys.push(info.key);
        return keys;
      };
      expect(await keysOf(root)).toEqual([sha256Hex(a)]);
      expect(await keysOf(exports)).toEqual([sha256Hex(b)]);
      expect(await root.get(sha256Hex(b))).toBeNull();
      expect(await exports.stat(sha256Hex(a))).toBeNull();
      const listed = await admin.send(new ListObjectsV2Command({ Bucket: bucket }));
      expect((listed.Contents ?? []).map((o) => o.Key).sort()).toEqual(
        [`blobs/${sha256Hex(a).slice(0, 2)}/${sha256Hex(a).slice(2, 4)}/${sha256Hex(a)}`, `exports/blobs/${sha256Hex(b).slice(0, 2)}/${sha256Hex(b).slice(2, 4)}/${sha256Hex(b)}`].sort(),
      );
      expect(() => new S3BlobStore({ ...s3.s3Config, bucket }, { keyPrefix: '../x' })).toThrow(RangeError);
    } finally {
      await root.close();
      await exports.close();
    }
  });

  it('is what createBlobStore builds when S3_BUCKET is set, and start-up survives a server that cannot sweep', async () => {
    const { log, lines } = captureLog();
    const store = await createBlobStore(loadServerConfig({ ...s3.env, DATA_DIR: os.tmpdir() }), log);
    try {
      expect(store.kind).toBe('s3');
      expect(store.location).toContain(s3.bucket);
      expect(lines().some((line) => line.level === 40 && /could not sweep/.test(String(line.msg)))).toBe(true);
      await expect(store.check()).resolves.toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('fails check with a clear reason when the bucket does not exist', async () => {
    const store = new S3BlobStore({ ...s3.s3Config, bucket: 'no-such-bucket' });
    try {
      await expect(store.check()).rejects.toThrow(/no-such-bucket.*the bucket does not exist/);
    } finally {
      await store.close();
    }
  });
});

function captureLog(): { log: pino.Logger; lines: () => { level: number; msg?: unknown; removed?: unknown }[] } {
  const chunks: string[] = [];
  const log = pino({ level: 'info' }, { write: (chunk: string) => void chunks.push(chunk) });
  return { log, lines: () => chunks.map((chunk) => JSON.parse(chunk) as { level: number; msg?: unknown }) };
}

describe('createBlobStore on disk', () => {
  it('builds a disk store under DATA_DIR/blobs and sweeps crash leftovers at start, logging how many', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-data-'));
    try {
      const tempDir = path.join(dataDir, 'blobs', 'tmp');
      await mkdir(tempDir, { recursive: true });
      await writeFile(path.join(tempDir, randomUUID()), 'half an upload');
      await writeFile(path.join(tempDir, randomUUID()), 'another');
      const { log, lines } = captureLog();
      const store = await createBlobStore(loadServerConfig({ DATA_DIR: dataDir }), log);
      expect(store.kind).toBe('disk');
      expect(store.location).toBe(path.join(dataDir, 'blobs'));
      expect(await filesUnder(dataDir)).toEqual([]);
      expect(lines().find((line) => line.removed !== undefined)?.removed).toBe(2);
      await store.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('disk blob store when the filesystem is full', () => {
  let mountPoint: string | undefined;
  let skipReason: string | undefined;

  beforeAll(async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-full-'));
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
      mountPoint = dir;
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      skipReason = `cannot mount a 1 MiB tmpfs here (${(error as Error).message.split('\n')[0]}); needs root and mount permission`;
      console.info(`[disk full] skipped: ${skipReason}`);
    }
  });

  afterAll(async () => {
    if (mountPoint === undefined) return;
    await run('umount', [mountPoint]);
    await rm(mountPoint, { recursive: true, force: true });
  });

  it('maps ENOSPC to StorageFullError, leaves nothing, and recovers when space returns', async (ctx) => {
    if (mountPoint === undefined) {
      ctx.skip(skipReason);
      return;
    }
    const store = new DiskBlobStore(path.join(mountPoint, 'blobs'));
    const big = randomBytes(2 * 1024 * 1024);
    const bigKey = sha256Hex(big);
    await expect(store.put(bigKey, Readable.from([big]), bigKey)).rejects.toBeInstanceOf(StorageFullError);
    expect(await filesUnder(mountPoint)).toEqual([]);
    expect(await store.stat(bigKey)).toBeNull();

    const small = randomBytes(100 * 1024);
    const smallKey = sha256Hex(small);
    expect(await store.put(smallKey, Readable.from([small]), smallKey)).toEqual({ key: smallKey, size: small.length });
    await expect(store.check()).resolves.toBeUndefined();
  });
});
