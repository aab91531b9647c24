/**
 * Alerts from a real agent: the server and the agent run as separate
 * processes, the agent's pre-command is set in the dashboard, and the alert
 * is read where a person reads it, on the dashboard's alerts page.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, DashboardSession, envModeAgentEnv, readAgentState, runAgentOnce } from '../helpers/agent-e2e.ts';
import { startServerProcess, type ServerProcess } from '../helpers/processes.ts';

describe('alerts from a real agent', () => {
  let base: string;
  let server: ServerProcess;
  let dashboard: DashboardSession;
  let env: Record<string, string>;
  let clientId: string;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-alerts-'));
    const tree = path.join(base, 'tree');
    await mkdir(tree);
    await writeFile(path.join(tree, 'data.txt'), 'data');
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD });
    env = envModeAgentEnv(server.url, path.join(base, 'agent-state'), [tree]);
    expect((await runAgentOnce(env)).report.status).toBe('succeeded');
    clientId = (await readAgentState(path.join(base, 'agent-state'))).clientId;
    dashboard = new DashboardSession(server.url);
    await dashboard.login();
  });

  afterAll(async () => {
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('a pre-command that starts failing opens an alert on the dashboard, and a working one resolves it', async () => {
    expect(await dashboard.alertsPage()).toContain('No unresolved alerts.');
    await dashboard.configureClient(clientId, { preCommands: "echo 'pg_dump: connection refused' >&2; exit 7" });
    expect((await runAgentOnce(env)).report.status).toBe('partial');

    const open = await dashboard.alertsPage(`?client=${clientId}`);
    expect(open).toContain('pre-command `echo &#39;pg_dump: connection refused&#39; &gt;&amp;2; exit 7` exited with 7');
    expect(open).toMatch(/<td class="observed" data-label="Observed">exited with 7<\/td>\s*<td class="reference muted" data-label="Reference">exit code 0<\/td>/);
    expect(await dashboard.clientPage(clientId)).toContain('Open alerts');

    await dashboard.configureClient(clientId, { preCommands: 'true' });
    expect((await runAgentOnce(env)).report.status).toBe('succeeded');
    expect(await dashboard.alertsPage()).toContain('No unresolved alerts.');
    expect(await dashboard.alertsPage('?state=resolved')).toContain('exited with 7');
  });
});
