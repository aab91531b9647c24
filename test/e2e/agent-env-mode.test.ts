import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FilesPage, VersionsResponse } from '@cairn/shared';
import { ADMIN_PASSWORD, agentApiGet, envModeAgentEnv, readAgentState, runAgentOnce, startAgent, storedObjects, waitForRuns } from '../helpers/agent-e2e.ts';
import { startServerProcess, type ServerProcess } from '../helpers/processes.ts';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

describe('agent in environment mode against a real server', () => {
  let base: string;
  let dataDir: string;
  let tree: string;
  let stateDir: string;
  let server: ServerProcess;
  let env: Record<string, string>;
  const contents = new Map<string, string>();

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-env-'));
    dataDir = path.join(base, 'server');
    tree = path.join(base, 'tree');
    stateDir = path.join(base, 'agent-state');
    await mkdir(path.join(tree, 'docs/nested'), { recursive: true });
    for (let i = 0; i < 5; i += 1) contents.set(`copy-${i}.txt`, 'the same bytes in five files\n');
    for (let i = 0; i < 10; i += 1) contents.set(`docs/unique-${i}.txt`, `file number ${i}\n`.repeat(i + 1));
    contents.set('docs/nested/empty', '');
    for (const [name, text] of contents) await writeFile(path.join(tree, name), text);
    server = await startServerProcess({ DATA_DIR: dataDir, ADMIN_PASSWORD });
    env = envModeAgentEnv(server.url, stateDir, [tree]);
  });

  afterAll(async () => {
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('first run uploads everything and stores identical files once', async () => {
    const { report } = await runAgentOnce(env);
    const unique = new Map([...contents.values()].map((text) => [sha256(text), Buffer.byteLength(text)]));
    expect(report).toMatchObject({ status: 'succeeded', filesScanned: contents.size, filesChanged: contents.size, filesFailed: 0 });
    expect(report.bytesUploaded).toBe([...unique.values()].reduce((a, b) => a + b, 0));
    expect(await storedObjects(dataDir)).toEqual([...unique.keys()].sort());
    const state = await readAgentState(stateDir);
    const files = await agentApiGet<FilesPage>(server.url, state.token, '/files');
    expect(files.files.filter((f) => f.kind !== 'directory').map((f) => f.path).sort()).toEqual([...contents.keys()].map((name) => path.join(tree, name)).sort());
    expect(files.files.filter((f) => f.kind === 'directory').map((f) => f.path)).toEqual([tree, path.join(tree, 'docs'), path.join(tree, 'docs/nested')]);
  });

  it('keeps the token 0600 in the state dir and reuses it on the next start', async () => {
    const before = await readAgentState(stateDir);
    expect((await stat(path.join(stateDir, 'token'))).mode & 0o777).toBe(0o600);
    const { report, output } = await runAgentOnce(env);
    expect(output).not.toContain('registered with the server');
    expect((await readAgentState(stateDir)).token).toBe(before.token);
    expect(await readFile(path.join(stateDir, 'agent.json'), 'utf8')).not.toContain(ADMIN_PASSWORD);
    expect(output).not.toContain(before.token);
    expect(output).not.toContain(ADMIN_PASSWORD);
    // ...and that second run had nothing to do.
    expect(report).toMatchObject({ status: 'succeeded', filesChanged: 0, filesDeleted: 0, bytesUploaded: 0 });
  });

  it('a changed file is exactly one new content', async () => {
    const objectsBefore = await storedObjects(dataDir);
    const changed = 'this file was edited\n';
    await writeFile(path.join(tree, 'docs/unique-3.txt'), changed);
    const { report } = await runAgentOnce(env);
    expect(report).toMatchObject({ status: 'succeeded', filesChanged: 1, bytesUploaded: Buffer.byteLength(changed) });
    expect(await storedObjects(dataDir)).toEqual([...objectsBefore, sha256(changed)].sort());
  });

  it('a deleted file closes its version', async () => {
    const deleted = path.join(tree, 'copy-4.txt');
    await unlink(deleted);
    const { report } = await runAgentOnce(env);
    expect(report).toMatchObject({ status: 'succeeded', filesDeleted: 1, filesChanged: 0, bytesUploaded: 0 });
    const state = await readAgentState(stateDir);
    const { versions } = await agentApiGet<VersionsResponse>(server.url, state.token, `/versions?path=${encodeURIComponent(deleted)}`);
    expect(versions).toHaveLength(1);
    expect(versions[0]?.validTo).not.toBeNull();
    const files = await agentApiGet<FilesPage>(server.url, state.token, '/files');
    expect(files.files.map((f) => f.path)).not.toContain(deleted);
  });

  it('a backslash is an ordinary character of a name: stored and listed exactly as it is', async () => {
    const odd = path.join(tree, 'back\\slash.txt');
    await writeFile(odd, 'backslash');
    const { report } = await runAgentOnce(env);
    expect(report).toMatchObject({ status: 'succeeded', filesFailed: 0, filesChanged: 1 });
    const state = await readAgentState(stateDir);
    const { versions } = await agentApiGet<VersionsResponse>(server.url, state.token, `/versions?path=${encodeURIComponent(odd)}`);
    expect(versions.map((v) => v.path)).toEqual([odd]);
    expect(versions[0]?.sha256).toBe(createHash('sha256').update('backslash').digest('hex'));
    await unlink(odd);
    expect((await runAgentOnce(env)).report).toMatchObject({ status: 'succeeded', filesDeleted: 1 });
  });

  it('a backup interval longer than Node\'s timer limit (24.8 days) waits instead of firing at once', async () => {
    const agent = startAgent({ ...env, BACKUP_INTERVAL: String(365 * 86_400) });
    try {
      await waitForRuns(agent, 1);
      const [, nextRunAt] = (await agent.waitForOutput(/"nextRunAt":"([^"]+)","msg":"next backup scheduled"/)) as RegExpMatchArray;
      expect(new Date(nextRunAt as string).getTime() - Date.now()).toBeGreaterThan(360 * 86_400_000);
      expect(agent.output()).not.toContain('TimeoutOverflowWarning');
    } finally {
      await agent.stop();
    }
  });

  it('serves /healthz and a read-only status page, and refuses setup changes: the environment is its only configuration', async () => {
    const agent = startAgent(env);
    try {
      const [, url] = (await agent.waitForOutput(/status page on (http:\/\/[^ "]+)/)) as RegExpMatchArray;
      await waitForRuns(agent, 1);
      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ ok: true, configured: true });
      const page = await (await fetch(`${url}/`)).text();
      expect(page).toContain('Backup status');
      expect(page).not.toContain('Change setup');
      const setup = await fetch(`${url}/setup`, { method: 'POST', body: new URLSearchParams({ serverUrl: 'http://elsewhere.invalid' }) });
      expect(setup.status).toBe(409);
      expect(await setup.text()).toContain('configured from its environment');
      expect((await readAgentState(stateDir)).serverUrl).toBe(server.url);
    } finally {
      await agent.stop();
    }
  });

  it('a lost cache resynchronises from the server without uploading again', async () => {
    await rm(path.join(stateDir, 'scan-cache.jsonl'));
    const { report, output } = await runAgentOnce(env);
    expect(output).toContain('resynchronising from the server file list');
    expect(report).toMatchObject({ status: 'succeeded', filesChanged: 0, filesDeleted: 0, bytesUploaded: 0 });
  });
});
