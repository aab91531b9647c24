/**
 * docker-compose.server.yml puts Debian's/Docker's Caddy in front of the
 * server replicas with deploy/Caddyfile. Here the very Caddyfile runs in a
 * real Caddy (Debian's package; .ci/run installs it) in front of a real
 * server process, its upstream name pointed at localhost: an agent
 * registers, backs up and restores byte for byte through the proxy, and
 * "Back up now" reaches it through the proxied live channel (its heartbeat
 * is an hour away, so only the server-sent event can start the run; a proxy
 * that buffered the stream would hold the event back).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, AGENT_MAIN, DashboardSession, envModeAgentEnv, readAgentState, startAgent, waitForRuns } from '../helpers/agent-e2e.ts';
import { freePort, REPO_ROOT, startProcess, startServerProcess, waitForHttp, type ManagedProcess, type ServerProcess } from '../helpers/processes.ts';

const caddyMissing = spawnSync('caddy', ['version'], { stdio: 'ignore' }).status !== 0;
// CI installs caddy (.ci/run); a developer machine without it skips this file.
if (caddyMissing && process.env.CI !== undefined) throw new Error('caddy not found: apt-get install caddy (see .ci/run)');

describe.skipIf(caddyMissing)('the server behind deploy/Caddyfile in a real Caddy', () => {
  let base: string;
  let server: ServerProcess;
  let caddy: ChildProcess;
  let caddyOutput = '';
  let proxyUrl: string;
  let agent: ManagedProcess;
  let tree: string;
  let stateDir: string;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-proxy-'));
    tree = path.join(base, 'tree');
    await mkdir(tree);
    await writeFile(path.join(tree, 'big.bin'), randomBytes(3 * 1024 * 1024 + 5));
    await writeFile(path.join(tree, 'small.txt'), 'through the proxy\n');
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD, TRUST_PROXY: 'true' });
    const port = await freePort();
    proxyUrl = `http://127.0.0.1:${port}`;
    caddy = spawn('caddy', ['run', '--config', path.join(REPO_ROOT, 'deploy/Caddyfile'), '--adapter', 'caddyfile'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: base, XDG_DATA_HOME: base, XDG_CONFIG_HOME: base, CAIRN_PROXY_PORT: String(port), CAIRN_UPSTREAM_HOST: 'localhost', CAIRN_UPSTREAM_PORT: String(server.port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    caddy.stdout?.on('data', (d: Buffer) => (caddyOutput += d.toString()));
    caddy.stderr?.on('data', (d: Buffer) => (caddyOutput += d.toString()));
    await waitForHttp(`${proxyUrl}/readyz`, undefined, 30_000).catch((error: unknown) => {
      throw new Error(`caddy did not proxy: ${String(error)}\n${caddyOutput.slice(-3000)}`);
    });
    stateDir = path.join(base, 'state');
    agent = startAgent(envModeAgentEnv(proxyUrl, stateDir, [tree]));
    await waitForRuns(agent, 1);
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    caddy?.kill('SIGTERM');
    await server?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('carries registration, uploads and the live channel; the dashboard works through it; a restore through it is byte-identical', async () => {
    const { clientId } = await readAgentState(stateDir);
    await waitFor(() => /live channel to the server open/.test(agent.output()), 'the live channel to open through the proxy');
    const session = new DashboardSession(proxyUrl);
    await session.login();
    await session.requestRun(clientId);
    const second = await waitForRuns(agent, 2);
    expect(second.status).toBe('succeeded');
    expect(agent.output()).toContain('the server asked for a backup; starting one');

    const target = path.join(base, 'restored');
    const restore = startProcess(AGENT_MAIN, ['restore', '--state', stateDir, '--target', target], {});
    const code = await new Promise<number | null>((resolve) => restore.child.once('exit', resolve));
    expect(code, restore.output()).toBe(0);
    for (const name of ['big.bin', 'small.txt']) expect(await readFile(path.join(target, tree, name))).toEqual(await readFile(path.join(tree, name)));
  }, 120_000);
});

async function waitFor(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
