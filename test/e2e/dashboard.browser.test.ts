/**
 * The dashboard in a real browser (Debian's Chromium) against a real server
 * (in-process `startServer` on a free port, embedded PostgreSQL, disk blobs). The
 * backup data comes in through the agent API exactly as an agent sends it.
 * Screenshots of the main pages land in test-artifacts/dashboard/.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../server/src/config/server-config.ts';
import { createLogger } from '../../server/src/logger.ts';
import { startServer, type RunningServer } from '../../server/src/server.ts';
import { TestAgent } from '../../server/test/dashboard/agent-fixture.ts';
import { createUser, SYSTEM_ACTOR } from '../../server/src/services/users.service.ts';
import { backupRuns } from '../../server/src/db/schema.ts';
import { artifactDir, chromiumAvailable, launchBrowser, signIn } from '../helpers/browser.ts';

const run = promisify(execFile);
const ADMIN_PASSWORD = 'admin-password-e2e';
const photo = randomBytes(300 * 1024);
const report = '# Quarterly report\n\nAll backups verified.\n';

describe.skipIf(!chromiumAvailable())('dashboard in Chromium', () => {
  let dataDir: string;
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  let shots: string;
  let laptop: TestAgent;

  const shot = (name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    shots = await artifactDir('dashboard');
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-dashboard-'));
    const config = loadServerConfig({
      DATA_DIR: dataDir,
      PORT: '0',
      HOST: '127.0.0.1',
      ADMIN_USERNAME: 'admin',
      ADMIN_PASSWORD,
      SECRET_KEY: 'e2e-dashboard-secret-key-0123456789abcdef',
      LOG_LEVEL: 'warn',
    });
    server = await startServer(config, createLogger('warn'));
    await createUser(server.ctx, { username: 'alice', password: 'alice-password-1', retentionVersions: 10 }, SYSTEM_ACTOR);

    laptop = await TestAgent.register(server.url, 'alice', 'alice-password-1', 'alice-laptop', 'laptop.home.arpa');
    await laptop.backup(
      [
        { path: '/home/alice/photos/beach.jpg', content: photo, mtimeMs: Date.parse('2026-07-14T10:00:00Z') },
        { path: '/home/alice/docs/report.md', content: '# Quarterly report (draft)\n' },
        { path: '/home/alice/docs/current', linkTarget: 'report.md', mtimeMs: Date.parse('2026-07-14T10:00:00Z') },
        { path: '/home/alice/.bashrc', content: 'export EDITOR=vim\n' },
      ],
      {
        preCommands: [
          { command: 'pg_dump app > /home/alice/db.sql', source: 'server', exitCode: 0, durationMs: 1840, timedOut: false, output: 'dump complete\n' },
        ],
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    await laptop.backup([{ path: '/home/alice/docs/report.md', content: report }]);
    await laptop.ping();
    // An agent whose clock runs a year ahead: its line must not sort above lines received later.
    await laptop.sendLogs([{ level: 'info', message: 'clock check from a year ahead', at: new Date(Date.now() + 365 * 86_400_000).toISOString() }]);
    await laptop.sendLogs([
      { level: 'debug', message: 'scan took 12 ms' },
      { level: 'info', message: 'backup finished: 1 file changed, 42 B uploaded' },
      { level: 'warn', message: 'skipped socket /home/alice/.gnupg/S.gpg-agent' },
      { level: 'error', message: 'permission denied: /home/alice/private' },
    ]);
    const nas = await TestAgent.register(server.url, 'admin', ADMIN_PASSWORD, 'nas', 'nas.home.arpa');
    await nas.backup([
      { path: '/srv/share/photo-copy.jpg', content: photo },
      { path: '/srv/share/readme.txt', content: 'shared folder\n' },
    ]);
    await nas.ping();
    const db = await TestAgent.register(server.url, 'admin', ADMIN_PASSWORD, 'db-01', 'db-01.internal');
    // The files went through but the dump before them failed: the agent ends such a run partial.
    await db.backup([{ path: '/var/backups/app.sql', content: 'create table t (id int);\n' }], {
      status: 'partial',
      preCommands: [
        { command: 'pg_dump -U app app > /var/backups/app.sql', source: 'server', exitCode: 1, durationMs: 312, timedOut: false, output: 'pg_dump: error: connection to server failed: FATAL: role "app" does not exist\n' },
      ],
    });
    await db.ping();
    const fresh = await TestAgent.register(server.url, 'admin', ADMIN_PASSWORD, 'fresh-01', 'fresh-01.internal');
    await fresh.ping();

    browser = await launchBrowser();
    // A time zone other than UTC, so times made local by dashboard.js differ from the server's UTC text.
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true, timezoneId: 'America/New_York' });
    page = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('logs in and shows the overview', async () => {
    await page.goto(`${server.url}/`);
    expect(new URL(page.url()).pathname).toBe('/login');
    await shot('01-login');
    await page.fill('input[name=username]', 'admin');
    await page.fill('input[name=password]', 'not-the-password');
    await page.click('button[type=submit]');
    await expect(page.locator('.form-error').textContent()).resolves.toBe('Invalid username or password.');
    await page.fill('input[name=password]', ADMIN_PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForURL(`${server.url}/`);
    await expect(page.locator('h1').first().textContent()).resolves.toBe('Overview');
    expect(await page.locator('.stat-failing .stat-value').textContent()).toBe('1');
    expect(await page.locator('.stat-never .stat-value').textContent()).toBe('1');
    expect(await page.locator('.stat-ok .stat-value').textContent()).toBe('2');
    expect(await page.locator('svg.chart rect.bar-uploaded').count()).toBe(30);
    await shot('02-overview');
  });

  it('lists clients with their health', async () => {
    await page.click('nav.mainnav >> text=Clients');
    await page.waitForURL(`${server.url}/clients`);
    expect(await page.locator('table tbody tr').count()).toBe(4);
    expect(await page.locator('tr:has-text("alice-laptop") .badge.health-ok').count()).toBe(1);
    expect(await page.locator('tr:has-text("db-01") .badge.health-failing').count()).toBe(1);
    expect(await page.locator('tr:has-text("fresh-01") .badge.health-never').textContent()).toBe('Never backed up');
    await shot('03-clients');
  });

  it('creates a client by hand and shows its token once', async () => {
    await page.fill('#new-client input[name=name]', 'web-01');
    await page.fill('#new-client input[name=hostname]', 'web-01.example.org');
    await page.click('#new-client button[type=submit]');
    const token = await page.inputValue('input#token');
    expect(token).toMatch(/^cairn_/);
    const ping = await fetch(`${server.url}/api/v1/ping`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(ping.status).toBe(200);
    await shot('04-token-once');
    await page.click('text=Go to the client');
    expect(await page.content()).not.toContain(token);
    expect(await page.locator('#client-status .card-head .badge').textContent()).toBe('Never backed up');
  });

  it('creates a user with a retention policy', async () => {
    await page.click('nav.mainnav >> text=Users');
    await page.fill('#new-user input[name=username]', 'dana');
    await page.fill('#new-user input[name=password]', 'dana-password-1');
    await page.fill('#new-user input[name=retentionVersions]', '5');
    await page.fill('#new-user input[name=retentionDays]', '14');
    await page.click('#new-user button[type=submit]');
    await page.waitForURL(/\/users\/[0-9a-f-]{36}\?notice=user-created/);
    expect(await page.locator('.notice').textContent()).toBe('User created.');
    expect(await page.inputValue('input[name=retentionVersions]')).toBe('5');
    expect(await page.inputValue('input[name=retentionDays]')).toBe('14');
    await page.click('nav.mainnav >> text=Users');
    expect(await page.locator('tr:has-text("dana")').textContent()).toContain('5 versions, 14 days');
    await shot('05-users');
  });

  it('previews a retention policy for a user with history', async () => {
    await page.click('a:text-is("alice")');
    await page.fill('input[name=retentionVersions]', '1');
    await page.click('button[value=preview]');
    await expect(page.locator('#preview').textContent()).resolves.toContain('/home/alice/docs/report.md');
    await shot('06-user-preview');
  });

  it("edits a client's pre-commands", async () => {
    await page.goto(`${server.url}/clients/${laptop.clientId}`);
    await page.fill('textarea[name=preCommands]', '[0s] broken');
    await page.click('text=Save configuration');
    expect(await page.locator('.has-error .error').first().textContent()).toContain('timeout must be between 1 second and 24 hours');
    await page.fill('textarea[name=preCommands]', '[15m] pg_dump app > /home/alice/db.sql\nsync');
    await page.click('text=Save configuration');
    await page.waitForURL(/notice=saved/);
    expect(await page.inputValue('textarea[name=preCommands]')).toBe('[15m] pg_dump app > /home/alice/db.sql\nsync');
    const config = await fetch(`${server.url}/api/v1/config`, { headers: { authorization: `Bearer ${laptop.token}` } });
    expect(((await config.json()) as { preCommands: unknown }).preCommands).toEqual([
      { command: 'pg_dump app > /home/alice/db.sql', timeoutSeconds: 900 },
      { command: 'sync', timeoutSeconds: 300 },
    ]);
    await page.locator('details.precmd').first().click();
    await shot('07-client');
  });

  it('shows times to the second in the browser\'s time zone, UTC on hover', async () => {
    await page.goto(`${server.url}/clients/${laptop.clientId}`);
    const started = page.locator('table.runs time[data-local]').first();
    const text = (await started.textContent())!;
    const title = (await started.getAttribute('title'))!;
    const datetime = (await started.getAttribute('datetime'))!;
    expect(title).toBe(`${datetime.slice(0, 10)} ${datetime.slice(11, 19)} UTC`);
    expect(text).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T$/);
    const newYork = new Intl.DateTimeFormat('en-CA', { timeZone: 'America/New_York', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(new Date(datetime));
    expect(text.slice(11, 19)).toBe(newYork);
    expect(await page.locator('table.runs td', { hasText: 'scheduled' }).count()).toBeGreaterThan(0);
    await shot('07a-client-times');
  });

  it('says why a client is failing: the pre-command that failed', async () => {
    await page.goto(`${server.url}/clients`);
    await page.click('a:text-is("db-01")');
    expect(await page.locator('.card-head .badge.health-failing').textContent()).toBe('Failing');
    expect(await page.locator('.health-reason').textContent()).toContain('pg_dump -U app app > /var/backups/app.sql');
    await shot('07b-client-failing');
  });

  it('browses the tree as of an earlier backup', async () => {
    await page.goto(`${server.url}/clients/${laptop.clientId}`);
    await page.click('nav.tabs >> text=Files');
    await page.click('a:text-is("home/")');
    await page.click('a:text-is("alice/")');
    await page.click('a:text-is("docs/")');
    const currentSize = await page.locator('tr:has(a:text-is("report.md")) td.num').textContent();
    expect(currentSize).toBe(`${Buffer.byteLength(report)} B`);
    // Runs are listed newest first: the last chip is the first backup.
    await page.locator('.run-picks a.chip').last().click();
    await page.waitForURL(/asOf=/);
    expect(await page.locator('tr:has(a:text-is("report.md")) td.num').textContent()).toBe(`${Buffer.byteLength('# Quarterly report (draft)\n')} B`);
    expect(await page.locator('.crumbs.path').textContent()).toContain('docs');
    await shot('08-files-as-of');
    await page.click('a:text-is("report.md")');
    expect(await page.locator('table.versions tbody tr').count()).toBe(2);
    await shot('09-versions');
  });

  it('downloads a file with the original bytes', async () => {
    await page.goto(`${server.url}/clients/${laptop.clientId}/files?path=/home/alice/photos`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('tr:has-text("beach.jpg") >> text=Download')]);
    expect(download.suggestedFilename()).toBe('beach.jpg');
    const bytes = await readFile((await download.path())!);
    expect(bytes.equals(photo)).toBe(true);
  });

  it('downloads a folder as tar.gz that unpacks to the backed-up files', async () => {
    await page.goto(`${server.url}/clients/${laptop.clientId}/files?path=/home/alice`);
    await shot('10-files');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('text=Download this folder (.tar.gz)')]);
    expect(download.suggestedFilename()).toMatch(/^alice-laptop-alice-\d{8}-\d{4}\.tar\.gz$/);
    const target = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-untar-'));
    try {
      await run('tar', ['-xzf', (await download.path())!, '-C', target]);
      expect((await readFile(path.join(target, 'alice/photos/beach.jpg'))).equals(photo)).toBe(true);
      expect(await readFile(path.join(target, 'alice/docs/report.md'), 'utf8')).toBe(report);
      expect(await readFile(path.join(target, 'alice/.bashrc'), 'utf8')).toBe('export EDITOR=vim\n');
      expect(await readlink(path.join(target, 'alice/docs/current'))).toBe('report.md');
    } finally {
      await rm(target, { recursive: true, force: true });
    }
  });

  it('shows logs by level and the audit log', async () => {
    await page.goto(`${server.url}/clients/${laptop.clientId}/logs`);
    // Every level, newest received first: the year-ahead line was received first, so it is last.
    const messages = await page.locator('table.logs tbody td.msg').allTextContents();
    expect(messages).toEqual([
      'permission denied: /home/alice/private',
      'skipped socket /home/alice/.gnupg/S.gpg-agent',
      'backup finished: 1 file changed, 42 B uploaded',
      'scan took 12 ms',
      'clock check from a year ahead',
    ]);
    const agentTime = await page.locator('table.logs tbody tr:last-child td:last-child time').getAttribute('datetime');
    expect(Date.parse(agentTime!)).toBeGreaterThan(Date.now() + 300 * 86_400_000);
    await shot('11-logs');
    await page.click('nav.filters >> text=error');
    expect(await page.locator('table.logs tbody tr').count()).toBe(1);
    await page.click('nav.filters >> text=all');
    await page.click('nav.mainnav >> text=Audit log');
    expect(await page.locator('table.audit').textContent()).toContain('client.precommands.update');
    await shot('12-audit');
  });

  it('lists open alerts with their reference values, filters them and acknowledges one', async () => {
    await page.goto(`${server.url}/`);
    expect(await page.locator('#alerts').textContent()).toContain('db-01');
    await page.click('nav.mainnav >> text=Alerts');
    await page.waitForURL(`${server.url}/alerts`);
    const dumpRow = page.locator('tr.alert-row', { hasText: 'pg_dump -U app app' });
    expect(await dumpRow.locator('td.observed').textContent()).toBe('exited with 1');
    expect(await dumpRow.locator('td.reference').textContent()).toBe('exit code 0');
    await shot('15-alerts');
    await page.selectOption('select[name=type]', 'missed_backup');
    await page.click('form.filters-form button[type=submit]');
    await page.waitForURL(/type=missed_backup/);
    expect(await page.locator('main').textContent()).toContain('No unresolved alerts for this filter.');
    await page.goto(`${server.url}/alerts`);
    await dumpRow.locator('button', { hasText: 'Acknowledge' }).click();
    await page.waitForURL(/notice=alert-acknowledged/);
    expect(await page.locator('.notice').textContent()).toBe('Alert acknowledged.');
    expect(await dumpRow.textContent()).toContain('acknowledged');
    expect(await dumpRow.textContent()).toContain('by admin');
    await shot('16-alerts-acknowledged');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot('17-alerts-mobile');
    await page.goto(`${server.url}/clients/${laptop.clientId}`);
    await page.locator('#alert-settings').screenshot({ path: path.join(shots, '19-alert-settings-mobile.png') });
    await page.setViewportSize({ width: 1360, height: 900 });
    await page.goto(`${server.url}/clients/${laptop.clientId}`);
    await page.fill('input[name="missedBackup.tolerance"]', '3');
    await page.fill('textarea[name="expectedFile.folders"]', '/srv/dumps 26\n/var/backups/my db 50');
    await page.click('#alert-settings button:text("Save alert settings")');
    await page.waitForURL(/notice=saved/);
    expect(await page.locator('#alert-settings').textContent()).toContain('This client overrides some defaults');
    expect(await page.inputValue('input[name="missedBackup.tolerance"]')).toBe('3');
    expect(await page.inputValue('textarea[name="expectedFile.folders"]')).toBe('/srv/dumps 26\n/var/backups/my db 50');
    await page.locator('#alert-settings').screenshot({ path: path.join(shots, '18-alert-settings.png') });

    // The server-wide defaults: reached from Notifications, saved, shown beside a client's values, then reset.
    await page.goto(`${server.url}/settings/notifications`);
    await page.click('a:text("Alert defaults")');
    await page.waitForURL(/\/settings\/alerts$/);
    await page.fill('input[name="failing.offlinePings"]', '6');
    await page.click('#alert-settings button:text("Save alert settings")');
    await page.waitForURL(/notice=saved/);
    expect(await page.inputValue('input[name="failing.offlinePings"]')).toBe('6');
    await shot('18b-alert-defaults');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot('18c-alert-defaults-mobile');
    await page.setViewportSize({ width: 1360, height: 900 });
    await page.goto(`${server.url}/clients/${laptop.clientId}`);
    expect(await page.inputValue('input[name="failing.offlinePings"]')).toBe('6');
    expect(await page.inputValue('input[name="missedBackup.tolerance"]')).toBe('3');
    await page.goto(`${server.url}/settings/alerts`);
    await page.click('button:text("Use the built-in defaults")');
    await page.waitForURL(/notice=saved/);
    expect(await page.locator('#alert-settings').textContent()).toContain('These are the built-in defaults.');
  });

  it('shows statistics for the fleet and a client, fitting a phone without scrolling sideways', async () => {
    // A month of history for the laptop, as the runs table holds it: growing daily changes, a slow run, two failures.
    const now = Date.now();
    await server.ctx.database.db.insert(backupRuns).values(
      Array.from({ length: 28 }, (_, i) => {
        // 28 days back at most: within the 30-day range whatever the time of day.
        const daysAgo = 28 - i;
        const startedAt = new Date(now - daysAgo * 86_400_000 - 3_600_000);
        const seconds = 40 + (i % 7) * 15 + (i === 20 ? 600 : 0);
        return {
          clientId: laptop.clientId,
          status: i === 9 || i === 21 ? ('failed' as const) : ('succeeded' as const),
          startedAt,
          finishedAt: new Date(startedAt.getTime() + seconds * 1000),
          filesChanged: 20 + ((i * 37) % 90),
          // Kilobytes, so that the month's new bytes fit within what the fixture's backups really stored.
          bytesUploaded: (3 + ((i * 5) % 11)) * 1024,
          bytesNew: (1 + ((i * 3) % 5)) * 1024,
        };
      }),
    );
    await page.goto(`${server.url}/stats`);
    await expect(page.locator('h1').first().textContent()).resolves.toBe('Statistics');
    expect(await page.locator('.mainnav a.active').textContent()).toBe('Statistics');
    for (const id of ['chart-bytes', 'chart-files', 'chart-duration', 'chart-success', 'chart-growth']) {
      expect(await page.locator(`svg[aria-labelledby="${id}-title ${id}-desc"]`).count(), id).toBe(1);
    }
    expect(await page.locator('#chart-growth-title').textContent()).toBe('Stored bytes');
    expect(await page.locator('svg line.forecast').count()).toBe(1);
    // The admin on a disk store is told when it runs full (or that it does not at this trend).
    expect(await page.locator('.figures').last().textContent()).toContain('Full in');
    await shot('20-stats');
    await page.click('.range a:text("7 days")');
    await page.waitForURL(/\/stats\?days=7$/);
    expect(await page.locator('.range a[aria-current=page]').textContent()).toBe('7 days');
    await page.goto(`${server.url}/clients/${laptop.clientId}`);
    await page.click('.tabs a:text("Statistics")');
    await page.waitForURL(`${server.url}/clients/${laptop.clientId}/stats`);
    expect(await page.locator('.tabs a.active').textContent()).toBe('Statistics');
    // 28 inserted runs and the fixture's two within 30 days: one bar per run and series.
    expect(await page.locator('#chart-bytes-title').textContent()).toBe('Bytes per run');
    expect(await page.locator('svg[aria-labelledby^="chart-bytes"] rect.bar-uploaded').count()).toBe(30);
    await shot('21-client-stats');

    await page.setViewportSize({ width: 390, height: 844 });
    const pageFits = () => page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth');
    for (const [url, name] of [
      ['/stats', '22-stats-mobile'],
      [`/clients/${laptop.clientId}/stats`, '23-client-stats-mobile'],
      ['/', '24-overview-chart-mobile'],
      ['/stats?days=90', '25-stats-90-mobile'],
    ] as const) {
      await page.goto(`${server.url}${url}`);
      expect(await pageFits(), url).toBe(true);
      // Every chart fits its card: the newest day is on screen, not behind a scroll.
      for (const box of await page.locator('svg.chart').evaluateAll((svgs) => svgs.map((svg) => svg.getBoundingClientRect().right))) {
        expect(box, url).toBeLessThanOrEqual(390);
      }
      await shot(name);
      await page.locator('svg.chart').last().screenshot({ path: path.join(shots, `${name}-chart.png`) });
    }
    await page.setViewportSize({ width: 1360, height: 900 });
  });

  it('stays usable on a phone-sized screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${server.url}/`);
    await shot('13-overview-mobile');
    await page.goto(`${server.url}/clients/${laptop.clientId}`);
    await shot('14-client-mobile');
    await page.setViewportSize({ width: 1360, height: 900 });
  });

  it("lets a user choose their own alert email from their name in the top bar", async () => {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const own = await context.newPage();
    await signIn(own, server.url, 'alice', 'alice-password-1');
    await own.click('.whoami a');
    await own.fill('input[name=alertEmail]', 'alice@example.com');
    await own.check('input[name=alertEmailTypes][value=failing]');
    await own.check('input[name=alertEmailTypes][value=file_shrank]');
    await own.click('text=Save alert email');
    await own.waitForURL(/notice=alert-email-saved/);
    expect(await own.inputValue('input[name=alertEmail]')).toBe('alice@example.com');
    expect(await own.isChecked('input[name=alertEmailTypes][value=failing]')).toBe(true);
    expect(await own.isChecked('input[name=alertEmailTypes][value=missed_backup]')).toBe(false);
    await own.screenshot({ path: path.join(shots, '20-user-alert-email.png'), fullPage: true });
    await own.setViewportSize({ width: 390, height: 844 });
    await own.screenshot({ path: path.join(shots, '21-user-alert-email-mobile.png'), fullPage: true });
    await context.close();
  });

  it('lets a user set their own alert webhook: a bad secret is refused by field, the saved one is never shown back', async () => {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const own = await context.newPage();
    await signIn(own, server.url, 'alice', 'alice-password-1');
    await own.click('.whoami a');
    await own.fill('input[name=alertWebhookUrl]', 'https://hooks.example.com/cairn/alice');
    await own.fill('input[name=alertWebhookSecret]', 'too-short');
    await own.check('input[name=alertWebhookTypes][value=failing]');
    await own.click('text=Save alert webhook');
    await own.waitForSelector('#alert-webhook .has-error');
    expect(await own.textContent('#alert-webhook .has-error small.error')).toContain('16 to 256 visible ASCII characters');
    // What was typed comes back, except the secret.
    expect(await own.inputValue('input[name=alertWebhookUrl]')).toBe('https://hooks.example.com/cairn/alice');
    expect(await own.inputValue('input[name=alertWebhookSecret]')).toBe('');
    await own.locator('#alert-webhook').screenshot({ path: path.join(shots, '22-user-alert-webhook-error.png') });

    await own.fill('input[name=alertWebhookSecret]', 'alice-hook-secret-0a1b2c3d4e5f');
    await own.check('input[name=alertWebhookTypes][value=missed_backup]');
    await own.click('text=Save alert webhook');
    await own.waitForURL(/notice=alert-webhook-saved/);
    expect(await own.inputValue('input[name=alertWebhookUrl]')).toBe('https://hooks.example.com/cairn/alice');
    expect(await own.inputValue('input[name=alertWebhookSecret]')).toBe('');
    expect(await own.textContent('#alert-webhook')).toContain('set, ends in …4e5f; empty: keep it');
    expect(await own.content()).not.toContain('alice-hook-secret-0a1b2c3d4e5f');
    expect(await own.isChecked('input[name=alertWebhookTypes][value=failing]')).toBe(true);
    expect(await own.isChecked('input[name=alertWebhookTypes][value=missed_backup]')).toBe(true);
    expect(await own.isChecked('input[name=alertWebhookTypes][value=file_shrank]')).toBe(false);
    await own.locator('#alert-webhook').screenshot({ path: path.join(shots, '23-user-alert-webhook.png') });
    await own.setViewportSize({ width: 390, height: 844 });
    await own.locator('#alert-webhook').screenshot({ path: path.join(shots, '24-user-alert-webhook-mobile.png') });
    await context.close();
  });

  it('signs out', async () => {
    await page.click('text=Sign out');
    await page.waitForURL(/\/login\?notice=logged-out/);
    await page.goto(`${server.url}/clients`);
    expect(new URL(page.url()).pathname).toBe('/login');
  });
});
