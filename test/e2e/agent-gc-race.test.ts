/**
 * The documented GC races, with the real agent process: GC deletes a
 * content while the agent's upload of the same bytes waits to commit (the
 * upload wrote a fresh pack, so it is recorded as new and the run goes on),
 * and GC collects contents between their upload and the changes commit (the
 * server answers 409 naming them, and the agent uploads them again and
 * carries on; docs/server.md, "Garbage collection"). The server runs in-process on a
 * real port so the test can pause GC between its row commit and its object
 * deletes, as server/test/integration/retention-gc.test.ts does.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex, type FilesPage } from '@cairn/shared';
import { lockManagerFor } from '../../server/src/db/advisory-locks.ts';
import { collectGarbage, type GcDeletedBatch } from '../../server/src/services/garbage-collector.ts';
import { addUser, download, registerAgent, startHarness, upload, type Harness } from '../../server/test/helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../../server/test/helpers/test-database.ts';
import { agentApiGet, envModeAgentEnv, readAgentState, startAgent, waitForRuns } from '../helpers/agent-e2e.ts';

/** Polls until `condition` holds; waits for a state, asserts nothing about time. */
async function waitUntil(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 3000; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`gave up waiting for: ${what}`);
}

/**
 * A loopback proxy in front of the server that holds the first request whose
 * path matches `held` until `release()`: the agent's requests are forwarded
 * unchanged otherwise. Lets a test run GC at an exact point of the agent's run.
 */
async function holdingProxy(target: string, held: RegExp): Promise<{ url: string; arrived: Promise<void>; release: () => void; close: () => Promise<void> }> {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let arrivedResolve!: () => void;
  const arrived = new Promise<void>((resolve) => (arrivedResolve = resolve));
  let holding = true;
  const server = createServer((request, reply) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      void (async () => {
        if (holding && held.test(request.url ?? '')) {
          holding = false;
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
  return {
    url: `http://127.0.0.1:${address.port}`,
    arrived,
    release,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.each(testDatabaseKinds())('agent and the GC race (%s)', (kind) => {
  let h: Harness;
  let base: string;

  beforeAll(async () => {
    h = await startHarness(kind);
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-gc-race-'));
  });
  afterAll(async () => {
    await h?.close();
    await rm(base, { recursive: true, force: true });
  });

  it('an upload waiting while GC removes the same content records its own fresh copy, and the run succeeds', async () => {
    const user = await addUser(h, `gc-race-${kind}`);
    const raced = randomBytes(512 * 1024);
    const hash = sha256Hex(raced);
    // Held by the user but referenced by no version: exactly what GC collects (grace 0).
    const other = await registerAgent(h, user, 'uploaded-earlier');
    expect((await upload(h, other.token, [raced])).status).toBe(200);

    const tree = path.join(base, 'tree');
    await mkdir(tree);
    await writeFile(path.join(tree, 'raced.bin'), raced);
    await writeFile(path.join(tree, 'calm.txt'), 'not involved');

    let resume!: () => void;
    const gate = new Promise<void>((resolve) => (resume = resolve));
    let paused!: (batch: GcDeletedBatch) => void;
    const pausedAt = new Promise<GcDeletedBatch>((resolve) => (paused = resolve));
    const gc = collectGarbage(h.ctx, {
      graceSeconds: 0,
      afterRowsDeleted: async (batch) => {
        paused(batch);
        await gate;
      },
    });
    const stateDir = path.join(base, 'agent-state');
    // GC holds the content lock with the rows gone and the pack still there. The file is 512 KiB: a content of
    // several chunks, whose contents row and chunk rows go together.
    try {
      expect((await pausedAt).contents).toContain(hash);
    } catch (error) {
      resume();
      throw error;
    }

    const agent = startAgent(
      envModeAgentEnv(h.url, stateDir, [tree], { USERNAME: user.username, PASSWORD: user.password, CLIENT_NAME: 'raced-box' }),
    );
    try {
      // The agent was told the content is missing, put the bytes into a pack of its own and now waits to record it.
      await waitUntil(async () => (await lockManagerFor(h.ctx.database).contentLockWaiters()) >= 1, "the agent's upload commit to wait for GC");
      resume();
      expect((await gc).ran).toBe(true);
      const report = await waitForRuns(agent, 1);
      expect(report).toMatchObject({ status: 'succeeded', filesChanged: 2, filesFailed: 0 });
    } finally {
      resume();
      await agent.stop();
    }

    const { token } = await readAgentState(stateDir);
    const files = (await agentApiGet<FilesPage>(h.url, token, `/files?prefix=${encodeURIComponent(tree)}`)).files.filter((f) => f.kind !== 'directory');
    expect(files.map((f) => [path.basename(f.path), f.sha256])).toEqual([
      ['calm.txt', sha256Hex(Buffer.from('not involved'))],
      ['raced.bin', hash],
    ]);
    const fetched = await download(h, token, hash);
    expect(fetched.status).toBe(200);
    expect(sha256Hex(fetched.bytes)).toBe(hash);
  });

  it('a changes commit refused with 409 because GC collected its contents after upload is uploaded again and committed in the same run', async () => {
    const user = await addUser(h, `gc-commit-${kind}`);
    const known = randomBytes(32 * 1024);
    // Held already, so the agent uploads only the other file, and GC can take both before the commit.
    const other = await registerAgent(h, user, 'uploaded-earlier');
    expect((await upload(h, other.token, [known])).status).toBe(200);

    const tree = path.join(base, 'tree-commit');
    await mkdir(tree);
    await writeFile(path.join(tree, 'known.bin'), known);
    await writeFile(path.join(tree, 'fresh.txt'), 'uploaded by this run');

    const proxy = await holdingProxy(h.url, /\/runs\/[^/]+\/changes$/);
    const stateDir = path.join(base, 'agent-state-commit');
    const agent = startAgent(
      envModeAgentEnv(proxy.url, stateDir, [tree], { USERNAME: user.username, PASSWORD: user.password, CLIENT_NAME: 'commit-raced-box' }),
    );
    try {
      // The agent's first commit waits at the proxy; meanwhile GC collects both contents (referenced by no version yet).
      await proxy.arrived;
      const gc = await collectGarbage(h.ctx, { graceSeconds: 0 });
      expect(gc.chunksDeleted).toBeGreaterThanOrEqual(2);
      proxy.release();
      const report = await waitForRuns(agent, 1);
      expect(report).toMatchObject({ status: 'succeeded', filesChanged: 2, filesFailed: 0 });
    } finally {
      proxy.release();
      await agent.stop();
      await proxy.close();
    }

    const { token } = await readAgentState(stateDir);
    const files = (await agentApiGet<FilesPage>(h.url, token, `/files?prefix=${encodeURIComponent(tree)}`)).files.filter((f) => f.kind !== 'directory');
    expect(files.map((f) => path.basename(f.path))).toEqual(['fresh.txt', 'known.bin']);
    for (const file of files) {
      const fetched = await download(h, token, file.sha256 as string);
      expect(fetched.status).toBe(200);
      expect(sha256Hex(fetched.bytes)).toBe(file.sha256);
    }
  });
});
