import { access, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { ADMIN_PASSWORD, startAgent } from '../helpers/agent-e2e.ts';
import { artifactDir, chromiumAvailable, launchBrowser } from '../helpers/browser.ts';
import { freePort, startServerProcess, waitForHttp, type ManagedProcess, type ServerProcess } from '../helpers/processes.ts';

const exists = (p: string) => access(p).then(() => true, () => false);

describe.skipIf(!chromiumAvailable())('the agent setup page in Chromium', () => {
  let base: string;
  let tree: string;
  let stateDir: string;
  let server: ServerProcess;
  let agent: ManagedProcess;
  let agentUrl: string;
  let browser: Browser;
  let page: Page;
  let shots: string;

  const shot = (name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  const fill = async (fields: Record<string, string>) => {
    for (const [name, value] of Object.entries(fields)) await page.fill(`[name="${name}"]`, value);
  };
  const submit = () => Promise.all([page.waitForLoadState('load'), page.click('button[type="submit"]')]);

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-ui-'));
    tree = path.join(base, 'documents');
    stateDir = path.join(base, 'agent-state');
    await mkdir(path.join(tree, 'reports'), { recursive: true });
    for (let i = 0; i < 40; i += 1) await writeFile(path.join(tree, 'reports', `report-${i}.txt`), `quarterly numbers ${i}\n`.repeat(200));
    await writeFile(path.join(tree, 'notes.md'), '# notes\n');
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD });
    const uiPort = await freePort();
    agentUrl = `http://127.0.0.1:${uiPort}`;
    agent = startAgent({ AGENT_STATE_DIR: stateDir, CLIENT_UI_PORT: String(uiPort), CLIENT_UI_HOST: '127.0.0.1', CLIENT_NAME: 'office-nas' });
    await waitForHttp(`${agentUrl}/healthz`, agent);
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    shots = await artifactDir('agent');
  });

  afterAll(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('first visit shows the setup form, with the hostname-style default name', async () => {
    await page.goto(agentUrl);
    await expect(page.locator('h1').textContent()).resolves.toContain('Back up this machine');
    expect(await page.inputValue('[name="clientName"]')).toBe('office-nas');
    await shot('01-setup-form');
  });

  it('shows inline errors for every bad field and saves nothing', async () => {
    await fill({ serverUrl: 'backup.example', username: '', password: '', clientName: 'office-nas', monitoredPaths: 'documents' });
    await submit();
    const errors = await page.locator('.field.has-error .error').allTextContents();
    expect(errors.join(' | ')).toMatch(/full http/);
    expect(errors.join(' | ')).toMatch(/user name/);
    expect(errors.join(' | ')).toMatch(/password/);
    expect(errors.join(' | ')).toMatch(/absolute paths/);
    expect(await page.inputValue('[name="serverUrl"]')).toBe('backup.example'); // what was typed stays
    await shot('02-validation-errors');
    expect(await exists(path.join(stateDir, 'agent.json'))).toBe(false);
  });

  it('an unreachable server is named clearly and nothing is saved', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    await fill({ serverUrl: nowhere, username: 'admin', password: ADMIN_PASSWORD, monitoredPaths: tree });
    await submit();
    await expect(page.locator('.alert-error').textContent()).resolves.toContain(`Cannot reach the server at ${nowhere}`);
    expect(await exists(path.join(stateDir, 'agent.json'))).toBe(false);
  });

  it('a wrong password is refused and nothing is saved', async () => {
    await fill({ serverUrl: server.url, username: 'admin', password: 'not-the-password', monitoredPaths: tree });
    await submit();
    await expect(page.locator('.alert-error').textContent()).resolves.toContain('did not accept this user name and password');
    expect(await page.inputValue('[name="password"]')).toBe(''); // never echoed back
    await shot('03-wrong-password');
    expect(await exists(path.join(stateDir, 'agent.json'))).toBe(false);
    expect(await exists(path.join(stateDir, 'token'))).toBe(false);
  });

  it('the right credentials save the state and start a backup at once; the status page shows it', async () => {
    await fill({ serverUrl: server.url, username: 'admin', password: ADMIN_PASSWORD, monitoredPaths: tree });
    await submit();
    expect(new URL(page.url()).pathname).toBe('/');
    // The status script reloads the page when the run ends.
    await page.waitForSelector('.pill-succeeded', { timeout: 60_000 });
    await expect(page.locator('h1').textContent()).resolves.toContain('Protected');
    const dashboardLink = await page.getAttribute('a:has-text("Open in dashboard")', 'href');
    expect(dashboardLink).toMatch(/^http:\/\/[^/]+\/clients\/[0-9a-f-]{36}$/);
    await expect(page.locator('#last-run .stats').textContent()).resolves.toContain('41');
    await shot('04-status');

    expect((await stat(path.join(stateDir, 'token'))).mode & 0o777).toBe(0o600);
    const saved = await readFile(path.join(stateDir, 'agent.json'), 'utf8');
    expect(saved).not.toContain(ADMIN_PASSWORD);
    expect(JSON.parse(saved)).toMatchObject({ serverUrl: server.url, clientName: 'office-nas', monitoredPaths: [tree] });
    expect(agent.output()).not.toContain(ADMIN_PASSWORD);
  });

  it('"Back up now" starts another run', async () => {
    await writeFile(path.join(tree, 'new.txt'), 'added later');
    await Promise.all([page.waitForLoadState('load'), page.click('button:has-text("Back up now")')]);
    // The status script reloads the page when the run ends (the page's CSP forbids evaluating strings, so wait on the DOM).
    await page.locator('.run-line', { hasText: "started on the agent's page" }).waitFor({ timeout: 60_000 });
    await expect(page.locator('#last-run .stats').textContent()).resolves.toContain('42');
  });

  it('changing the setup asks for the server credentials again', async () => {
    const before = await readFile(path.join(stateDir, 'agent.json'), 'utf8');
    const tokenBefore = await readFile(path.join(stateDir, 'token'), 'utf8');
    await page.goto(`${agentUrl}/setup`);
    expect(await page.inputValue('[name="password"]')).toBe('');

    // No password: refused by validation.
    await fill({ monitoredPaths: '/etc' });
    await submit();
    expect(await page.locator('.field.has-error .error').allTextContents()).toContain('Enter your password on the server.');

    // Another server without an account on the current one: refused.
    const other = await startServerProcess({ DATA_DIR: path.join(base, 'other-server'), ADMIN_PASSWORD: 'attacker-password' });
    try {
      await fill({ serverUrl: other.url, username: 'admin', password: 'attacker-password', monitoredPaths: '/etc' });
      await submit();
      const errors = (await page.locator('.field.has-error .error').allTextContents()).join(' | ');
      expect(errors).toContain(`Moving to another server needs your account on ${server.url}`);
      await shot('05-reconfigure-refused');

      // ...and a wrong password for the current server: refused too.
      await fill({ serverUrl: other.url, username: 'admin', password: 'attacker-password', currentUsername: 'admin', currentPassword: 'guess', monitoredPaths: '/etc' });
      await submit();
      await expect(page.locator('.alert-error').textContent()).resolves.toContain('did not accept');
    } finally {
      await other.stop();
    }
    expect(await readFile(path.join(stateDir, 'agent.json'), 'utf8')).toBe(before);
    expect(await readFile(path.join(stateDir, 'token'), 'utf8')).toBe(tokenBefore);
  });

  it('with the credentials, the change is applied', async () => {
    const extra = path.join(base, 'photos');
    await mkdir(extra);
    await writeFile(path.join(extra, 'cat.jpg'), 'not really a jpeg');
    await page.goto(`${agentUrl}/setup`);
    await fill({ username: 'admin', password: ADMIN_PASSWORD, monitoredPaths: `${tree}\n${extra}` });
    await submit();
    await expect(page.locator('.alert-info').textContent()).resolves.toContain('Setup saved');
    expect(JSON.parse(await readFile(path.join(stateDir, 'agent.json'), 'utf8')).monitoredPaths).toEqual([tree, extra]);
    for (;;) {
      const health = (await (await fetch(`${agentUrl}/healthz`)).json()) as { running: boolean };
      if (!health.running) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await page.reload();
    await expect(page.locator('#last-run .stats').textContent()).resolves.toContain('43');
    await page.setViewportSize({ width: 420, height: 900 });
    await shot('06-status-narrow');
    await page.setViewportSize({ width: 1200, height: 900 });
  });

  it('refuses cross-origin posts and answers /healthz', async () => {
    const crossSite = await fetch(`${agentUrl}/run`, { method: 'POST', headers: { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' } });
    expect(crossSite.status).toBe(403);
    const health = (await (await fetch(`${agentUrl}/healthz`)).json()) as { ok: boolean; configured: boolean };
    expect(health).toMatchObject({ ok: true, configured: true });
  });
});
