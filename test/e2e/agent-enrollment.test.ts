/**
 * Enrollment keys and schedules end to end: a real server process, real
 * env-mode agent processes, the key made on the dashboard over HTTP.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, DashboardSession, envModeAgentEnv, readAgentState, runReports, startAgent, waitForRuns } from '../helpers/agent-e2e.ts';
import { startServerProcess, type ManagedProcess, type ServerProcess } from '../helpers/processes.ts';

/** The exit code the process ends with by itself. */
const exitCodeOf = (proc: ManagedProcess) =>
  new Promise<number | null>((resolve) => (proc.child.exitCode !== null ? resolve(proc.child.exitCode) : proc.child.once('exit', (code) => resolve(code))));

describe('agents registering with enrollment keys, on cron schedules', () => {
  let base: string;
  let tree: string;
  let server: ServerProcess;
  let dashboard: DashboardSession;

  /** Env mode with a key and no user name or password anywhere in its environment. */
  const keyEnv = (stateDir: string, key: string, extra: Record<string, string> = {}) => {
    const { USERNAME: _user, PASSWORD: _password, ...env } = envModeAgentEnv(server.url, stateDir, [tree], extra);
    return { ...env, ENROLLMENT_KEY: key };
  };

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-enroll-'));
    tree = path.join(base, 'tree');
    await mkdir(tree, { recursive: true });
    await writeFile(path.join(tree, 'notes.txt'), 'enrolled without a password\n');
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD });
    dashboard = new DashboardSession(server.url);
    await dashboard.login();
  });

  afterAll(async () => {
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('registers with a single-use key, backs up, and never logs the key', async () => {
    const stateDir = path.join(base, 'web-1');
    const key = await dashboard.createEnrollmentKey({ uses: 'single' });
    const agent = startAgent(keyEnv(stateDir, key));
    try {
      const report = await waitForRuns(agent, 1);
      expect(report).toMatchObject({ status: 'succeeded', filesChanged: 1 });
      expect(agent.output()).toContain('"with":"enrollment-key"');
      expect(agent.output()).not.toContain(key);
    } finally {
      await agent.stop();
    }
    const state = await readAgentState(stateDir);
    expect(state).toMatchObject({ serverUrl: server.url, registeredWith: 'enrollment-key', username: '' });
    expect(await dashboard.clientPage(state.clientId)).toContain('web-1');
  });

  it('a revoked client stays revoked: the key-registered agent stops with a clear line instead of registering again', async () => {
    const stateDir = path.join(base, 'web-1');
    const { clientId } = await readAgentState(stateDir);
    await dashboard.revokeToken(clientId);
    // The key was single-use and is used up, but the agent must not even try: it says why and stops.
    const agent = startAgent(keyEnv(stateDir, 'cairn_enroll_a-key-that-would-be-refused-anyway', { PING_INTERVAL: '1' }));
    try {
      const first = await waitForRuns(agent, 1);
      expect(first.status).toBe('failed');
      await agent.waitForOutput(/it registered with an enrollment key, so it does not register again by itself: backups stopped/);
      expect(agent.output()).not.toContain('registered again');
      expect(agent.output()).not.toContain('"msg":"registered with the server"');
      expect(runReports(agent)).toHaveLength(1);
      expect(agent.child.exitCode).toBeNull();
    } finally {
      await agent.stop();
    }
    expect(await dashboard.clientPage(clientId)).toContain('the agent cannot connect');
  });

  it('a used single-use key is refused at start with the server\'s reason, and the agent exits 1', async () => {
    const key = await dashboard.createEnrollmentKey({ uses: 'single' });
    const first = startAgent(keyEnv(path.join(base, 'db-1'), key));
    try {
      await waitForRuns(first, 1);
    } finally {
      await first.stop();
    }
    const second = startAgent(keyEnv(path.join(base, 'db-2'), key));
    await second.waitForOutput(/the server refused ENROLLMENT_KEY/);
    expect(await exitCodeOf(second)).toBe(1);
    expect(second.output()).toContain('enrollment key was already used (it is single-use)');
    expect(second.output()).not.toContain(key);
  });

  it('a multi-use key with a name prefix enrols a name with it and refuses one without', async () => {
    const key = await dashboard.createEnrollmentKey({ uses: 'multi', expiresIn: '2d', namePrefix: 'fleet-' });
    const refused = startAgent(keyEnv(path.join(base, 'other-1'), key));
    await refused.waitForOutput(/the server refused ENROLLMENT_KEY/);
    expect(await exitCodeOf(refused)).toBe(1);
    expect(refused.output()).toContain('clientName must start with \\"fleet-\\"');
    for (const name of ['fleet-1', 'fleet-2']) {
      const agent = startAgent(keyEnv(path.join(base, name), key));
      try {
        expect((await waitForRuns(agent, 1)).status).toBe('succeeded');
      } finally {
        await agent.stop();
      }
    }
  });

  it('a cron schedule from the dashboard: a restarted agent waits for its time instead of running at once, then runs', async () => {
    const stateDir = path.join(base, 'fleet-1');
    const { clientId } = await readAgentState(stateDir);
    await dashboard.configureClient(clientId, { scheduleKind: 'cron', cron: '* * * * *', timeZone: 'Europe/Berlin' });
    // No local BACKUP_INTERVAL: the server's schedule is in force.
    const agent = startAgent({ ...keyEnv(stateDir, 'cairn_enroll_unused'), BACKUP_INTERVAL: '' });
    try {
      const [, nextRunAt] = (await agent.waitForOutput(/"nextRunAt":"([^"]+)","msg":"next backup scheduled"/)) as RegExpMatchArray;
      const at = new Date(nextRunAt as string);
      expect(at.getUTCSeconds()).toBe(0);
      expect(agent.output()).not.toContain('backup run started');
      await agent.waitForOutput(/"trigger":"schedule","msg":"backup run started"/, 90_000);
      const report = await waitForRuns(agent, 1);
      expect(report.status).toBe('succeeded');
      const started = JSON.parse(agent.output().split('\n').find((line) => line.includes('"msg":"backup run started"')) ?? '{}') as { time: number };
      expect(started.time).toBeGreaterThanOrEqual(at.getTime());
    } finally {
      await agent.stop();
    }
    expect(await dashboard.clientPage(clientId)).toContain('cron * * * * * (Europe/Berlin)');
  });
});
