/**
 * The live channel end to end: a real server process, a real env-mode agent
 * process whose heartbeat is an hour apart, and Debian's Chromium on the
 * client page. "Back up now" must start the agent's run through the live
 * channel (no heartbeat falls in the test), and the page must show the run's
 * live progress. Screenshots land in test-artifacts/live-channel/.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, envModeAgentEnv, readAgentState, runReports, startAgent, waitForRuns } from '../helpers/agent-e2e.ts';
import { artifactDir, chromiumAvailable, launchBrowser, signIn } from '../helpers/browser.ts';
import { startServerProcess, type ManagedProcess, type ServerProcess } from '../helpers/processes.ts';

describe.skipIf(!chromiumAvailable())('live channel: "Back up now" and live progress', () => {
  let base: string;
  let server: ServerProcess;
  let agent: ManagedProcess;
  let browser: Browser;
  let page: Page;
  let shots: string;
  let clientId: string;

  beforeAll(async () => {
    shots = await artifactDir('live-channel');
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-live-'));
    const tree = path.join(base, 'tree');
    await mkdir(tree);
    for (let i = 0; i < 20; i++) await writeFile(path.join(tree, `file-${i}.txt`), `content ${i}\n`.repeat(1000));
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD });
    // Heartbeat and schedule an hour apart (startAgent's defaults, spelled out): only the live channel can start run 2.
    // The local pre-command keeps each run going for a few seconds, long enough to be watched.
    agent = startAgent(envModeAgentEnv(server.url, path.join(base, 'agent-state'), [tree], { PING_INTERVAL: '3600', BACKUP_INTERVAL: '3600', PRE_COMMANDS: 'sleep 4' }));
    await waitForRuns(agent, 1);
    clientId = (await readAgentState(path.join(base, 'agent-state'))).clientId;
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1360, height: 1000 } });
    page = await context.newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('starts the run from the dashboard through the live channel and shows its progress live', async () => {
    await page.goto(`${server.url}/clients/${clientId}`);
    expect(await page.locator('#live-progress').isHidden()).toBe(true);
    // The agent holds its channel open before the button is pressed.
    await waitForLog(agent, 'live channel to the server open');
    await page.click('button:has-text("Back up now")');

    const panel = page.locator('#live-progress');
    await panel.waitFor({ state: 'visible', timeout: 30_000 });
    await page.locator('#live-progress [data-live-facts] dt', { hasText: 'Files' }).waitFor({ timeout: 30_000 });
    const phase = await panel.locator('[data-live-phase]').textContent();
    expect(['config', 'pre-commands', 'scanning', 'hashing', 'uploading', 'committing', 'finishing']).toContain(phase);
    expect(await panel.locator('[data-live-facts]').textContent()).toMatch(/checked.*scanned/);
    await page.screenshot({ path: path.join(shots, 'client-live-progress.png'), fullPage: true });

    const second = await waitForRuns(agent, 2);
    expect(second.status).toBe('succeeded');
    expect(agent.output()).toContain('the server asked for a backup; starting one');
    // One heartbeat at start-up and one per live event; none from the hourly timer, which has not come round.
    expect(runReports(agent)).toHaveLength(2);

    // The finished run clears the panel.
    await panel.waitFor({ state: 'hidden', timeout: 30_000 });
    await page.screenshot({ path: path.join(shots, 'client-after-run.png'), fullPage: true });
  }, 120_000);
});

async function waitForLog(proc: ManagedProcess, text: string): Promise<void> {
  for (let i = 0; i < 600 && !proc.output().includes(text); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  if (!proc.output().includes(text)) throw new Error(`"${text}" never logged:\n${proc.output().slice(-3000)}`);
}
