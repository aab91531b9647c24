/**
 * The agent reports its own configuration to the server, end to end: a real
 * env-mode agent process with local paths, excludes, pre-commands and
 * ALLOW_REMOTE_COMMANDS=false, a real server process, and the dashboard's
 * client page showing them marked local beside the central ones, without
 * any secret the agent holds.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, DashboardSession, envModeAgentEnv, readAgentState, startAgent, waitForRuns } from '../helpers/agent-e2e.ts';
import { startServerProcess, type ServerProcess } from '../helpers/processes.ts';

describe('an agent\u2019s local configuration on the dashboard', () => {
  let base: string;
  let server: ServerProcess;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-local-config-'));
    await mkdir(path.join(base, 'tree'), { recursive: true });
    await writeFile(path.join(base, 'tree', 'a.txt'), 'hello\n');
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD });
  });

  afterAll(async () => {
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('shows the agent\u2019s paths, excludes and pre-commands marked local, and no password or token', async () => {
    const stateDir = path.join(base, 'agent-state');
    const tree = path.join(base, 'tree');
    const agent = startAgent(
      envModeAgentEnv(server.url, stateDir, [tree], {
        EXCLUDES: '**/*.cache,**/tmp/**',
        PRE_COMMANDS: 'echo local-dump-done',
        PRE_COMMAND_TIMEOUT: '120',
        ALLOW_REMOTE_COMMANDS: 'false',
      }),
    );
    try {
      await waitForRuns(agent, 1);
      const state = await readAgentState(stateDir);
      const dashboard = new DashboardSession(server.url);
      await dashboard.login();
      await dashboard.configureClient(state.clientId, { monitoredPaths: '/srv/central', preCommands: 'echo central' });
      const page = await dashboard.clientPage(state.clientId);
      const card = page.slice(page.indexOf('id="agent-config"'), page.indexOf('id="settings"'));
      expect(card).toContain('local part reported by the agent');
      expect(card).toContain(`<code>${tree}</code> <span class="badge source-local">local</span>`);
      expect(card).toContain('<code>/srv/central</code> <span class="badge source-central">central</span>');
      expect(card).toContain('<code>**/*.cache</code> <span class="badge source-local">local</span>');
      expect(card).toContain('<code>**/tmp/**</code> <span class="badge source-local">local</span>');
      expect(card).toMatch(/<code>echo local-dump-done<\/code> <span class="badge source-local">local<\/span> <span class="muted small">timeout 2 min<\/span>/);
      // The central command is refused on this agent, and the page says so.
      expect(card).toMatch(/<code>echo central<\/code> <span class="badge source-central">central<\/span>.*refused by the agent/);
      expect(card).toContain('<span class="small">every 1 h (BACKUP_INTERVAL on the agent)');
      expect(page).not.toContain(ADMIN_PASSWORD);
      expect(page).not.toContain(state.token);
      // The agent's log never carried the report's secrets either.
      expect(agent.output()).not.toContain(ADMIN_PASSWORD);
    } finally {
      await agent.stop();
    }
  });
});
