/**
 * Enrollment keys and schedules in a real browser (Debian's Chromium) against
 * a real server (in-process, embedded PostgreSQL). Screenshots land in
 * test-artifacts/fleet/.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_PREFIX, type RegisterResponse } from '@cairn/shared';
import { loadServerConfig } from '../../server/src/config/server-config.ts';
import { createLogger } from '../../server/src/logger.ts';
import { startServer, type RunningServer } from '../../server/src/server.ts';
import { createUser, SYSTEM_ACTOR } from '../../server/src/services/users.service.ts';
import { artifactDir, chromiumAvailable, launchBrowser, signIn } from '../helpers/browser.ts';

const ADMIN_PASSWORD = 'admin-password-fleet';

describe.skipIf(!chromiumAvailable())('enrollment keys and schedules in Chromium', () => {
  let dataDir: string;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  let shots: string;
  let key = '';
  let enrolled: RegisterResponse;

  const shot = (name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  const enroll = async (enrollmentKey: string, clientName: string) => {
    const response = await fetch(`${server.url}${API_PREFIX}/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ enrollmentKey, clientName, hostname: `${clientName}.internal` }),
    });
    return { status: response.status, body: (await response.json()) as RegisterResponse & { message: string } };
  };

  beforeAll(async () => {
    shots = await artifactDir('fleet');
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-fleet-'));
    const config = loadServerConfig({
      DATA_DIR: dataDir,
      PORT: '0',
      HOST: '127.0.0.1',
      ADMIN_USERNAME: 'admin',
      ADMIN_PASSWORD,
      SECRET_KEY: 'e2e-fleet-secret-key-0123456789abcdef0123',
      LOG_LEVEL: 'warn',
    });
    server = await startServer(config, createLogger('warn'));
    await createUser(server.ctx, { username: 'alice', password: 'alice-password-1', retentionVersions: 10 }, SYSTEM_ACTOR);
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, timezoneId: 'Europe/Berlin' });
    page = await context.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses a multi-use key without an expiry, naming the field', async () => {
    await page.click('nav.mainnav >> text=Enrollment keys');
    await page.waitForURL(`${server.url}/enrollment-keys`);
    await page.selectOption('#new-key select[name=uses]', 'multi');
    await page.fill('#new-key input[name=expiresIn]', '');
    await page.click('text=Create key');
    expect(await page.locator('#new-key .has-error .error').textContent()).toBe('a multi-use key needs an expiry');
  });

  it('creates a multi-use key for another user with a name prefix; shows it once', async () => {
    await page.fill('#new-key input[name=description]', 'alice web servers');
    await page.selectOption('#new-key select[name=uses]', 'multi');
    await page.fill('#new-key input[name=expiresIn]', '3d');
    await page.fill('#new-key input[name=namePrefix]', 'web-');
    await page.selectOption('#new-key select[name=ownerId]', { label: 'alice' });
    await page.click('text=Create key');
    key = await page.inputValue('#enrollment-key');
    expect(key).toMatch(/^cairn_enroll_[A-Za-z0-9_-]{43}$/);
    const row = page.locator('#enrollment-keys tbody tr').first();
    expect(await row.textContent()).toContain('alice web servers');
    expect(await row.textContent()).toContain('multi-use · 0 used');
    expect(await row.locator('.badge').textContent()).toBe('usable');
    await shot('01-key-created');
    // Shown once: the list never shows it again.
    await page.goto(`${server.url}/enrollment-keys`);
    expect(await page.content()).not.toContain(key);
  });

  it('an agent enrols with it as a client of alice; the list counts the use', async () => {
    expect((await enroll(key, 'db-01')).status).toBe(400);
    const result = await enroll(key, 'web-01');
    expect(result.status).toBe(200);
    enrolled = result.body;
    await page.goto(`${server.url}/enrollment-keys`);
    expect(await page.locator('#enrollment-keys tbody tr').first().textContent()).toContain('multi-use · 1 used');
    await page.goto(`${server.url}/clients`);
    expect(await page.locator('tr:has-text("web-01")').textContent()).toContain('alice');
  });

  it('revokes the key: the agent side gets a 401 saying so', async () => {
    await page.goto(`${server.url}/enrollment-keys`);
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click('#enrollment-keys button:text("Revoke")');
    await page.waitForURL(/notice=key-revoked/);
    expect(await page.locator('#enrollment-keys tbody tr').first().locator('.badge').textContent()).toBe('revoked');
    const refused = await enroll(key, 'web-02');
    expect(refused).toMatchObject({ status: 401, body: { message: 'enrollment key was revoked' } });
    await shot('02-key-revoked');
    await page.goto(`${server.url}/audit`);
    const audit = await page.locator('main').textContent();
    expect(audit).toContain('enrollment_key.create');
    expect(audit).toContain('client.enroll');
    expect(audit).toContain('enrollment_key.revoke');
  });

  it('the schedule form refuses a bad cron and an unknown zone, naming each field', async () => {
    await page.goto(`${server.url}/clients/${enrolled.clientId}`);
    await page.check('input[name=scheduleKind][value=cron]');
    await page.fill('input[name=cron]', '0 3 * *');
    await page.fill('input[name=timeZone]', 'Mars/Olympus');
    await page.click('text=Save configuration');
    expect(await page.locator('#schedule label:has(input[name=cron]) .error').textContent()).toContain('five fields');
    expect(await page.locator('#schedule label:has(input[name=timeZone]) .error').textContent()).toContain('unknown time zone "Mars/Olympus"');
    await shot('03-schedule-errors');
  });

  it('saves a weekday cron in a zone with a window; the client page and the list show the next run', async () => {
    await page.check('input[name=scheduleKind][value=cron]');
    await page.fill('input[name=cron]', '30 2 * * 1-5');
    await page.fill('input[name=timeZone]', 'America/New_York');
    await page.fill('input[name=windowStart]', '01:00');
    await page.fill('input[name=windowEnd]', '05:00');
    await page.click('text=Save configuration');
    await page.waitForURL(/notice=saved/);
    expect(await page.inputValue('input[name=cron]')).toBe('30 2 * * 1-5');
    expect(await page.isChecked('input[name=scheduleKind][value=cron]')).toBe(true);
    expect(await page.locator('#client-status dl.kv').textContent()).toContain('cron 30 2 * * 1-5 (America/New_York), window 01:00-05:00');
    // 02:30 in New York is 07:30 UTC in winter, 06:30 in summer.
    const next = await page.locator('#status-next-run time').getAttribute('datetime');
    const at = new Date(next!);
    expect(at.getTime()).toBeGreaterThan(Date.now());
    expect([6, 7]).toContain(at.getUTCHours());
    expect(at.getUTCMinutes()).toBe(30);
    expect([1, 2, 3, 4, 5]).toContain(new Date(at.getTime() - 5 * 3600_000).getUTCDay());
    await shot('04-schedule-saved');
    const config = await fetch(`${server.url}${API_PREFIX}/config`, { headers: { authorization: `Bearer ${enrolled.token}` } });
    expect(((await config.json()) as { schedule: unknown }).schedule).toEqual({
      intervalSeconds: 3600,
      cron: '30 2 * * 1-5',
      timeZone: 'America/New_York',
      window: { start: '01:00', end: '05:00' },
    });
    await page.goto(`${server.url}/clients`);
    expect(await page.locator('tr:has-text("web-01") td.next-run time').getAttribute('datetime')).toBe(next);
    await shot('05-clients-next-run');
  });

  it('a cron with no time inside the window is refused under the window', async () => {
    await page.goto(`${server.url}/clients/${enrolled.clientId}`);
    await page.fill('input[name=cron]', '0 12 * * *');
    await page.click('text=Save configuration');
    expect(await page.locator('#backupWindow-error').textContent()).toBe('no time of the cron expression falls inside this window');
  });
});
