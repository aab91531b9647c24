/**
 * The test of the replica store (issue 15, decisions 161-164), with
 * real processes: a server on PostgreSQL (TEST_DATABASE_URL's, else its
 * embedded one) with s3rver as its primary store and a directory as its
 * replica, and a real agent. After the replication job caught up (seen
 * through GET /api/v1/admin/replica), every pack in the primary bucket is
 * destroyed, one deleted and the others overwritten with junk; `cairn-agent
 * restore` still puts the whole tree back byte for byte, from the replica,
 * and the primary holds every pack again, verified.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3rver, type RunningS3rver } from '../../server/test/helpers/s3rver.ts';
import { createScratchPostgres } from '../../server/test/helpers/test-database.ts';
import { ADMIN_PASSWORD, AGENT_MAIN, envModeAgentEnv, runAgentOnce } from '../helpers/agent-e2e.ts';
import { startProcess, startServerProcess, type ServerProcess } from '../helpers/processes.ts';

interface ReplicaReport {
  configured: boolean;
  packsBehind: number;
  objectsBehind: number;
  bytesBehind: number;
  copiedObjects: number;
  lagSeconds: number;
}

describe('restore after the primary store lost its packs, from the replica store', () => {
  let base: string;
  let tree: string;
  let stateDir: string;
  let s3: RunningS3rver;
  let admin: S3Client;
  let scratch: Awaited<ReturnType<typeof createScratchPostgres>>;
  let server: ServerProcess;
  let token: string;
  const files = new Map<string, Buffer>([
    ['dump.sql', Buffer.from('insert into t values (1);\n'.repeat(150_000))],
    // Incompressible and above the 8 MiB pack target: at least two packs.
    ['photo.bin', randomBytes(9 * 1024 * 1024 + 3)],
    ['notes/small.txt', Buffer.from('a small file\n')],
    ['notes/empty.txt', Buffer.alloc(0)],
  ]);

  const api = async <T>(route: string): Promise<T> => {
    const response = await fetch(`${server.url}/api/v1/admin${route}`, { headers: { authorization: `Bearer ${token}` } });
    if (response.status !== 200) throw new Error(`GET ${route}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  };
  const packKeys = async (): Promise<string[]> => {
    const listed = await admin.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
    return (listed.Contents ?? []).map((o) => o.Key!).filter((key) => key.startsWith('packs/'));
  };
  const sha256OfObject = async (Key: string): Promise<string | null> => {
    try {
      const object = await admin.send(new GetObjectCommand({ Bucket: s3.bucket, Key }));
      return createHash('sha256').update(await object.Body!.transformToByteArray()).digest('hex');
    } catch (error) {
      if ((error as { name?: string }).name === 'NoSuchKey') return null;
      throw error;
    }
  };

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-replica-'));
    tree = path.join(base, 'tree');
    stateDir = path.join(base, 'agent-state');
    for (const [name, bytes] of files) {
      await mkdir(path.dirname(path.join(tree, name)), { recursive: true });
      await writeFile(path.join(tree, name), bytes);
    }
    s3 = await startS3rver();
    admin = new S3Client({
      region: s3.s3Config.region,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    scratch = await createScratchPostgres('postgres');
    server = await startServerProcess({
      DATA_DIR: path.join(base, 'server'),
      ADMIN_PASSWORD,
      ...s3.env,
      ...(scratch ? { DATABASE_URL: scratch.url } : {}),
      REPLICA_DIR: path.join(base, 'replica'),
      REPLICA_INTERVAL_SECONDS: '1',
    });
    const { report } = await runAgentOnce(envModeAgentEnv(server.url, stateDir, [tree]));
    expect(report).toMatchObject({ status: 'succeeded', filesFailed: 0 });
    const login = await fetch(`${server.url}/api/v1/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD, tokenName: 'e2e', readOnly: true }),
    });
    expect(login.status).toBe(201);
    token = ((await login.json()) as { token: string }).token;
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
    admin?.destroy();
    await s3?.close();
    await scratch?.drop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('restores the whole tree from the replica and puts every pack back in the primary', async () => {
    // The replication job (every second here) catches up; the admin API says so.
    let status: ReplicaReport | undefined;
    for (let i = 0; i < 600; i++) {
      status = await api<ReplicaReport>('/replica');
      if (status.packsBehind === 0 && status.objectsBehind === 0 && status.copiedObjects > 0) break;
      await sleep(100);
    }
    expect(status).toMatchObject({ configured: true, packsBehind: 0, objectsBehind: 0, bytesBehind: 0, lagSeconds: 0 });

    const keys = await packKeys();
    expect(keys.length).toBeGreaterThan(1);
    // Destroyed behind the server's back: the first pack deleted, every other one overwritten with junk.
    await admin.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: keys[0]! }));
    for (const Key of keys.slice(1)) await admin.send(new PutObjectCommand({ Bucket: s3.bucket, Key, Body: randomBytes(4096) }));
    expect(await sha256OfObject(keys[0]!)).toBeNull();

    const target = path.join(base, 'restored');
    const proc = startProcess(AGENT_MAIN, ['restore', '--target', target, '--state', stateDir], {});
    const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
    expect(code, proc.output()).toBe(0);
    for (const [name, bytes] of files) expect((await readFile(path.join(target, tree, name))).equals(bytes), name).toBe(true);

    // Each pack is back under its name in the primary bucket, and its bytes hash to that name.
    for (const key of keys) expect(await sha256OfObject(key)).toBe(key.split('/').at(-1));
    expect(server.output()).toContain('from the replica store');
    expect(server.output()).toContain("in the primary store from the replica's verified copy");
    // Nothing was marked damaged: the verify page's list is empty.
    expect((await api<{ damaged: unknown[] }>('/verify-runs')).damaged).toEqual([]);
  });
});
