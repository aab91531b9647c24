/**
 * The live channel's other events with a real server and a real env-mode
 * agent whose heartbeat is an hour apart (so nothing in the test can come by
 * a ping's timer): a schedule edit on the dashboard reaches the running
 * agent, which reschedules; revoking its token closes its channel at once,
 * and the agent (registered with a username and password) registers again
 * by itself and gets its channel back.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, DashboardSession, envModeAgentEnv, readAgentState, startAgent, waitForRuns } from '../helpers/agent-e2e.ts';
import { startServerProcess, type ManagedProcess, type ServerProcess } from '../helpers/processes.ts';

describe('live channel: config edits and token revocation reach a connected agent', () => {
  let base: string;
  let server: ServerProcess;
  let agent: ManagedProcess;
  let stateDir: string;
  let session: DashboardSession;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-live-events-'));
    const tree = path.join(base, 'tree');
    await mkdir(tree);
    await writeFile(path.join(tree, 'a.txt'), 'a');
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD });
    stateDir = path.join(base, 'state');
    // No local BACKUP_INTERVAL: the server's schedule is in force, so an edit of it changes what the agent does.
    agent = startAgent({ ...envModeAgentEnv(server.url, stateDir, [tree]), PING_INTERVAL: '3600', BACKUP_INTERVAL: '' });
    await waitForRuns(agent, 1);
    await agent.waitForOutput(/live channel to the server open/);
    session = new DashboardSession(server.url);
    await session.login();
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('takes a schedule edit at once, through the channel', async () => {
    const { clientId } = await readAgentState(stateDir);
    await session.configureClient(clientId, { scheduleKind: 'cron', cron: '30 3 * * *', timeZone: 'UTC' });
    const [line] = await agent.waitForOutput(/"cron":"30 3 \* \* \*"[^\n]*"msg":"the server changed the backup schedule"/, 30_000);
    expect(line).toContain('"timeZone":"UTC"');
    const [, next] = (await agent.waitForOutput(/"nextRunAt":"([^"]*T03:30:00\.000Z)","msg":"next backup scheduled"/, 30_000)) as RegExpMatchArray;
    expect(new Date(next!).getTime()).toBeGreaterThan(Date.now());
  });

  it('is cut off at once when its token is revoked, registers again with its credentials and reconnects', async () => {
    const before = await readAgentState(stateDir);
    const opened = agent.output().split('live channel to the server open').length - 1;
    await session.revokeToken(before.clientId);
    await agent.waitForOutput(/the server closed the live channel: this agent's token was revoked or replaced/, 30_000);
    await agent.waitForOutput(/registered again after the server refused the token/, 60_000);
    const after = await readAgentState(stateDir);
    expect(after.clientId).toBe(before.clientId);
    expect(after.token).not.toBe(before.token);
    // The channel comes back with the new token.
    const deadline = Date.now() + 60_000;
    while (agent.output().split('live channel to the server open').length - 1 <= opened) {
      if (Date.now() > deadline) throw new Error(`the live channel did not reopen:\n${agent.output().slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
});
