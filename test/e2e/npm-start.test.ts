import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, freePort, startProcess, waitForHttp, type ManagedProcess } from '../helpers/processes.ts';

// The README's first command: `npm start` runs the server and a local agent on embedded defaults.
describe('npm start (scripts/start.ts)', () => {
  let proc: ManagedProcess | undefined;
  let dataDir: string | undefined;

  afterAll(async () => {
    await proc?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('starts the server and the agent, prints both URLs, and stops both on SIGTERM', async () => {
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
    expect(proc.output()).toContain(`Dashboard:         http://localhost:${serverPort}`);
    expect(proc.output()).toContain(`Agent setup page:  http://localhost:${agentPort}`);
    expect(proc.output()).toContain('INITIAL ADMIN PASSWORD');
    await waitForHttp(`http://127.0.0.1:${serverPort}/healthz`, proc);
    await waitForHttp(`http://127.0.0.1:${agentPort}/healthz`, proc);
    expect(await proc.stop()).toBe(0);
    await expect(fetch(`http://127.0.0.1:${serverPort}/healthz`)).rejects.toThrow();
  });
});
