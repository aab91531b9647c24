import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_PREFIX, type FilesPage } from '@cairn/shared';
import { ADMIN_PASSWORD, agentApiGet, crash, peakRssOfTree, readAgentState, startAgent } from '../helpers/agent-e2e.ts';
import { freePort, startServerProcess, waitForHttp, type ManagedProcess, type ServerProcess } from '../helpers/processes.ts';

interface AgentStatusJson {
  running: boolean;
  progress: { phase: string; bytesUploaded: number; filesCommitted: number } | null;
  lastReport: { runId: string | null; status: string; stats: { filesChanged: number; bytesUploaded: number } } | null;
}

const BIG_BYTES = 400 * 1024 * 1024;

describe('the server is killed during an upload', () => {
  let base: string;
  let dataDir: string;
  let tree: string;
  let stateDir: string;
  let port: number;
  let server: ServerProcess;
  let agent: ManagedProcess;
  let agentUrl: string;
  const expected = new Map<string, string>();

  const status = async () => (await (await fetch(`${agentUrl}/status.json`)).json()) as AgentStatusJson;
  const currentFiles = async () => {
    const state = await readAgentState(stateDir);
    const page = await agentApiGet<FilesPage>(server.url, state.token, '/files?limit=10000');
    return new Map(page.files.filter((f) => f.kind !== 'directory').map((f) => [f.path, f.sha256]));
  };

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-crash-'));
    dataDir = path.join(base, 'server');
    tree = path.join(base, 'tree');
    stateDir = path.join(base, 'agent-state');
    await mkdir(path.join(tree, 'a-small'), { recursive: true });
    await mkdir(path.join(tree, 'z-big'), { recursive: true });
    // Changed files go in path order: the small ones are committed before the big upload starts.
    for (let i = 0; i < 2500; i += 1) {
      const text = `small file ${i}\n${randomBytes(64).toString('hex')}\n`;
      await writeFile(path.join(tree, 'a-small', `f${i}.txt`), text);
      expected.set(path.join(tree, 'a-small', `f${i}.txt`), createHash('sha256').update(text).digest('hex'));
    }
    const big = await open(path.join(tree, 'z-big/big.bin'), 'w');
    const hash = createHash('sha256');
    const block = randomBytes(4 << 20);
    for (let written = 0; written < BIG_BYTES; written += block.length) {
      block.writeUInt32LE(written, 0);
      hash.update(block);
      await big.write(block);
    }
    await big.close();
    expected.set(path.join(tree, 'z-big/big.bin'), hash.digest('hex'));

    port = await freePort();
    server = await startServerProcess({ DATA_DIR: dataDir, ADMIN_PASSWORD, PORT: String(port) });
    const uiPort = await freePort();
    agentUrl = `http://127.0.0.1:${uiPort}`;
    agent = startAgent({ AGENT_STATE_DIR: stateDir, CLIENT_UI_PORT: String(uiPort), CLIENT_UI_HOST: '127.0.0.1' });
    await waitForHttp(`${agentUrl}/healthz`, agent);
  });

  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('the next cycle completes after the restart and nothing committed is lost', async () => {
    const setup = await fetch(`${agentUrl}/setup`, {
      method: 'POST',
      redirect: 'manual',
      body: new URLSearchParams({ serverUrl: server.url, username: 'admin', password: ADMIN_PASSWORD, clientName: 'crash-test', monitoredPaths: tree }),
    });
    expect(setup.status).toBe(303);

    // The small files go in earlier batches: once they are committed, the big file is next.
    const waitFor = async (done: (s: AgentStatusJson) => boolean) => {
      for (;;) {
        const s = await status();
        if (done(s)) return;
        if (s.lastReport) throw new Error(`the run ended too early: ${JSON.stringify(s.lastReport)}`);
        await sleep(10);
      }
    };
    await waitFor((s) => (s.progress?.filesCommitted ?? 0) >= 2500);
    // Then crash the server while the big file is on the wire.
    await waitFor((s) => s.progress?.phase === 'uploading' && s.progress.bytesUploaded > 4 * 1024 * 1024);
    await crash(server);
    // Never two cycles at once: asking now is answered "already running".
    const duplicate = await fetch(`${agentUrl}/run`, { method: 'POST', redirect: 'manual' });
    expect(duplicate.headers.get('location')).toBe('/?notice=running');

    // The interrupted cycle gives up cleanly (retries, then failed) instead of hanging.
    for (;;) {
      const s = await status();
      if (!s.running && s.lastReport) {
        expect(s.lastReport.status).toBe('failed');
        break;
      }
      await sleep(100);
    }

    server = await startServerProcess({ DATA_DIR: dataDir, ADMIN_PASSWORD, PORT: String(port) });
    // Before the agent sends anything again: what it had committed survived the crash; the interrupted file is absent.
    const survived = await currentFiles();
    const small = [...expected].filter(([filePath]) => filePath.includes('/a-small/'));
    for (const [filePath, sha] of small) expect(survived.get(filePath)).toBe(sha);
    expect(survived.has(path.join(tree, 'z-big/big.bin'))).toBe(false);

    const first = (await status()).lastReport?.runId;
    const run = await fetch(`${agentUrl}/run`, { method: 'POST', redirect: 'manual' });
    expect(run.headers.get('location')).toBe('/?notice=started');
    const nextReport = async (): Promise<NonNullable<AgentStatusJson['lastReport']>> => {
      for (;;) {
        const s = await status();
        if (!s.running && s.lastReport && s.lastReport.runId !== first) return s.lastReport;
        await sleep(100);
      }
    };
    expect((await nextReport()).status).toBe('succeeded');

    expect(await currentFiles()).toEqual(expected);

    // The 400 MiB file streamed through the agent: its memory stayed far below the file's size.
    expect(await peakRssOfTree(agent)).toBeLessThan(250 * 1024 * 1024);

    // The big object is whole on the server.
    const state = await readAgentState(stateDir);
    const bigSha = expected.get(path.join(tree, 'z-big/big.bin')) as string;
    const response = await fetch(`${server.url}${API_PREFIX}/contents/${bigSha}`, { headers: { authorization: `Bearer ${state.token}` } });
    const hash = createHash('sha256');
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) hash.update(chunk);
    expect(hash.digest('hex')).toBe(bigSha);
    expect((await readFile(path.join(stateDir, 'agent.json'), 'utf8')).includes(ADMIN_PASSWORD)).toBe(false);
  });
});
