/**
 * The restore form in Chromium (issue 13): from a client's file browser,
 * "Restore this folder…" opens the Restores tab with the folder filled in;
 * a bad target directory is refused under its field; a restore onto another
 * client of the owner, with a post-restore command, is carried out by that
 * client's real agent and the job page follows it to its outcome (it polls
 * and reloads). Screenshots land in test-artifacts/restore-jobs/.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, envModeAgentEnv, readAgentState, startAgent, waitForRuns } from '../helpers/agent-e2e.ts';
import { artifactDir, chromiumAvailable, launchBrowser, signIn } from '../helpers/browser.ts';
import { startServerProcess, type ManagedProcess, type ServerProcess } from '../helpers/processes.ts';

describe.skipIf(!chromiumAvailable())('the restore form in Chromium', () => {
  let base: string;
  let server: ServerProcess;
  let agentA: ManagedProcess;
  let agentB: ManagedProcess;
  let browser: Browser;
  let page: Page;
  let shots: string;
  let clientA: string;
  let folder: string;

  beforeAll(async () => {
    shots = await artifactDir('restore-jobs');
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-restore-form-'));
    folder = path.join(base, 'a', 'reports');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'q3.csv'), 'quarter,revenue\nq3,1200\n');
    await writeFile(path.join(folder, 'q4.csv'), 'quarter,revenue\nq4,1500\n');
    await mkdir(path.join(base, 'b'), { recursive: true });
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD });
    agentA = startAgent(envModeAgentEnv(server.url, path.join(base, 'state-a'), [path.join(base, 'a')], { CLIENT_NAME: 'office-pc' }));
    agentB = startAgent(envModeAgentEnv(server.url, path.join(base, 'state-b'), [path.join(base, 'b')], { CLIENT_NAME: 'standby' }));
    await Promise.all([waitForRuns(agentA, 1), waitForRuns(agentB, 1)]);
    clientA = (await readAgentState(path.join(base, 'state-a'))).clientId;
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1360, height: 1000 } });
    page = await context.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await agentA?.stop();
    await agentB?.stop();
    await server?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('restores a folder onto another machine from the file browser and follows the job to its outcome', async () => {
    await page.goto(`${server.url}/clients/${clientA}/files?path=${encodeURIComponent(folder)}`);
    await page.click('#restore-folder');
    await page.waitForURL(/\/restores/);
    expect(await page.inputValue('textarea[name=paths]')).toBe(folder);
    await page.screenshot({ path: path.join(shots, 'restore-form.png'), fullPage: true });

    // A target directory of / is refused under its field, with what was typed kept.
    await page.selectOption('select[name=targetClientId]', { label: 'standby' });
    await page.fill('input[name=targetDir]', '/');
    await page.click('#new-restore button[type=submit]');
    const error = page.locator('label.has-error:has(input[name=targetDir]) small.error');
    await error.waitFor();
    expect(await error.textContent()).toMatch(/other than \//);
    expect(await page.inputValue('textarea[name=paths]')).toBe(folder);
    await page.screenshot({ path: path.join(shots, 'restore-form-error.png'), fullPage: true });

    const target = path.join(base, 'b-restored');
    await page.selectOption('select[name=targetClientId]', { label: 'standby' });
    await page.fill('input[name=targetDir]', target);
    await page.fill('input[name=postCommand]', `cat '${path.join(target, folder, 'q4.csv')}'`);
    await page.click('#new-restore button[type=submit]');
    await page.waitForURL(/\/restore-jobs\//);
    // The page reloads itself as the job moves on, until it is done.
    await page.locator('#restore-job [data-restore-status]', { hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
    expect(await page.locator('#command-exit-code').textContent()).toBe('0');
    expect(await page.locator('#command-output').textContent()).toContain('q4,1500');
    await page.screenshot({ path: path.join(shots, 'restore-job-succeeded.png'), fullPage: true });
    expect(await readFile(path.join(target, folder, 'q3.csv'), 'utf8')).toBe('quarter,revenue\nq3,1200\n');

    // The Restores tab lists it, and takes a schedule.
    await page.click('a:has-text("All restores of office-pc")');
    await page.locator('#restore-jobs [data-restore-status]', { hasText: 'succeeded' }).waitFor();
    await page.check('input[name=when][value=schedule]');
    await page.selectOption('select[name=targetClientId]', { label: 'standby' });
    await page.fill('input[name=targetDir]', path.join(base, 'nightly'));
    await page.fill('input[name=cron]', '0 4 * * *');
    await page.fill('input[name=timeZone]', 'Europe/Berlin');
    await page.click('#new-restore button[type=submit]');
    await page.locator('#restore-schedules tr[data-schedule-id]').waitFor();
    expect(await page.locator('#restore-schedules').textContent()).toMatch(/office-pc → standby[\s\S]*0 4 \* \* \*/);
    await page.screenshot({ path: path.join(shots, 'restores-tab.png'), fullPage: true });
  }, 150_000);
});
