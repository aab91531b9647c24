import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupRuns } from '../../src/db/schema.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { TestAgent } from './agent-fixture.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const ADMIN = { username: 'root', password: 'root-password-1' };
const ALICE = { username: 'alice', password: 'alice-password-1' };
const BOB = { username: 'bob', password: 'bob-password-1' };
const DAY_MS = 86_400_000;
const MIB = 1024 * 1024;

/** The value of a summary figure (`<dt>label</dt><dd>value</dd>`) in the card whose heading is `heading`. */
function figure(body: string, heading: string, label: string): string | null {
  const card = body.split('<section class="card">').find((part) => part.includes(`<h2>${heading}</h2>`));
  if (!card) return null;
  const match = new RegExp(`<dt>${label}</dt><dd[^>]*>([^<]*)</dd>`).exec(card);
  return match ? match[1]! : null;
}

describe.each(testDatabaseKinds())('dashboard statistics (%s)', (kind) => {
  let h: DashboardHarness;
  let admin: Browser;
  let alice: Browser;
  let aliceAgent: TestAgent;
  let bobAgent: TestAgent;

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    await addUser(h.ctx, ADMIN.username, ADMIN.password, true);
    await addUser(h.ctx, ALICE.username, ALICE.password);
    await addUser(h.ctx, BOB.username, BOB.password);
    aliceAgent = await TestAgent.register(h.url, ALICE.username, ALICE.password, 'alice-laptop');
    bobAgent = await TestAgent.register(h.url, BOB.username, BOB.password, 'bob-server');
    const now = Date.now();
    const run = (clientId: string, daysAgo: number, status: 'succeeded' | 'partial' | 'failed', mib: number, files: number) => ({
      clientId,
      status,
      startedAt: new Date(now - daysAgo * DAY_MS),
      finishedAt: new Date(now - daysAgo * DAY_MS + 90_000),
      bytesUploaded: 2 * mib * MIB,
      bytesNew: mib * MIB,
      filesChanged: files,
    });
    // Alice: three finished runs this week (two succeeded) and one 20 days ago; Bob: one run with much more data.
    await h.ctx.database.db.insert(backupRuns).values([
      run(aliceAgent.clientId, 1, 'succeeded', 1, 10),
      run(aliceAgent.clientId, 2, 'failed', 0, 0),
      run(aliceAgent.clientId, 3, 'succeeded', 2, 5),
      run(aliceAgent.clientId, 20, 'succeeded', 4, 100),
      run(bobAgent.clientId, 1, 'succeeded', 64, 1000),
    ]);
    // Real stored bytes too, so the storage line has a level to end at.
    await bobAgent.backup([{ path: '/srv/data.bin', content: 'x'.repeat(200_000) }]);
    admin = new Browser(h.url);
    alice = new Browser(h.url);
    await admin.login(ADMIN.username, ADMIN.password);
    await alice.login(ALICE.username, ALICE.password);
  });
  afterAll(() => h?.close());

  it('sums the viewer’s own runs per range on the fleet page; an admin sees every client', async () => {
    const week = await alice.get('/stats?days=7');
    expect(week.status).toBe(200);
    expect(figure(week.body, 'Bytes per day', 'Newly stored')).toBe('3.00 MiB');
    expect(figure(week.body, 'Bytes per day', 'Uploaded')).toBe('6.00 MiB');
    expect(figure(week.body, 'Files changed', 'Files changed')).toBe('15');
    expect(figure(week.body, 'Success rate', 'Finished runs')).toBe('3');
    expect(figure(week.body, 'Success rate', 'Succeeded')).toBe('67%');
    const month = await alice.get('/stats?days=30');
    expect(figure(month.body, 'Bytes per day', 'Newly stored')).toBe('7.00 MiB');
    expect(figure(month.body, 'Files changed', 'Files changed')).toBe('115');
    expect((await alice.get('/stats')).body).toContain('aria-current="page">30 days');
    expect(week.body).not.toContain('bob-server');
    const all = await admin.get('/stats?days=7');
    expect(all.body).toContain('bob-server');
    expect(figure(all.body, 'Bytes per day', 'Newly stored')).toBe('67.2 MiB');
    expect(figure(all.body, 'Success rate', 'Finished runs')).toBe('5');
  });

  it('draws each chart as SVG with a title and description, and the storage forecast line', async () => {
    const page = await alice.get('/stats?days=7');
    for (const id of ['chart-bytes', 'chart-files', 'chart-duration', 'chart-success', 'chart-growth']) {
      expect(page.body).toContain(`aria-labelledby="${id}-title ${id}-desc"`);
    }
    expect(page.body).toMatch(/<line class="forecast"/);
    expect(figure(page.body, 'Storage growth', 'Trend')).toMatch(/^\+\d+(\.\d+)? (B|KiB|MiB) a day$/);
  });

  it('tells only admins the free disk space and when it runs full at the trend', async () => {
    const page = await admin.get('/stats?days=7');
    expect(figure(page.body, 'Storage growth', 'Free disk space')).toMatch(/iB$/);
    expect(figure(page.body, 'Storage growth', 'Full in')).toMatch(/days$|years$|not at this trend|less than a day/);
    const own = await alice.get('/stats?days=7');
    expect(own.body).not.toContain('Full in');
    expect(own.body).not.toContain('Free disk space');
  });

  it('shows a client’s statistics tab with per-run charts; another user’s client is 404', async () => {
    const page = await alice.get(`/clients/${aliceAgent.clientId}/stats?days=7`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('class="active">Statistics</a>');
    expect(figure(page.body, 'Bytes per run', 'Newly stored')).toBe('3.00 MiB');
    expect(figure(page.body, 'Duration per run', 'Median')).toBe('1m 30s');
    // One bar per run and series: three runs in the week, uploaded and newly stored each.
    const bytesCard = page.body.split('<section class="card">').find((part) => part.includes('<h2>Bytes per run</h2>'))!;
    expect(bytesCard.match(/<rect class="bar-(uploaded|stored)"/g)).toHaveLength(6);
    expect(page.body).not.toContain('bob-server');
    expect((await alice.get(`/clients/${bobAgent.clientId}/stats`)).status).toBe(404);
    expect((await admin.get(`/clients/${bobAgent.clientId}/stats`)).status).toBe(200);
  });

  it('says "no data" for a client without runs instead of drawing empty frames', async () => {
    const idle = await TestAgent.register(h.url, ALICE.username, ALICE.password, 'alice-idle');
    const page = await alice.get(`/clients/${idle.clientId}/stats`);
    expect(page.status).toBe(200);
    // Bytes, files, duration and success rate; the storage line still has its (flat) points.
    expect(page.body.match(/No data in this range\./g)).toHaveLength(4);
    expect(page.body).toContain('No runs in this range.');
  });

  it('answers a range it does not offer with a 400 naming days', async () => {
    for (const url of ['/stats?days=14', '/stats?days=7.0', '/stats?days=', `/clients/${aliceAgent.clientId}/stats?days=365`]) {
      const page = await alice.get(url);
      expect(page.status, url).toBe(url.endsWith('=') ? 200 : 400);
      if (!url.endsWith('=')) expect(page.body, url).toContain('days: one of 7, 30, 90');
    }
    const nul = await alice.get('/stats?days=%00');
    expect(nul.status).toBe(400);
    expect(nul.body).toContain('days: must not contain NUL');
  });
});
