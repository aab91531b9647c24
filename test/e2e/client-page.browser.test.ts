/**
 * The client page's history and file finding in Chromium against a real
 * server (embedded PostgreSQL, disk blobs), data sent by the TestAgent
 * through the agent API: the agent's local configuration card, the paged
 * runs list, the file search and the deleted-files view. Screenshots in
 * test-artifacts/client-page/.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../server/src/config/server-config.ts';
import { createLogger } from '../../server/src/logger.ts';
import { startServer, type RunningServer } from '../../server/src/server.ts';
import { TestAgent } from '../../server/test/dashboard/agent-fixture.ts';
import { artifactDir, chromiumAvailable, launchBrowser, signIn } from '../helpers/browser.ts';

const ADMIN_PASSWORD = 'admin-password-e2e';

describe.skipIf(!chromiumAvailable())('client page history and file search in Chromium', () => {
  let dataDir: string;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  let shots: string;
  let agent: TestAgent;

  const shot = (name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    shots = await artifactDir('client-page');
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-client-page-'));
    const config = loadServerConfig({ DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', ADMIN_USERNAME: 'admin', ADMIN_PASSWORD, SECRET_KEY: 'e2e-client-page-secret-key-0123456789abcdef', LOG_LEVEL: 'warn' });
    server = await startServer(config, createLogger('warn'));
    agent = await TestAgent.register(server.url, 'admin', ADMIN_PASSWORD, 'db-01', 'db-01.internal');
    await agent.backup([
      { path: '/var/backups/app.sql', content: 'create table t (id int);\n' },
      { path: '/var/backups/old-app.sql', content: 'the dump of last year\n' },
      { path: '/etc/app/config.json', content: '{"debug":false}\n' },
      ...Array.from({ length: 12 }, (_, i) => ({ path: `/srv/reports/Quarterly-${2020 + i}.md`, content: `# report ${i}\n` })),
    ]);
    await agent.backup([], { deletes: ['/var/backups/old-app.sql', '/srv/reports/Quarterly-2020.md'] });
    for (let i = 0; i < 52; i += 1) await agent.backup([{ path: '/var/backups/app.sql', content: `create table t${i} (id int);\n` }]);
    await agent.ping({
      localConfig: {
        monitoredPaths: ['/var/backups'],
        excludes: ['**/*.tmp'],
        preCommands: [{ command: 'pg_dump -Fp app > /var/backups/app.sql', timeoutSeconds: 900 }],
        allowRemoteCommands: true,
        remoteCommandAllowlist: null,
        backupIntervalSeconds: null,
      },
    });
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
    page = await context.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('shows the local configuration beside the central one', async () => {
    await page.goto(`${server.url}/clients/${agent.clientId}`);
    const card = page.locator('#agent-config');
    await expect(card.locator('li', { has: page.locator('code', { hasText: /^\/var\/backups$/ }) }).locator('.badge').textContent()).resolves.toBe('local');
    await expect(card.locator('li', { hasText: 'pg_dump -Fp app' }).locator('.badge.source-local').count()).resolves.toBe(1);
    await card.scrollIntoViewIfNeeded();
    await page.locator('#agent-config').screenshot({ path: path.join(shots, '01-agent-config.png') });
  });

  it('pages through every run from the client page', async () => {
    await page.goto(`${server.url}/clients/${agent.clientId}`);
    await page.click('#recent-runs a:has-text("All runs")');
    await page.waitForURL(/\/runs$/);
    await expect(page.locator('table.runs > tbody > tr[id^=run-]').count()).resolves.toBe(50);
    await shot('02-runs');
    await page.click('a[rel=next]');
    await page.waitForURL(/before=/);
    await expect(page.locator('table.runs > tbody > tr[id^=run-]').count()).resolves.toBe(4);
    await expect(page.locator('a[rel=next]').count()).resolves.toBe(0);
    await page.click('text=← Newest');
    await expect(page.locator('table.runs > tbody > tr[id^=run-]').count()).resolves.toBe(50);
  });

  it('finds files from the files page and opens a hit\u2019s versions', async () => {
    await page.goto(`${server.url}/clients/${agent.clientId}/files`);
    await page.fill('input[name=q]', '*.SQL');
    await page.click('form[role=search] button[type=submit]');
    await page.waitForURL(/\/search\?q=/);
    const rows = page.locator('table.hits tbody tr');
    await expect(rows.count()).resolves.toBe(2);
    await expect(rows.filter({ hasText: 'old-app.sql' }).locator('.badge.bad').textContent()).resolves.toBe('deleted');
    await expect(rows.filter({ hasText: '/var/backups/app.sql' }).locator('td').nth(4).textContent()).resolves.toBe('30'); // 53 backed up, the owner's policy keeps 30
    await shot('03-search');
    await page.fill('input[name=q]', 'quarterly');
    await page.click('form[role=search] button[type=submit]');
    await expect(rows.count()).resolves.toBe(12);
    await page.click('a:has-text("/srv/reports/Quarterly-2021.md")');
    await page.waitForURL(/\/versions\?path=/);
    await expect(page.locator('table.versions tbody tr').count()).resolves.toBe(1);
  });

  it('shows deleted files and downloads the last version of one', async () => {
    await page.goto(`${server.url}/clients/${agent.clientId}/files`);
    await page.click('form[role=search] a:has-text("Deleted files")');
    await page.waitForURL(/\/deleted$/);
    const rows = page.locator('table.hits tbody tr');
    await expect(rows.count()).resolves.toBe(2);
    await shot('04-deleted');
    const [download] = await Promise.all([page.waitForEvent('download'), rows.filter({ hasText: 'old-app.sql' }).locator('a:has-text("Download last version")').click()]);
    expect(await readFile((await download.path())!, 'utf8')).toBe('the dump of last year\n');
  });
});
