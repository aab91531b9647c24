/**
 * Restore through a real server process on an S3 store (s3rver on loopback)
 * whose objects were damaged behind its back: those files fail with "stored
 * content is damaged or missing", the others restore, the exit code is 1.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { parsePack } from '../../server/src/storage/pack-format.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkLengths, DEFAULT_CHUNKER_PARAMS, sha256Hex } from '@cairn/shared';
import { startS3rver, type RunningS3rver } from '../../server/test/helpers/s3rver.ts';
import { ADMIN_PASSWORD, AGENT_MAIN, envModeAgentEnv, runAgentOnce } from '../helpers/agent-e2e.ts';
import { startProcess, startServerProcess, type ServerProcess } from '../helpers/processes.ts';


describe('restore from a damaged S3 store', () => {
  let base: string;
  let tree: string;
  let stateDir: string;
  let s3: RunningS3rver;
  let admin: S3Client;
  let server: ServerProcess;
  const files = {
    'flipped.bin': randomBytes(3 * 1024 * 1024 + 5),
    'rewritten.txt': Buffer.from('the original words\n'),
    'deleted.txt': Buffer.from('this object will be deleted\n'),
    'intact.txt': Buffer.from('left alone\n'),
  };

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-s3-damage-'));
    tree = path.join(base, 'tree');
    stateDir = path.join(base, 'agent-state');
    await mkdir(tree);
    for (const [name, bytes] of Object.entries(files)) await writeFile(path.join(tree, name), bytes);
    s3 = await startS3rver();
    admin = new S3Client({
      region: s3.s3Config.region,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD, ...s3.env });
    const { report } = await runAgentOnce(envModeAgentEnv(server.url, stateDir, [tree]));
    expect(report).toMatchObject({ status: 'succeeded', filesFailed: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    admin?.destroy();
    await s3?.close();
    await rm(base, { recursive: true, force: true });
  });

  it('fails the damaged files with a clear message, restores the rest, and exits 1', async () => {
    // Each file's bytes are chunks inside a pack in the bucket (decisions 126, 127): edit them there, in place.
    const damage = async (chunkSha256: string, change: (stored: Buffer) => void) => {
      const listed = await admin.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
      for (const { Key } of listed.Contents ?? []) {
        const name = Key?.split('/').at(-1) ?? '';
        if (!Key || !Key.includes('packs/') || !/^[a-f0-9]{64}$/.test(name)) continue;
        const object = await admin.send(new GetObjectCommand({ Bucket: s3.bucket, Key }));
        const bytes = Buffer.from(await object.Body!.transformToByteArray());
        const entry = parsePack(`packs/${name}`, bytes).entries.find((e) => e.sha256 === chunkSha256);
        if (!entry) continue;
        change(bytes.subarray(entry.offset, entry.offset + entry.length));
        await admin.send(new PutObjectCommand({ Bucket: s3.bucket, Key, Body: bytes }));
        return;
      }
      throw new Error(`no pack in the bucket holds chunk ${chunkSha256}`);
    };
    // The chunk of flipped.bin that holds its byte 2,000,000, as the agent's chunker cut it.
    let at = 0;
    let middle = '';
    for (const length of chunkLengths(files['flipped.bin'], DEFAULT_CHUNKER_PARAMS)) {
      if (at <= 2_000_000 && 2_000_000 < at + length) middle = sha256Hex(files['flipped.bin'].subarray(at, at + length));
      at += length;
    }
    await damage(middle, (stored) => (stored[Math.floor(stored.length / 2)]! ^= 0x80));
    await damage(sha256Hex(files['rewritten.txt']), (stored) => stored.fill(0x54));
    await damage(sha256Hex(files['deleted.txt']), (stored) => stored.fill(0));

    const target = path.join(base, 'restored');
    const proc = startProcess(AGENT_MAIN, ['restore', '--target', target, '--state', stateDir], {});
    const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
    const output = proc.output();
    expect(code, output).toBe(1);
    for (const name of ['flipped.bin', 'rewritten.txt', 'deleted.txt']) {
      expect(output).toContain(`FAILED ${path.join(tree, name)}: stored content is damaged or missing`);
      await expect(readFile(path.join(target, tree, name))).rejects.toMatchObject({ code: 'ENOENT' });
    }
    expect(await readFile(path.join(target, tree, 'intact.txt'))).toEqual(files['intact.txt']);
    expect(server.output()).toMatch(/"level":50[^\n]*"sha256":"[a-f0-9]{64}"/);
  });
});
