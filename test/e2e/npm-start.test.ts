import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT, freePort, startProcess, waitForHttp, type ManagedProcess } from '../helpers/processes.ts';

// The README's first command: `npm start` runs the server and a local agent on embedded defaults.
describe('npm start (scripts/start.ts)', () => {
  let proc: ManagedProcess | undefined;
  let dataDir: string | undefined;

  afterEach(async () => {
    await proc?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function startAll(): Promise<{ serverPort: number; agentPort: number }> {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-npm-start-'));
    const serverPort = await freePort();
    const agentPort = await freePort();
    proc = startProcess(path.join(REPO_ROOT, 'scripts/start.ts'), [], {
      PORT: String(serverPort),
      CLIENT_UI_PORT: String(agentPort),
      DATA_DIR: dataDir,
      AGENT_STATE_DIR: path.join(dataDir, 'agent'),
    });
    await proc.waitForOutput(/Cairn is running/);
    await waitForHttp(`http://127.0.0.1:${serverPort}/healthz`, proc);
    await waitForHttp(`http://127.0.0.1:${agentPort}/healthz`, proc);
    return { serverPort, agentPort };
  }

  /** The pids of the server and the agent as they log them (pino's `pid`). */
  function loggedPid(name: 'server' | 'agent'): number {
    const line = (proc as ManagedProcess)
      .output()
      .split('\n')
      .find((l) => l.startsWith(`[${name}]`) && l.includes('"pid":'));
    const match = line?.match(/"pid":(\d+)/);
    if (!match) throw new Error(`no ${name} pid in the output:\n${(proc as ManagedProcess).output().slice(-2000)}`);
    return Number(match[1]);
  }

  it('starts the server and the agent, prints both URLs, and stops both on SIGTERM', async () => {
    const { serverPort, agentPort } = await startAll();
    expect(proc?.output()).toContain(`Dashboard:         http://localhost:${serverPort}`);
    expect(proc?.output()).toContain(`Agent setup page:  http://localhost:${agentPort}`);
    expect(proc?.output()).toContain('INITIAL ADMIN PASSWORD');
    const code = await proc?.stop();
    expect(code, proc?.output().slice(-3000)).toBe(0);
    await expect(fetch(`http://127.0.0.1:${serverPort}/healthz`)).rejects.toThrow();
  });

  // On a loaded machine a process may take a while to run its signal handler. A wrapper
  // between npm start and the server (the tsx CLI gives its child 60 ms, then SIGKILLs it
  // and exits 143) turned that into a killed server and a failed `npm start`. A stopped
  // process is the busiest there is: the signal must still reach the server itself and
  // be handled once it runs again.
  it('stops cleanly when the server is too busy to take the signal at once', async () => {
    const { serverPort } = await startAll();
    const serverPid = loggedPid('server');
    const child = (proc as ManagedProcess).child;
    const exited = once(child, 'exit');
    process.kill(serverPid, 'SIGSTOP');
    try {
      child.kill('SIGTERM');
      await sleep(500);
    } finally {
      process.kill(serverPid, 'SIGCONT');
    }
    const [code] = await exited;
    expect(code, proc?.output().slice(-3000)).toBe(0);
    expect(proc?.output()).toMatch(/\[server\].*"signal":"SIGTERM".*shutting down/);
    await expect(fetch(`http://127.0.0.1:${serverPort}/healthz`)).rejects.toThrow();
  });

  // A supervisor that repeats its SIGTERM, or a person pressing Ctrl-C twice, must not
  // turn a clean stop into a killed server and a failed exit code.
  it('a repeated SIGTERM while stopping still stops cleanly', async () => {
    const { serverPort } = await startAll();
    const child = (proc as ManagedProcess).child;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    child.kill('SIGTERM');
    await sleep(20);
    child.kill('SIGTERM');
    const [code] = await exited;
    expect(code, proc?.output().slice(-3000)).toBe(0);
    await expect(fetch(`http://127.0.0.1:${serverPort}/healthz`)).rejects.toThrow();
  });
});
