/**
 * The Servers page in Chromium (decision 149): two real server processes on
 * one PostgreSQL database; the page on the first lists both running, marks
 * itself as this one, and once the second is killed (SIGKILL, no clean
 * shutdown) shows it as lost. Screenshots land in test-artifacts/servers/.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchPostgres } from '../../server/test/helpers/test-database.ts';
import { ADMIN_PASSWORD, crash } from '../helpers/agent-e2e.ts';
import { artifactDir, chromiumAvailable, launchBrowser, signIn } from '../helpers/browser.ts';
import { startServerProcess, type ServerProcess } from '../helpers/processes.ts';

const databaseUrl = process.env.TEST_DATABASE_URL;

describe.skipIf(!chromiumAvailable() || !databaseUrl)('the Servers page: two replicas, one killed and shown as lost', () => {
  let base: string;
  let scratch: Awaited<ReturnType<typeof createScratchPostgres>>;
  let first: ServerProcess;
  let second: ServerProcess;
  let browser: Browser;
  let page: Page;
  let shots: string;

  beforeAll(async () => {
    shots = await artifactDir('servers');
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-servers-'));
    scratch = await createScratchPostgres('postgres');
    const env = {
      DATABASE_URL: scratch!.url,
      ADMIN_PASSWORD,
      SECRET_KEY: 'servers-browser-test-secret-key-0123456789',
      CLUSTER_HEARTBEAT_SECONDS: '1',
      CLUSTER_LOST_AFTER_SECONDS: '3',
    };
    [first, second] = await Promise.all([
      startServerProcess({ ...env, DATA_DIR: path.join(base, 'first') }),
      startServerProcess({ ...env, DATA_DIR: path.join(base, 'second') }),
    ]);
    browser = await launchBrowser();
    page = await (await browser.newContext({ viewport: { width: 1360, height: 700 } })).newPage();
    await signIn(page, first.url, 'admin', ADMIN_PASSWORD);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all([first?.stop(), second?.stop()]);
    await scratch?.drop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  const rowOfPid = (pid: number) => page.locator('#servers tbody tr', { has: page.locator(`td.num:text-is("${pid}")`) });

  it('lists both replicas, marks this one, and shows the killed one as lost', async () => {
    await page.click('nav.mainnav a:has-text("Servers")');
    await page.waitForURL(`${first.url}/servers`);
    expect(await page.locator('#servers tbody tr').count()).toBe(2);
    expect(await rowOfPid(first.pid).getAttribute('data-server-state')).toBe('running');
    expect(await rowOfPid(second.pid).getAttribute('data-server-state')).toBe('running');
    expect(await rowOfPid(first.pid).innerText()).toContain('this one');
    expect(await rowOfPid(second.pid).innerText()).not.toContain('this one');
    expect(await rowOfPid(second.pid).innerText()).toContain(second.url);
    await page.screenshot({ path: path.join(shots, 'servers-two-running.png'), fullPage: true });

    await crash(second);
    let state: string | null = null;
    for (let attempt = 0; attempt < 200 && state !== 'lost'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await page.reload();
      state = await rowOfPid(second.pid).getAttribute('data-server-state');
    }
    expect(state).toBe('lost');
    expect(await rowOfPid(first.pid).getAttribute('data-server-state')).toBe('running');
    await page.screenshot({ path: path.join(shots, 'servers-one-lost.png'), fullPage: true });
  });
});
