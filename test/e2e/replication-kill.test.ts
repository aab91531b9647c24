/**
 * A replication pass killed midway, for real (decision 162): a server
 * process copying a backlog of packs from its s3rver primary to a second
 * s3rver bucket is SIGKILLed after it recorded some copies and before the
 * last; started again on the same PostgreSQL, it copies only the rest
 * (the copies recorded before the kill keep their time) and every pack on
 * the replica hashes to its name. Needs TEST_DATABASE_URL (the test reads
 * the server's tables while it runs).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDatabaseUrl } from '../../server/src/db/database-url.ts';
import { startS3rver, type RunningS3rver } from '../../server/test/helpers/s3rver.ts';
import { createScratchPostgres } from '../../server/test/helpers/test-database.ts';
import { ADMIN_PASSWORD, crash, envModeAgentEnv, runAgentOnce } from '../helpers/agent-e2e.ts';
import { startServerProcess, type ServerProcess } from '../helpers/processes.ts';

const REPLICA_BUCKET = 'cairn-replica';

describe.skipIf(!process.env.TEST_DATABASE_URL)('a replication pass killed midway resumes after a restart', () => {
  let base: string;
  let s3: RunningS3rver;
  let admin: S3Client;
  let scratch: Awaited<ReturnType<typeof createScratchPostgres>>;
  let sql: postgres.Sql;
  let server: ServerProcess | undefined;
  const env = (intervalSeconds: number): Record<string, string> => ({
    DATA_DIR: path.join(base, 'server'),
    DATABASE_URL: scratch!.url,
    ADMIN_PASSWORD,
    ...s3.env,
    REPLICA_S3_BUCKET: REPLICA_BUCKET,
    REPLICA_S3_ENDPOINT: s3.endpoint,
    REPLICA_S3_ACCESS_KEY_ID: s3.accessKeyId,
    REPLICA_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    REPLICA_INTERVAL_SECONDS: String(intervalSeconds),
  });
  const stamped = async () =>
    sql<{ sha256: string; replicated_at: Date }[]>`
      select encode(sha256, 'hex') as sha256, replicated_at from replica_objects where kind = 'pack' and replicated_at is not null`;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-replication-kill-'));
    const tree = path.join(base, 'tree');
    await mkdir(tree);
    // Incompressible, about one 8 MiB pack a file: a backlog that takes s3rver a while to copy.
    for (let i = 0; i < 8; i++) await writeFile(path.join(tree, `big-${i}.bin`), randomBytes(7 * 1024 * 1024 + i));
    s3 = await startS3rver();
    admin = new S3Client({
      region: s3.s3Config.region,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await admin.send(new CreateBucketCommand({ Bucket: REPLICA_BUCKET }));
    scratch = await createScratchPostgres('postgres');
    sql = postgres({ ...parseDatabaseUrl(scratch!.url).options, max: 1, onnotice: () => {} });
    // The backlog first, with no pass due for an hour.
    server = await startServerProcess(env(3600));
    expect((await runAgentOnce(envModeAgentEnv(server.url, path.join(base, 'agent-state'), [tree]))).report).toMatchObject({ status: 'succeeded' });
    await server.stop();
    server = undefined;
  }, 240_000);

  afterAll(async () => {
    await server?.stop();
    await sql?.end();
    await scratch?.drop();
    admin?.destroy();
    await s3?.close();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('copies the rest, and only the rest, after the kill', async () => {
    const [counted] = await sql<{ total: number }[]>`select count(*)::int as total from packs where retired_at is null`;
    const total = counted!.total;
    expect(total).toBeGreaterThanOrEqual(4);

    server = await startServerProcess(env(1));
    let before: { sha256: string; replicated_at: Date }[] = [];
    for (let i = 0; i < 6000 && before.length === 0; i++) {
      before = await stamped();
      if (before.length === 0) await sleep(5);
    }
    await crash(server);
    server = undefined;
    before = await stamped();
    expect(before.length).toBeGreaterThan(0);
    expect(before.length).toBeLessThan(total);

    server = await startServerProcess(env(1));
    let after = before;
    for (let i = 0; i < 1200 && after.length < total; i++) {
      await sleep(100);
      after = await stamped();
    }
    expect(after).toHaveLength(total);
    const times = new Map(after.map((row) => [row.sha256, row.replicated_at.getTime()]));
    for (const row of before) expect(times.get(row.sha256), 'a copy recorded before the kill is not made again').toBe(row.replicated_at.getTime());

    const listed = await admin.send(new ListObjectsV2Command({ Bucket: REPLICA_BUCKET }));
    const keys = (listed.Contents ?? []).map((o) => o.Key!).filter((key) => key.startsWith('packs/'));
    expect(keys).toHaveLength(total);
    for (const Key of keys) {
      const object = await admin.send(new GetObjectCommand({ Bucket: REPLICA_BUCKET, Key }));
      expect(createHash('sha256').update(await object.Body!.transformToByteArray()).digest('hex')).toBe(Key.split('/').at(-1));
    }
    expect(server.output()).toContain('replication pass finished');
  });
});
