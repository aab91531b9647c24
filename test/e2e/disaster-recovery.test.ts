/**
 * The issue's disaster-recovery test (issue 15, decisions 167-168), with
 * real processes: a server on PostgreSQL (TEST_DATABASE_URL's, else its
 * embedded one) whose primary store is an s3rver bucket and whose replica is
 * a second bucket on it, and two real agents with trees of their own. Once
 * the replica caught up and a metadata export was written, the disaster:
 * the server is gone, its database is dropped (or its DATA_DIR deleted) and
 * every object in the primary bucket is deleted. `npm run recover`, run as
 * an operator would with the new server's configuration, rebuilds the
 * database from the replica alone and copies every object back; the new
 * server then serves both agents' restores byte for byte, the admin's
 * password still works, and a second recover refuses the database it made.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3rver, type RunningS3rver } from '../../server/test/helpers/s3rver.ts';
import { createScratchPostgres } from '../../server/test/helpers/test-database.ts';
import { ADMIN_PASSWORD, AGENT_MAIN, envModeAgentEnv, runAgentOnce } from '../helpers/agent-e2e.ts';
import { letPostgresThrough, REPO_ROOT, startProcess, startServerProcess, type ServerProcess } from '../helpers/processes.ts';

const RECOVER_MAIN = path.join(REPO_ROOT, 'server/src/recover.ts');
const REPLICA_BUCKET = 'cairn-replica';

interface Client {
  name: string;
  tree: string;
  stateDir: string;
  files: Map<string, Buffer>;
}

describe('rebuilding a server from the replica store alone', () => {
  let base: string;
  let s3: RunningS3rver;
  let admin: S3Client;
  let scratch: Awaited<ReturnType<typeof createScratchPostgres>>;
  let rebuilt: Awaited<ReturnType<typeof createScratchPostgres>>;
  let server: ServerProcess | undefined;
  let replicaEnv: Record<string, string>;
  const clients: Client[] = [];

  const login = async (url: string): Promise<string> => {
    const response = await fetch(`${url}/api/v1/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD, tokenName: 'e2e' }),
    });
    expect(response.status).toBe(201);
    return ((await response.json()) as { token: string }).token;
  };
  const keysIn = async (Bucket: string): Promise<string[]> => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await admin.send(new ListObjectsV2Command({ Bucket, ContinuationToken: token }));
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys;
  };
  const runRecover = async (env: Record<string, string>, args: string[] = []) => {
    const proc = startProcess(RECOVER_MAIN, args, env);
    const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
    return { code, output: proc.output() };
  };

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-recovery-'));
    for (const name of ['laptop', 'db-host']) {
      const tree = path.join(base, `tree-${name}`);
      const files = new Map<string, Buffer>([
        [`${name}.sql`, Buffer.from(`insert into ${name.replace('-', '_')} values (1);\n`.repeat(120_000))],
        ['blob.bin', randomBytes(3 * 1024 * 1024 + 17)],
        ['docs/readme.txt', Buffer.from(`the ${name} tree\n`)],
        ['docs/empty.txt', Buffer.alloc(0)],
      ]);
      for (const [file, bytes] of files) {
        await mkdir(path.dirname(path.join(tree, file)), { recursive: true });
        await writeFile(path.join(tree, file), bytes);
      }
      clients.push({ name, tree, stateDir: path.join(base, name), files });
    }
    s3 = await startS3rver();
    admin = new S3Client({
      region: s3.s3Config.region,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await admin.send(new CreateBucketCommand({ Bucket: REPLICA_BUCKET }));
    replicaEnv = {
      REPLICA_S3_BUCKET: REPLICA_BUCKET,
      REPLICA_S3_ENDPOINT: s3.endpoint,
      REPLICA_S3_REGION: s3.s3Config.region,
      REPLICA_S3_ACCESS_KEY_ID: s3.accessKeyId,
      REPLICA_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      REPLICA_INTERVAL_SECONDS: '1',
      // Exported on demand below; the periodic one would only race the test.
      REPLICA_EXPORT_INTERVAL_SECONDS: '86400',
    };
    scratch = await createScratchPostgres('postgres');
    rebuilt = await createScratchPostgres('postgres');
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    admin?.destroy();
    await s3?.close();
    await scratch?.drop();
    await rebuilt?.drop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('restores every client tree byte for byte after the database and the primary store are lost', async () => {
    // 1. The server in service: two clients back up, the replica catches up, the metadata is exported.
    const oldDataDir = path.join(base, 'server-old');
    server = await startServerProcess({
      DATA_DIR: oldDataDir,
      ADMIN_PASSWORD,
      ...s3.env,
      ...replicaEnv,
      ...(scratch ? { DATABASE_URL: scratch.url } : {}),
    });
    const port = server.port;
    for (const client of clients) {
      const { report } = await runAgentOnce(envModeAgentEnv(server.url, client.stateDir, [client.tree]));
      expect(report).toMatchObject({ status: 'succeeded', filesFailed: 0 });
    }
    const token = await login(server.url);
    const auth = { authorization: `Bearer ${token}` };
    for (let i = 0; ; i++) {
      const status = (await (await fetch(`${server.url}/api/v1/admin/replica`, { headers: auth })).json()) as { packsBehind: number; objectsBehind: number; copiedObjects: number };
      if (status.packsBehind === 0 && status.objectsBehind === 0 && status.copiedObjects > 0) break;
      expect(i, 'the replica catches up').toBeLessThan(600);
      await sleep(100);
    }
    const exported = await fetch(`${server.url}/api/v1/admin/replica/export`, { method: 'POST', headers: auth });
    expect(exported.status, await exported.clone().text()).toBe(200);
    const exportResult = (await exported.json()) as { id: string; tables: number; rows: number };
    expect(exportResult.id).toMatch(/^[a-f0-9]{64}$/);
    expect(exportResult.rows).toBeGreaterThan(0);
    expect((await keysIn(REPLICA_BUCKET)).some((key) => key.startsWith('exports/packs/'))).toBe(true);
    await server.stop();
    server = undefined;

    // 2. The disaster: no database, no DATA_DIR, an empty primary bucket.
    await scratch?.drop();
    scratch = null as unknown as typeof scratch;
    await rm(oldDataDir, { recursive: true, force: true });
    const primaryKeys = await keysIn(s3.bucket);
    expect(primaryKeys.length).toBeGreaterThan(0);
    await admin.send(new DeleteObjectsCommand({ Bucket: s3.bucket, Delete: { Objects: primaryKeys.map((Key) => ({ Key })) } }));
    expect(await keysIn(s3.bucket)).toEqual([]);

    // 3. The recovery, with the new server's configuration.
    const newDataDir = path.join(base, 'server-new');
    const newEnv = { DATA_DIR: newDataDir, ...s3.env, ...replicaEnv, ...(rebuilt ? { DATABASE_URL: rebuilt.url } : {}), LOG_LEVEL: 'info' };
    // The embedded PostgreSQL, as root, runs as user postgres, which must reach DATA_DIR (as startServerProcess lets it).
    if (!rebuilt) await letPostgresThrough(newDataDir);
    const listed = await runRecover(newEnv, ['--list']);
    expect(listed.code, listed.output).toBe(0);
    expect(listed.output).toContain(exportResult.id);
    const recovered = await runRecover(newEnv);
    expect(recovered.code, recovered.output).toBe(0);
    expect(recovered.output).toContain(`recovered the export of`);
    expect(recovered.output).toMatch(/[1-9]\d* objects copied from the replica .* 0 missing/);
    for (const key of primaryKeys) expect(await keysIn(s3.bucket)).toContain(key);

    // 4. The new server serves both clients' trees; the admin's password still works.
    server = await startServerProcess({ ...newEnv, PORT: String(port) });
    await login(server.url);
    for (const client of clients) {
      const target = path.join(base, `restored-${client.name}`);
      const proc = startProcess(AGENT_MAIN, ['restore', '--target', target, '--state', client.stateDir], {});
      const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
      expect(code, proc.output()).toBe(0);
      for (const [file, bytes] of client.files) {
        expect((await readFile(path.join(target, client.tree, file))).equals(bytes), `${client.name}: ${file}`).toBe(true);
      }
    }
    // The agents go on backing up to the rebuilt server with the tokens they had.
    const { report } = await runAgentOnce(envModeAgentEnv(server.url, clients[0]!.stateDir, [clients[0]!.tree]));
    expect(report).toMatchObject({ status: 'succeeded', filesFailed: 0 });
    await server.stop();
    server = undefined;

    // 5. A second recovery refuses the database that now holds backups, and changes nothing.
    const again = await runRecover(newEnv);
    expect(again.code, again.output).toBe(1);
    expect(again.output).toContain('the database already holds data');
  }, 600_000);
});
