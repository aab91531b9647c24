/**
 * Temporary download links on the dashboard (issue 14) in a real browser
 * (Debian's Chromium) against a real server: the "Temporary link" buttons of
 * a file's versions page and of a folder page show a URL once; that URL
 * downloads in a browser with no session; "Revoke all tokens and links"
 * stops it, and the user page lists live links, each with its own Revoke. Screenshots land in test-artifacts/download-links/.
 */
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestAgent } from '../../server/test/dashboard/agent-fixture.ts';
import { addUser, startDashboardHarness, type DashboardHarness } from '../../server/test/dashboard/dashboard-harness.ts';
import { artifactDir, chromiumAvailable, launchBrowser, signIn } from '../helpers/browser.ts';

describe.skipIf(!chromiumAvailable())('download links in Chromium', () => {
  let h: DashboardHarness;
  let browser: Browser;
  let shots: string;
  let aliceId: string;
  let agent: TestAgent;
  const contexts: BrowserContext[] = [];

  async function newPage(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
    contexts.push(context);
    const page = await context.newPage();
    page.on('dialog', (dialog) => void dialog.accept());
    return page;
  }
  async function signedInPage(): Promise<Page> {
    const page = await newPage();
    await signIn(page, h.url, 'alice', 'alice-password-1');
    return page;
  }
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    shots = await artifactDir('download-links');
    h = await startDashboardHarness('embedded');
    aliceId = (await addUser(h.ctx, 'alice', 'alice-password-1')).id;
    agent = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-laptop');
    await agent.backup([
      { path: '/home/alice/notes.txt', content: 'my notes' },
      { path: '/home/alice/docs/plan.md', content: '# plan' },
    ]);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await h?.close();
  });

  it('makes a link for a version that downloads in a browser without a session, until revoked', async () => {
    const page = await signedInPage();
    await page.goto(`${h.url}/clients/${agent.clientId}/versions?path=${encodeURIComponent('/home/alice/notes.txt')}`);
    await shot(page, '01-versions-with-link-button');
    await page.selectOption('table.versions form.link-form select[name=expires]', '1d');
    await page.click('table.versions form.link-form button[type=submit]');
    const url = await page.locator('#download-link').inputValue();
    expect(url).toMatch(new RegExp(`^${h.url}/api/v1/download/cairn_dl_`));
    expect(await page.locator('.token-card').textContent()).toContain('shown only once');
    await shot(page, '02-link-shown');

    // Another browser, never signed in.
    const stranger = await newPage();
    const [download] = await Promise.all([stranger.waitForEvent('download'), stranger.goto(url).catch(() => null)]);
    expect(download.suggestedFilename()).toBe('notes.txt');
    const file = await download.path();
    const { readFile } = await import('node:fs/promises');
    expect(await readFile(file, 'utf8')).toBe('my notes');

    await page.goto(`${h.url}/users/${aliceId}`);
    await page.click('#revoke-all-credentials');
    await page.waitForURL(/notice=credentials-revoked/);
    expect(await page.locator('.notice').textContent()).toContain('temporary download link');
    await shot(page, '03-revoked-all');
    const gone = await stranger.goto(url);
    expect(gone!.status()).toBe(410);
    expect(await stranger.locator('body').textContent()).toContain('no longer works: revoked');
  });

  it('makes a link for a folder archive', async () => {
    const page = await signedInPage();
    await page.goto(`${h.url}/clients/${agent.clientId}/files?path=/home/alice/docs`);
    await page.click('.browser-head form.link-form button[type=submit]');
    const url = await page.locator('#download-link').inputValue();
    expect(await page.locator('.token-card label').textContent()).toContain('The folder /home/alice/docs as a .tar.gz');
    await shot(page, '04-folder-link');
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(gunzipSync(Buffer.from(await response.arrayBuffer())).toString('latin1')).toContain('# plan');

    // The user page lists it (what, made, expires, uses) with a Revoke button of its own.
    await page.goto(`${h.url}/users/${aliceId}#download-links`);
    const rows = page.locator('table.download-links tbody tr');
    expect(await rows.count()).toBe(1);
    const row = (await rows.first().textContent())!;
    expect(row).toContain('/home/alice/docs');
    expect(row).toContain('folder as .tar.gz');
    expect(row).toContain('alice-laptop');
    expect((await rows.first().locator('td').nth(4).textContent())!.trim()).toBe('1');
    // From the top, so the sticky top bar does not sit over the section in a full-page shot.
    await page.evaluate('window.scrollTo(0, 0)');
    await shot(page, '05-user-page-links');
    await rows.first().locator('button[type=submit]').click();
    await page.waitForURL(/notice=download-link-revoked/);
    expect(await page.locator('.notice').textContent()).toContain('Link revoked');
    expect(await page.locator('#download-links').textContent()).toContain('No live links.');
    await page.evaluate('window.scrollTo(0, 0)');
    await shot(page, '06-link-revoked');
    expect((await fetch(url)).status).toBe(410);
  });
});
