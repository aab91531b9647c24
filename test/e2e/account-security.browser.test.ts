/**
 * The account-security parts of the dashboard (issue 14) in a real browser
 * (Debian's Chromium) against a real server: the user's sessions and ending
 * one, the self-service password change, API tokens (shown once, used,
 * revoked), moving a client and deleting a user with confirmation.
 * Screenshots land in test-artifacts/account-security/.
 */
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestAgent } from '../../server/test/dashboard/agent-fixture.ts';
import { addUser, startDashboardHarness, type DashboardHarness } from '../../server/test/dashboard/dashboard-harness.ts';
import { artifactDir, chromiumAvailable, launchBrowser, signIn } from '../helpers/browser.ts';

describe.skipIf(!chromiumAvailable())('account security in Chromium', () => {
  let h: DashboardHarness;
  let browser: Browser;
  let shots: string;
  let aliceId: string;
  let agent: TestAgent;
  const contexts: BrowserContext[] = [];

  async function signedInPage(username: string, password: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, userAgent: `Chromium test (${username} #${contexts.length + 1})` });
    contexts.push(context);
    const page = await context.newPage();
    // The confirmation prompts (data-confirm) are answered yes.
    page.on('dialog', (dialog) => void dialog.accept());
    await signIn(page, h.url, username, password);
    return page;
  }
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    shots = await artifactDir('account-security');
    h = await startDashboardHarness('embedded');
    await addUser(h.ctx, 'admin', 'admin-password-1', true);
    aliceId = (await addUser(h.ctx, 'alice', 'alice-password-1')).id;
    await addUser(h.ctx, 'bob', 'bob-password-1');
    await addUser(h.ctx, 'carol', 'carol-password-1');
    agent = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-laptop');
    await agent.backup([{ path: '/home/alice/notes.txt', content: 'notes' }]);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await h?.close();
  });

  it('lists the user’s sessions and ends another one', async () => {
    const laptop = await signedInPage('alice', 'alice-password-1');
    const phone = await signedInPage('alice', 'alice-password-1');
    await laptop.click('.whoami a');
    await laptop.waitForURL(new RegExp(`/users/${aliceId}`));
    const rows = laptop.locator('table.sessions tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await laptop.locator('table.sessions tr:has-text("this browser")').textContent()).toContain('#1');
    await shot(laptop, '01-sessions');
    await laptop.locator('table.sessions tr:has-text("#2") button').click();
    await laptop.waitForURL(/notice=session-revoked/);
    expect(await laptop.locator('.notice').textContent()).toBe('Session ended.');
    expect(await rows.count()).toBe(1);
    await phone.reload();
    expect(new URL(phone.url()).pathname).toBe('/login');
  });

  it('changes the password after checking the current one', async () => {
    const page = await signedInPage('alice', 'alice-password-1');
    await page.goto(`${h.url}/users/${aliceId}`);
    await page.fill('#change-password input[name=currentPassword]', 'wrong-password-1');
    await page.fill('#change-password input[name=newPassword]', 'alice-password-2');
    await page.click('#change-password button[type=submit]');
    expect(await page.locator('#change-password .error').textContent()).toBe('does not match your current password');
    await shot(page, '02-password-wrong');
    await page.fill('#change-password input[name=currentPassword]', 'alice-password-1');
    await page.fill('#change-password input[name=newPassword]', 'alice-password-2');
    await page.click('#change-password button[type=submit]');
    await page.waitForURL(/notice=password-changed/);
    expect(await page.locator('.notice').textContent()).toBe('Password changed. Your other sessions ended.');
    // The first test's laptop session was another session: it ended.
    expect(await page.locator('table.sessions tbody tr').count()).toBe(1);
  });

  it('creates an API token, shows it once, and revokes it', async () => {
    const page = await signedInPage('alice', 'alice-password-2');
    await page.goto(`${h.url}/users/${aliceId}`);
    await page.fill('#api-tokens input[name=name]', 'nightly report');
    await page.selectOption('#api-tokens select[name=access]', 'read');
    await page.fill('#api-tokens input[name=expiresInDays]', '14');
    await page.click('#api-tokens button[type=submit]');
    const token = await page.locator('#api-token').inputValue();
    expect(token).toMatch(/^cairn_pat_/);
    expect(await page.locator('table.api-tokens tbody tr').count()).toBe(1);
    await shot(page, '03-token-created');
    const me = await fetch(`${h.url}/api/v1/admin/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(me.status).toBe(200);
    await page.goto(`${h.url}/users/${aliceId}`);
    expect(await page.locator('#api-token').count()).toBe(0);
    expect(await page.content()).not.toContain(token);
    await page.click('table.api-tokens button:has-text("Revoke")');
    await page.waitForURL(/notice=api-token-revoked/);
    expect(await page.locator('table.api-tokens .badge.bad').textContent()).toBe('revoked');
    await shot(page, '04-token-revoked');
    expect((await fetch(`${h.url}/api/v1/admin/me`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  it('moves a client to another owner', async () => {
    const page = await signedInPage('admin', 'admin-password-1');
    await page.goto(`${h.url}/clients/${agent.clientId}`);
    await page.selectOption('select[name=ownerId]', { label: 'bob' });
    await page.click('button:has-text("Move client")');
    await page.waitForURL(/notice=client-moved/);
    expect(await page.locator('#client-status dl.kv dd').first().textContent()).toBe('bob');
    await shot(page, '05-client-moved');
  });

  it('deletes a user only after their name is typed', async () => {
    const page = await signedInPage('admin', 'admin-password-1');
    await page.goto(`${h.url}/users`);
    await page.click('a:text-is("carol")');
    await page.fill('#delete-user input[name=confirmUsername]', 'carl');
    await page.click('#delete-user button[type=submit]');
    expect(await page.locator('#delete-user .form-error').textContent()).toBe('confirmUsername: type carol to confirm');
    await shot(page, '06-delete-unconfirmed');
    await page.fill('#delete-user input[name=confirmUsername]', 'carol');
    await page.click('#delete-user button[type=submit]');
    await page.waitForURL(/\/users\?notice=user-deleted/);
    expect(await page.locator('.notice').textContent()).toBe('User deleted, with their clients and backups.');
    expect(await page.locator('a:text-is("carol")').count()).toBe(0);
    await shot(page, '07-user-deleted');
  });
});
