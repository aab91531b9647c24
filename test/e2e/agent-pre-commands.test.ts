import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FilesPage } from '@cairn/shared';
import {
  ADMIN_PASSWORD,
  DashboardSession,
  agentApiGet,
  envModeAgentEnv,
  readAgentState,
  runAgentOnce,
  startAgent,
  waitForRuns,
} from '../helpers/agent-e2e.ts';
import { startServerProcess, type ServerProcess } from '../helpers/processes.ts';

/** Processes whose command line is exactly `argv` (to prove a killed command left nothing behind). */
async function processesRunning(argv: string[]): Promise<number> {
  let count = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline === `${argv.join('\0')}\0`) count += 1;
  }
  return count;
}

describe('pre-commands set on the server, run by the agent', () => {
  let base: string;
  let tree: string;
  let extra: string;
  let stateDir: string;
  let server: ServerProcess;
  let dashboard: DashboardSession;
  let clientId: string;
  let env: Record<string, string>;

  const files = async () => {
    const state = await readAgentState(stateDir);
    return (await agentApiGet<FilesPage>(server.url, state.token, '/files')).files.map((f) => f.path);
  };

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-pre-'));
    tree = path.join(base, 'tree');
    extra = path.join(base, 'central');
    stateDir = path.join(base, 'agent-state');
    await mkdir(tree);
    await mkdir(extra);
    await writeFile(path.join(tree, 'data.txt'), 'data');
    await writeFile(path.join(extra, 'central.txt'), 'set on the server');
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD });
    env = envModeAgentEnv(server.url, stateDir, [tree]);
    const { report } = await runAgentOnce(env);
    expect(report.status).toBe('succeeded');
    clientId = (await readAgentState(stateDir)).clientId;
    dashboard = new DashboardSession(server.url);
    await dashboard.login();
  });

  afterAll(async () => {
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('runs server commands, then local ones, before the scan: their output is in the same run', async () => {
    const dump = path.join(tree, 'dump.sql');
    await dashboard.configureClient(clientId, { preCommands: `echo "create table t();" > '${dump}'\necho server >> '${tree}/order.txt'`, monitoredPaths: extra });
    const { report } = await runAgentOnce({ ...env, PRE_COMMANDS: `echo local >> '${tree}/order.txt'` });
    expect(report).toMatchObject({ status: 'succeeded', filesFailed: 0 });
    expect(await readFile(path.join(tree, 'order.txt'), 'utf8')).toBe('server\nlocal\n');
    const paths = await files();
    expect(paths).toContain(dump);
    expect(paths).toContain(path.join(tree, 'order.txt'));
    expect(paths).toContain(path.join(extra, 'central.txt')); // the server's monitored paths are added to the local ones
  });

  it('a failing command marks the run partial and is reported to the server logs', async () => {
    await dashboard.configureClient(clientId, { preCommands: "echo 'pg_dump: connection refused' >&2; exit 7" });
    const { report } = await runAgentOnce(env);
    expect(report.status).toBe('partial');
    expect(report.error).toContain('pre-command failed');
    expect(report.error).toContain('exit code 7');
    const logs = await dashboard.clientLogs(clientId);
    expect(logs).toContain('pg_dump: connection refused');
  });

  it('a command printing a NUL byte: the run finishes and its output shows the NUL spelled visibly', async () => {
    await dashboard.configureClient(clientId, { preCommands: "printf 'a\\0b'" });
    const { report } = await runAgentOnce(env);
    expect(report.status).toBe('succeeded');
    const page = await dashboard.clientPage(clientId);
    const latest = /id="recent-runs"[\s\S]*?<tbody>[\s\S]*?<tr[^>]*>([\s\S]*?)<\/tr>/.exec(page)?.[1] ?? '';
    expect(latest).toContain('succeeded');
    expect(page).toContain('<pre class="output">a\u2400b</pre>');
  });

  it('a hanging command is killed at its timeout and the backup goes on', async () => {
    await dashboard.configureClient(clientId, { preCommands: '[2s] sleep 613' });
    await writeFile(path.join(tree, 'after-hang.txt'), 'still backed up');
    const { report } = await runAgentOnce(env);
    expect(report.status).toBe('partial');
    expect(report.error).toContain('timed out');
    expect(await files()).toContain(path.join(tree, 'after-hang.txt'));
    expect(await processesRunning(['sleep', '613'])).toBe(0);
  });

  it('ALLOW_REMOTE_COMMANDS=false refuses server-pushed commands (local ones still run)', async () => {
    const marker = path.join(tree, 'remote-ran.txt');
    await dashboard.configureClient(clientId, { preCommands: `touch '${marker}'` });
    const { report } = await runAgentOnce({ ...env, ALLOW_REMOTE_COMMANDS: 'false', PRE_COMMANDS: `touch '${tree}/local-ran.txt'` });
    expect(report.status).toBe('partial');
    expect(report.error).toContain('ALLOW_REMOTE_COMMANDS=false');
    await expect(readFile(marker)).rejects.toThrow();
    expect(await files()).toContain(path.join(tree, 'local-ran.txt'));
  });

  it('an allow-list admits only the commands it names', async () => {
    const allowed = `touch '${tree}/allowed.txt'`;
    await dashboard.configureClient(clientId, { preCommands: `${allowed}\ntouch '${tree}/not-allowed.txt'` });
    const { report } = await runAgentOnce({ ...env, REMOTE_COMMAND_ALLOWLIST: JSON.stringify([allowed]) });
    expect(report.error).toContain('REMOTE_COMMAND_ALLOWLIST');
    await readFile(path.join(tree, 'allowed.txt'));
    await expect(readFile(path.join(tree, 'not-allowed.txt'))).rejects.toThrow();
  });

  it('env mode registers again when the server revoked its token, and catches up at once', async () => {
    await dashboard.configureClient(clientId, { preCommands: '' });
    await dashboard.revokeToken(clientId);
    const agent = startAgent(env);
    try {
      const first = await waitForRuns(agent, 1);
      expect(first.status).toBe('failed');
      await agent.waitForOutput(/registered again after the server refused the token/);
      const second = await waitForRuns(agent, 2);
      expect(second.status).toBe('succeeded');
    } finally {
      await agent.stop();
    }
    expect((await readAgentState(stateDir)).clientId).toBe(clientId);
  });

  it('"back up now" in the dashboard reaches the agent through its ping', async () => {
    await dashboard.configureClient(clientId, { preCommands: '' });
    const agent = startAgent({ ...env, PING_INTERVAL: '1' });
    try {
      await waitForRuns(agent, 1);
      await dashboard.requestRun(clientId);
      await agent.waitForOutput(/the server asked for a backup/);
      const second = await waitForRuns(agent, 2);
      expect(second.status).toBe('succeeded');
    } finally {
      await agent.stop();
    }
  });
});
