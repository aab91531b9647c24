/**
 * The verify loop end to end (issue 11's done criterion): a real server
 * process, a real env-mode agent, Debian's Chromium. A byte flipped in a
 * pack on disk is found by "Verify now" on the Verify page, which names the
 * file; the agent's next backup, though the file did not change, reads it
 * again (the server lists its content as one to recheck), the bytes are
 * uploaded again and the page shows nothing damaged; a restore is
 * byte-identical. Screenshots land in test-artifacts/verify/.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkLengths, DEFAULT_CHUNKER_PARAMS, sha256Hex } from '@cairn/shared';
import { ADMIN_PASSWORD, AGENT_MAIN, damageStoredChunk, envModeAgentEnv, runAgentOnce } from '../helpers/agent-e2e.ts';
import { artifactDir, chromiumAvailable, launchBrowser, signIn } from '../helpers/browser.ts';
import { startProcess, startServerProcess, type ServerProcess } from '../helpers/processes.ts';

describe.skipIf(!chromiumAvailable())('the Verify page: a flipped byte found, then healed by the next backup', () => {
  let base: string;
  let tree: string;
  let stateDir: string;
  let server: ServerProcess;
  let browser: Browser;
  let page: Page;
  let shots: string;
  const big = randomBytes(300_000);

  beforeAll(async () => {
    shots = await artifactDir('verify');
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-verify-'));
    tree = path.join(base, 'tree');
    stateDir = path.join(base, 'agent-state');
    await mkdir(tree);
    await writeFile(path.join(tree, 'big.bin'), big);
    await writeFile(path.join(tree, 'note.txt'), 'left alone\n');
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD, VERIFY_INTERVAL_SECONDS: '0' });
    expect((await runAgentOnce(envModeAgentEnv(server.url, stateDir, [tree]))).report).toMatchObject({ status: 'succeeded', filesFailed: 0 });
    browser = await launchBrowser();
    page = await (await browser.newContext({ viewport: { width: 1360, height: 1000 } })).newPage();
    await signIn(page, server.url, 'admin', ADMIN_PASSWORD);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  /** Reloads the Verify page until its newest run is no longer running. */
  async function newestRunFinished(): Promise<string> {
    for (let attempt = 0; attempt < 300; attempt++) {
      await page.goto(`${server.url}/verify`);
      // The run inserts its row once it holds the lock: the page may be rendered before that.
      const rows = page.locator('#verify-runs tbody tr');
      const status = (await rows.count()) > 0 ? await rows.first().getAttribute('data-run-status') : null;
      if (status && status !== 'running') return status;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('the verify run did not finish');
  }

  it('"Verify now" finds the flipped byte and names the file; the next backup heals it', async () => {
    await page.goto(`${server.url}/verify`);
    expect(await page.locator('#verify-damage').innerText()).toContain('Nothing is marked damaged.');
    // No REPLICA_* set: the replica card says how to have one.
    expect(await page.locator('#replica-status').innerText()).toContain('No replica store is configured. Set REPLICA_DIR or REPLICA_S3_BUCKET');

    // Flip a byte inside the pack, in the chunk holding byte 150,000 of big.bin.
    let at = 0;
    let chunk = '';
    for (const length of chunkLengths(big, DEFAULT_CHUNKER_PARAMS)) {
      if (at <= 150_000 && 150_000 < at + length) chunk = sha256Hex(big.subarray(at, at + length));
      at += length;
    }
    await damageStoredChunk(path.join(base, 'server'), chunk, (stored) => (stored[7]! ^= 0x20));

    await page.click('button:has-text("Verify now")');
    await page.waitForURL(/\/verify\?notice=verify-started/);
    expect(await newestRunFinished()).toBe('succeeded');
    const damage = await page.locator('#verify-damage').innerText();
    expect(damage).toContain(chunk.slice(0, 16));
    expect(damage).toContain(path.join(tree, 'big.bin'));
    expect(damage).not.toContain('note.txt');
    expect(await page.locator('#verify-runs tbody tr').first().innerText()).toMatch(/manual( on \S+)?\s+succeeded/);
    await page.screenshot({ path: path.join(shots, 'damage-found.png'), fullPage: true });

    // Nothing changed on the client, yet the next backup reads big.bin again and sends the damaged chunk.
    const { report } = await runAgentOnce(envModeAgentEnv(server.url, stateDir, [tree]));
    expect(report).toMatchObject({ status: 'succeeded', filesFailed: 0 });
    expect(report.bytesUploaded).toBeGreaterThan(0);
    await page.goto(`${server.url}/verify`);
    expect(await page.locator('#verify-damage').innerText()).toContain('Nothing is marked damaged.');
    await page.screenshot({ path: path.join(shots, 'healed.png'), fullPage: true });

    const target = path.join(base, 'restored');
    const restore = startProcess(AGENT_MAIN, ['restore', '--target', target, '--state', stateDir], {});
    const code = await new Promise<number | null>((resolve) => restore.child.once('exit', resolve));
    expect(code, restore.output()).toBe(0);
    expect((await readFile(path.join(target, tree, 'big.bin'))).equals(big)).toBe(true);
  });
});
