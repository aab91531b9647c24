/**
 * The replica store's lag on the Verify page, in Debian's Chromium against
 * a real server process and a real agent: with replication not yet run the
 * card says how far behind the replica is (packs, bytes, since when); after
 * a restart with a pass every second it says "caught up" and what the
 * replica holds. Screenshots land in test-artifacts/replica/.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, envModeAgentEnv, runAgentOnce } from '../helpers/agent-e2e.ts';
import { artifactDir, chromiumAvailable, launchBrowser, signIn } from '../helpers/browser.ts';
import { startServerProcess, type ServerProcess } from '../helpers/processes.ts';

describe.skipIf(!chromiumAvailable())('the Verify page shows the replica store and its lag', () => {
  let base: string;
  let server: ServerProcess | undefined;
  let browser: Browser;
  let page: Page;
  let shots: string;
  const env = () => ({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD, VERIFY_INTERVAL_SECONDS: '0', REPLICA_DIR: path.join(base, 'replica') });

  beforeAll(async () => {
    shots = await artifactDir('replica');
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-replica-page-'));
    const tree = path.join(base, 'tree');
    await mkdir(tree);
    await writeFile(path.join(tree, 'big.bin'), randomBytes(600_000));
    await writeFile(path.join(tree, 'note.txt'), 'a note\n');
    // No pass within the test: the first one would run an hour after start.
    server = await startServerProcess({ ...env(), REPLICA_INTERVAL_SECONDS: '3600' });
    expect((await runAgentOnce(envModeAgentEnv(server.url, path.join(base, 'agent-state'), [tree]))).report).toMatchObject({ status: 'succeeded' });
    browser = await launchBrowser();
    page = await (await browser.newContext({ viewport: { width: 1360, height: 1000 } })).newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('says how far behind the replica is, then that it caught up', async () => {
    await page.goto(`${server!.url}/verify`);
    const card = page.locator('#replica-status');
    const behind = await card.innerText();
    expect(behind).toContain(path.join(base, 'replica'));
    expect(behind).toMatch(/\d+s behind/);
    expect(behind).toMatch(/oldest pack not yet copied committed/);
    expect(await page.locator('#replica-behind').innerText()).toMatch(/^[1-9]\d* packs?, [\d.]+ (KiB|MiB)$/);
    expect(behind).toContain('On the replica\n0 objects, 0 B');
    await card.screenshot({ path: path.join(shots, 'behind.png') });
    await page.screenshot({ path: path.join(shots, 'verify-behind.png'), fullPage: true });

    // The same server again, now replicating every second; the session lives in the database.
    await server!.stop();
    server = await startServerProcess({ ...env(), REPLICA_INTERVAL_SECONDS: '1' });
    let text = '';
    for (let attempt = 0; attempt < 300 && !text.includes('caught up'); attempt++) {
      await page.goto(`${server.url}/verify`);
      text = await page.locator('#replica-status').innerText();
      if (!text.includes('caught up')) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(text).toContain('caught up');
    expect(await page.locator('#replica-behind').innerText()).toBe('0 packs, 0 B');
    expect(text).toMatch(/On the replica\n[1-9]\d* objects?, [\d.]+ (KiB|MiB); last copy/);
    expect(await page.locator('[data-replica-lag]').getAttribute('data-replica-lag')).toBe('0');
    await card.screenshot({ path: path.join(shots, 'caught-up.png') });
  });
});
