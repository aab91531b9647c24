/**
 * Retention rules in a real browser (Debian's Chromium) against a real
 * server: the user's policy form with folder rules and restore points (a bad
 * rule is refused next to its field), the client's retention card and its
 * prune simulator before saving, and the file browser's kept restore points
 * and its "may be incomplete" notice for a time that is not one.
 * Screenshots land in test-artifacts/retention-rules/.
 */
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestAgent } from '../../server/test/dashboard/agent-fixture.ts';
import { addUser, startDashboardHarness, type DashboardHarness } from '../../server/test/dashboard/dashboard-harness.ts';
import { listRuns } from '../../server/src/services/backup-repository.ts';
import { artifactDir, chromiumAvailable, launchBrowser, signIn } from '../helpers/browser.ts';

describe.skipIf(!chromiumAvailable())('retention rules in Chromium', () => {
  let h: DashboardHarness;
  let browser: Browser;
  let shots: string;
  let ownerId: string;
  let agent: TestAgent;
  const contexts: BrowserContext[] = [];

  async function signedInPage(username: string, password: string): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    contexts.push(context);
    const page = await context.newPage();
    await signIn(page, h.url, username, password);
    return page;
  }
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    shots = await artifactDir('retention-rules');
    h = await startDashboardHarness('embedded');
    await addUser(h.ctx, 'admin', 'admin-password-1', true);
    ownerId = (await addUser(h.ctx, 'dora', 'dora-password-1')).id;
    agent = await TestAgent.register(h.url, 'dora', 'dora-password-1', 'db-server');
    for (let i = 1; i <= 4; i++) {
      await agent.backup([
        { path: '/dumps/app.sql', content: `dump ${i}` },
        { path: '/srv/one.txt', content: `one ${i}` },
        { path: '/srv/two.txt', content: `two ${i}` },
      ]);
    }
    browser = await launchBrowser();
  });

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await h?.close();
  });

  it("refuses a bad folder rule beside its field on the user's page, then previews and saves good rules", async () => {
    const page = await signedInPage('admin', 'admin-password-1');
    await page.goto(`${h.url}/users/${ownerId}`);
    const form = page.locator('#retention-policy form');
    await form.locator('textarea[name=folderRules]').fill('/dumps 3.x');
    await form.locator('button[value=save]').click();
    await page.waitForLoadState();
    const error = form.locator('.field.has-error', { has: page.locator('textarea[name=folderRules]') }).locator('small.error');
    expect(await error.textContent()).toContain('line 1: "3.x" is not count.min_age');
    expect(await form.locator('textarea[name=folderRules]').inputValue()).toBe('/dumps 3.x');
    await shot(page, 'user-bad-folder-rule');

    await form.locator('input[name=retentionVersions]').fill('1');
    await form.locator('textarea[name=folderRules]').fill('/dumps 2.0');
    await form.locator('input[name=keepLast]').fill('1');
    await form.locator('button[value=preview]').click();
    await page.waitForLoadState();
    const preview = page.locator('#preview');
    expect(await preview.locator('h2').textContent()).toContain('keep 1 version; /dumps 2.0; restore points: last 1');
    // /srv/*: 3 old versions each pruned; /dumps/app.sql: one old version kept by the folder rule, 2 pruned.
    expect(await preview.locator('p').first().textContent()).toMatch(/8 old versions .* would be pruned now; 1 old version stays/);
    expect(await preview.locator('table.kept td.expires').first().textContent()).toContain('no fixed date');
    expect(await preview.locator('table.restore-points tbody tr').count()).toBe(1);
    await shot(page, 'user-preview');

    // The preview kept what was typed; saving with 30 versions stores the rules.
    expect(await form.locator('textarea[name=folderRules]').inputValue()).toBe('/dumps 2.0');
    await form.locator('input[name=retentionVersions]').fill('30');
    await form.locator('button[value=save]').click();
    await page.waitForURL(/notice=policy-saved/);
    expect(await page.locator('#retention-policy textarea[name=folderRules]').inputValue()).toBe('/dumps 2.0');
  });

  it("simulates the client's override before saving it", async () => {
    const page = await signedInPage('dora', 'dora-password-1');
    await page.goto(`${h.url}/clients/${agent.clientId}`);
    const card = page.locator('#retention');
    await card.locator('input[name=retentionOverride]').check();
    await card.locator('input[name=retentionVersions]').fill('2');
    await card.locator('input[name=retentionDays]').fill('30');
    await card.locator('input[name=rulesOverride]').check();
    await card.locator('textarea[name=folderRules]').fill('');
    await card.locator('input[name=keepLast]').fill('1');
    await card.locator('button[value=preview]').click();
    await page.waitForLoadState();
    const preview = page.locator('#preview');
    // The last run is the one restore point; its tree is the current files, so it keeps no old version.
    expect(await preview.locator('p').first().textContent()).toMatch(/6 old versions .* would be pruned now; 3 old versions stay/);
    const expiries = await preview.locator('table.kept td.expires').allTextContents();
    expect(expiries).toHaveLength(3);
    for (const expiry of expiries) expect(expiry).not.toContain('no fixed date'); // each kept by versions/days, 30 days after it was replaced
    expect(await preview.locator('table.restore-points td.small').allTextContents()).toEqual(['last']);
    await shot(page, 'client-preview');

    expect(await card.locator('input[name=keepLast]').inputValue()).toBe('1');
    await card.locator('button[value=save]').click();
    await page.waitForURL(/notice=retention-saved/);
    expect(await page.locator('#retention input[name=keepLast]').inputValue()).toBe('1');
    expect(await page.locator('#retention input[name=retentionVersions]').inputValue()).toBe('2');
  });

  it('lists the kept restore points in the file browser and warns for a time between them', async () => {
    // A 1-version override and only the last run as a restore point: the next backup prunes every older version.
    const page = await signedInPage('dora', 'dora-password-1');
    await page.goto(`${h.url}/clients/${agent.clientId}`);
    const card = page.locator('#retention');
    await card.locator('input[name=retentionVersions]').fill('1');
    await card.locator('input[name=retentionDays]').fill('');
    await card.locator('button[value=save]').click();
    await page.waitForURL(/notice=retention-saved/);
    const second = (await listRuns(h.ctx.database.db, agent.clientId, { limit: 10 })).reverse()[1]!;
    await agent.backup([{ path: '/srv/one.txt', content: 'one 5' }]);

    await page.goto(`${h.url}/clients/${agent.clientId}/files`);
    const points = page.locator('.run-picks.restore-points a.chip');
    expect(await points.count()).toBe(1);
    await points.first().click();
    await page.waitForLoadState();
    expect(await page.locator('p', { hasText: 'Showing the tree' }).textContent()).toContain('a kept restore point');
    expect(await page.locator('.tree-incomplete').count()).toBe(0);

    await page.goto(`${h.url}/clients/${agent.clientId}/files?asOf=${encodeURIComponent(new Date(second.finishedAt!).toISOString())}`);
    // At the second run's finish: three files had versions then that are pruned now.
    expect(await page.locator('.tree-incomplete').textContent()).toContain("the tree may be incomplete: 3 files' versions from then were pruned.");
    await shot(page, 'browser-incomplete');
  });
});
