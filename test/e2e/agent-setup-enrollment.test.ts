/**
 * The agent's setup page registering with an enrollment key, in Chromium:
 * a real server process, a real UI-mode agent process, the key made on the
 * dashboard over HTTP. Screenshots land in test-artifacts/agent-enrollment/.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { ADMIN_PASSWORD, DashboardSession, startAgent } from '../helpers/agent-e2e.ts';
import { artifactDir, chromiumAvailable, launchBrowser } from '../helpers/browser.ts';
import { freePort, startServerProcess, waitForHttp, type ManagedProcess, type ServerProcess } from '../helpers/processes.ts';

describe.skipIf(!chromiumAvailable())('the agent setup page with an enrollment key', () => {
  let base: string;
  let tree: string;
  let stateDir: string;
  let server: ServerProcess;
  let agent: ManagedProcess;
  let agentUrl: string;
  let browser: Browser;
  let page: Page;
  let shots: string;
  let dashboard: DashboardSession;

  const shot = (name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  const submit = () => Promise.all([page.waitForLoadState('load'), page.click('button[type="submit"]')]);

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-ui-key-'));
    tree = path.join(base, 'documents');
    stateDir = path.join(base, 'agent-state');
    await mkdir(tree, { recursive: true });
    await writeFile(path.join(tree, 'notes.md'), '# notes\n');
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD });
    dashboard = new DashboardSession(server.url);
    await dashboard.login();
    const uiPort = await freePort();
    agentUrl = `http://127.0.0.1:${uiPort}`;
    agent = startAgent({ AGENT_STATE_DIR: stateDir, CLIENT_UI_PORT: String(uiPort), CLIENT_UI_HOST: '127.0.0.1', CLIENT_NAME: 'shop-laptop' });
    await waitForHttp(`${agentUrl}/healthz`, agent);
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    shots = await artifactDir('agent-enrollment');
  });

  afterAll(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('a key with a name the key does not allow is refused on the name field; nothing is saved', async () => {
    const key = await dashboard.createEnrollmentKey({ uses: 'single', namePrefix: 'shop-front-' });
    await page.goto(agentUrl);
    await page.fill('[name="serverUrl"]', server.url);
    await page.fill('[name="enrollmentKey"]', key);
    await page.fill('[name="monitoredPaths"]', tree);
    await submit();
    await expect(page.locator('.alert-error').textContent()).resolves.toContain('did not accept this enrollment key');
    expect(await page.locator('.field.has-error .error').allTextContents()).toEqual(['must start with "shop-front-" (this enrollment key\'s prefix)']);
    expect(await page.inputValue('[name="enrollmentKey"]')).toBe(''); // never echoed back
    await expect(readFile(path.join(stateDir, 'agent.json'))).rejects.toThrow();
  });

  it('an unknown key is refused on the key field', async () => {
    await page.fill('[name="serverUrl"]', server.url);
    await page.fill('[name="enrollmentKey"]', 'cairn_enroll_not-a-key-of-this-server');
    await page.fill('[name="monitoredPaths"]', tree);
    await submit();
    expect(await page.locator('.field.has-error .error').allTextContents()).toEqual(['enrollment key is not valid']);
    await shot('01-unknown-key');
  });

  it('a good key registers the machine without a user name or password and starts backing up', async () => {
    const key = await dashboard.createEnrollmentKey({ uses: 'single' });
    await page.fill('[name="serverUrl"]', server.url);
    await page.fill('[name="enrollmentKey"]', key);
    await page.fill('[name="username"]', '');
    await page.fill('[name="monitoredPaths"]', tree);
    await submit();
    expect(new URL(page.url()).pathname).toBe('/');
    await page.waitForSelector('.pill-succeeded', { timeout: 60_000 });
    await shot('02-enrolled');
    const state = JSON.parse(await readFile(path.join(stateDir, 'agent.json'), 'utf8')) as { registeredWith: string; username: string; clientId: string };
    expect(state).toMatchObject({ registeredWith: 'enrollment-key', username: '' });
    expect(await readFile(path.join(stateDir, 'agent.json'), 'utf8')).not.toContain(key);
    expect(agent.output()).not.toContain(key);
    expect(await dashboard.clientPage(state.clientId)).toContain('shop-laptop');
  });
});
