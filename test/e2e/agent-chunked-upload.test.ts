import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, open, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CHUNKER_PARAMS } from '@cairn/shared';
import type { ChunkList } from '../../client/src/backup/chunk-list.ts';
import { READ_BYTES, hashFile } from '../../client/src/backup/file-hasher.ts';
import { uploadBatch } from '../../client/src/backup/uploader.ts';
import { ApiClient } from '../../client/src/net/api-client.ts';
import { parseDatabaseUrl } from '../../server/src/db/database-url.ts';
import { ADMIN_PASSWORD, AGENT_MAIN, envModeAgentEnv, readAgentState, runAgentOnce, startAgent, waitForRuns, type RunReport } from '../helpers/agent-e2e.ts';
import { startProcess, startServerProcess, type ServerProcess } from '../helpers/processes.ts';

const MB = 1_000_000;
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Dump-like text: rows with random values, so no two chunks are alike and every byte must travel once. */
function dumpLike(bytes: number): Buffer {
  const lines: string[] = [];
  let total = 0;
  for (let i = 0; total < bytes; i += 1) {
    const line = `INSERT INTO orders VALUES (${i}, '${randomBytes(8).toString('hex')}', ${(i * 7919) % 100000}, 'customer note ${i % 97}');\n`;
    lines.push(line);
    total += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

/** The server's own database, entered as the server does (socket in DATA_DIR/pg, password from DATA_DIR). */
function serverDatabase(dataDir: string): postgres.Sql {
  const password = readFileSync(path.join(dataDir, 'pg-password'), 'utf8').trim();
  const url = `postgres://cairn:${encodeURIComponent(password)}@localhost:5432/cairn?host=${encodeURIComponent(path.join(dataDir, 'pg'))}`;
  return postgres({ ...parseDatabaseUrl(url).options, max: 1, onnotice: () => {} });
}

/**
 * A loopback proxy to the server that holds the `nth` request whose path
 * matches `held` until `release()`; everything else is forwarded as it is.
 */
async function holdingProxy(target: string, held: RegExp, nth: number): Promise<{ url: string; arrived: Promise<void>; release: () => void; close: () => Promise<void> }> {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let arrivedResolve!: () => void;
  const arrived = new Promise<void>((resolve) => (arrivedResolve = resolve));
  let seen = 0;
  const server = createServer((request, reply) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      void (async () => {
        if (held.test(request.url ?? '') && ++seen === nth) {
          arrivedResolve();
          await gate;
        }
        const headers = new Headers();
        for (const [name, value] of Object.entries(request.headers)) {
          if (typeof value === 'string' && !['host', 'connection', 'content-length', 'transfer-encoding'].includes(name)) headers.set(name, value);
        }
        const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
        const answer = await fetch(`${target}${request.url}`, { method: request.method, headers, ...(body ? { body } : {}) });
        const bytes = Buffer.from(await answer.arrayBuffer());
        reply.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/octet-stream' });
        reply.end(bytes);
      })().catch((error: unknown) => {
        reply.writeHead(502);
        reply.end(String(error));
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${address.port}`, arrived, release, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function restore(args: string[]): Promise<{ code: number | null; output: string }> {
  const proc = startProcess(AGENT_MAIN, ['restore', ...args], {});
  const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
  return { code, output: proc.output() };
}

describe('a large file is uploaded as chunks, and a re-run sends only the changed ones', () => {
  let base: string;
  let dataDir: string;
  let tree: string;
  let stateDir: string;
  let server: ServerProcess;
  let db: postgres.Sql;
  const dumpPath = () => path.join(tree, 'dump.sql');
  const versions: { hash: string; after: string }[] = [];

  const backUp = async (): Promise<RunReport> => {
    const { report, output } = await runAgentOnce(envModeAgentEnv(server.url, stateDir, [tree]));
    expect(report.status, output.slice(-3000)).toBe('succeeded');
    versions.push({ hash: sha256(await readFile(dumpPath())), after: new Date().toISOString() });
    return report;
  };

  /** What the server recorded for the run: what the agent sent, and what was new. */
  const recorded = async (runId: string) => {
    const [row] = await db<{ bytesUploaded: string; bytesNew: string }[]>`select bytes_uploaded::text as "bytesUploaded", bytes_new::text as "bytesNew" from backup_runs where id = ${runId}`;
    return { bytesUploaded: Number(row?.bytesUploaded), bytesNew: Number(row?.bytesNew) };
  };

  const deltaChunks = async () => Number((await db<{ n: string }[]>`select count(*)::text as n from chunks where codec = 2`)[0]?.n);

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-chunks-'));
    dataDir = path.join(base, 'server');
    tree = path.join(base, 'tree');
    stateDir = path.join(base, 'agent-state');
    await mkdir(tree);
    await writeFile(dumpPath(), dumpLike(6 * MB));
    await writeFile(path.join(tree, 'small.txt'), 'a small file stays one part\n');
    server = await startServerProcess({ DATA_DIR: dataDir, ADMIN_PASSWORD });
    db = serverDatabase(dataDir);
  });

  afterAll(async () => {
    await db?.end({ timeout: 1 });
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('the first backup sends every byte once and the server keeps the file as its chunk list', async () => {
    const report = await backUp();
    const total = 6 * MB + Buffer.byteLength('a small file stays one part\n');
    expect(report.bytesUploaded).toBe(total);
    expect(await recorded(report.runId)).toEqual({ bytesUploaded: total, bytesNew: total });
    const [content] = await db<{ chunkCount: number; size: string }[]>`
      select chunk_count as "chunkCount", size::text as size from contents where sha256 = decode(${versions[0]?.hash ?? ''}, 'hex')`;
    // DEFAULT_CHUNKER_PARAMS.avgSize a chunk on average: dozens for 6 MB.
    expect(content?.chunkCount).toBeGreaterThan((6 * MB) / (2 * DEFAULT_CHUNKER_PARAMS.avgSize));
    expect(Number(content?.size)).toBe(6 * MB);
  });

  it('after one appended line, the re-run uploads a few chunks, far below the file size', async () => {
    await appendFile(dumpPath(), "INSERT INTO orders VALUES (-1, 'appended', 0, 'one more row');\n");
    const report = await backUp();
    expect(report.filesChanged).toBe(1);
    expect(report.bytesUploaded).toBeGreaterThan(0);
    // The last chunk or two, each at most maxSize.
    expect(report.bytesUploaded).toBeLessThan(2 * DEFAULT_CHUNKER_PARAMS.maxSize);
    expect((await recorded(report.runId)).bytesUploaded).toBe(report.bytesUploaded);
  });

  it('after a few bytes changed in the middle, the re-run uploads only the chunks around them', async () => {
    const handle = await open(dumpPath(), 'r+');
    await handle.write(Buffer.from('EDITED'), 0, 6, 3 * MB);
    await handle.close();
    const deltasBefore = await deltaChunks();
    const report = await backUp();
    expect(report.filesChanged).toBe(1);
    expect(report.bytesUploaded).toBeGreaterThan(0);
    expect(report.bytesUploaded).toBeLessThan(3 * DEFAULT_CHUNKER_PARAMS.maxSize);
    // The agent named the file's previous version, and the server stored the changed chunk as a delta against it (decision 171).
    expect(await deltaChunks()).toBeGreaterThan(deltasBefore);
  });

  it('restores every version byte for byte', async () => {
    for (const [i, version] of versions.entries()) {
      const target = path.join(base, `restored-${i}`);
      const { code, output } = await restore(['--target', target, '--state', stateDir, '--as-of', version.after]);
      expect(code, output).toBe(0);
      expect(sha256(await readFile(path.join(target, dumpPath()))), `version ${i}`).toBe(version.hash);
    }
  });

  it('a run cut off after some chunks were uploaded: the next run sends only the rest', async () => {
    // What an agent that crashed mid-file left behind: the first half of a new file's chunks on the server, no content.
    const file = path.join(tree, 'second.sql');
    await writeFile(file, dumpLike(2 * MB));
    const hashed = await hashFile(file, Buffer.allocUnsafe(READ_BYTES));
    const chunks = [...(hashed.chunks as ChunkList).entries()];
    const half = chunks.slice(0, Math.floor(chunks.length / 2));
    const { token } = await readAgentState(stateDir);
    const api = new ApiClient({ serverUrl: server.url, token });
    try {
      const { runId } = await api.startRun({ trigger: 'manual' });
      const items = half.map((c) => ({ sha256: c.sha256, size: c.size, offset: c.offset, fileSize: hashed.size, path: file, mtimeMs: hashed.mtimeMs }));
      const outcome = await uploadBatch(api, runId, items, () => {});
      expect(outcome.changed).toEqual([]);
      expect((await api.missing({ hashes: [hashed.sha256] })).missing).toEqual([hashed.sha256]);
    } finally {
      await api.close();
    }
    const sent = half.reduce((sum, c) => sum + c.size, 0);
    const report = await backUp();
    expect(report.bytesUploaded).toBe(hashed.size - sent);
    const target = path.join(base, 'restored-second');
    const { code, output } = await restore(['--target', target, '--state', stateDir, '--prefix', file]);
    expect(code, output).toBe(0);
    expect(sha256(await readFile(path.join(target, file)))).toBe(hashed.sha256);
    expect((await stat(path.join(target, file))).size).toBe(2 * MB);
  });

  it('a chunk that changed between hashing and its upload (same size and mtime) is caught, and the file is read again', async () => {
    const otherTree = path.join(base, 'tree-changing');
    const otherState = path.join(base, 'agent-changing');
    await mkdir(otherTree);
    const file = path.join(otherTree, 'changing.sql');
    const data = dumpLike(1 * MB);
    await writeFile(file, data);
    // The second "which are missing?" is the one about chunks: the file has been hashed, nothing of it sent yet.
    const proxy = await holdingProxy(server.url, /^\/api\/v1\/contents\/missing/, 2);
    const agent = startAgent(envModeAgentEnv(proxy.url, otherState, [otherTree]));
    try {
      await proxy.arrived;
      const before = await stat(file);
      const handle = await open(file, 'r+');
      await handle.write(Buffer.from('CHANGED WHILE QUEUED'), 0, 20, 500_000);
      await handle.close();
      await utimes(file, before.atime, before.mtime);
      proxy.release();
      const report = await waitForRuns(agent, 1);
      expect(report.status, agent.output().slice(-3000)).toBe('succeeded');
      expect(agent.output()).toContain('file changed while uploading; it will be read again');
    } finally {
      await agent.stop();
      await proxy.close();
    }
    const target = path.join(base, 'restored-changing');
    // Straight to the server: the state directory names the proxy, which is gone.
    const { token } = await readAgentState(otherState);
    const { code, output } = await restore(['--target', target, '--server', server.url, '--token', token]);
    expect(code, output).toBe(0);
    expect(sha256(await readFile(path.join(target, file)))).toBe(sha256(await readFile(file)));
    expect(sha256(await readFile(file))).not.toBe(sha256(data));
  });
});
