/**
 * The replica registry and the Servers page (decision 149), against a real
 * server and database: this replica registers, names the job lock it holds
 * while it holds it, a silent replica is shown as lost, a stopped one as
 * stopped, rows a day old are pruned, and only admins see any of it (the
 * page and GET /api/v1/admin/servers).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_KEYS, lockManagerFor } from '../../src/db/advisory-locks.ts';
import { servers } from '../../src/db/schema.ts';
import { registerServer, SERVER_VERSION, type ServerRegistration } from '../../src/services/server-registry.service.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { Browser, signedInUser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

/** Polls `check` until it returns true (the registry writes asynchronously); fails after 20 s. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`never: ${what}`);
}

describe.each(testDatabaseKinds())('the Servers page and GET /api/v1/admin/servers (%s)', (kind) => {
  let h: DashboardHarness;
  let registration: ServerRegistration;
  let admin: Browser;
  let user: Browser;
  let adminToken: string;
  let userToken: string;
  const lostId = randomUUID();
  const stoppedId = randomUUID();
  const ancientId = randomUUID();

  async function newToken(browser: Browser, userId: string): Promise<string> {
    await browser.get(`/users/${userId}`);
    const page = await browser.post(`/users/${userId}/tokens`, { name: 'servers', access: 'read', expiresInDays: '1' });
    return /value="(cairn_pat_[A-Za-z0-9_-]+)" id="api-token"/.exec(page.body)![1]!;
  }
  const api = (token: string | null) =>
    fetch(`${h.url}/api/v1/admin/servers`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  const rowOf = (page: string, id: string) => {
    const start = page.indexOf(`data-server-id="${id}"`);
    return start < 0 ? '' : page.slice(start, page.indexOf('</tr>', start));
  };

  beforeAll(async () => {
    h = await startDashboardHarness(kind, { CLUSTER_HEARTBEAT_SECONDS: '1', CLUSTER_LOST_AFTER_SECONDS: '30' });
    const db = h.ctx.database.db;
    const base = { host: 'elsewhere', pid: 4242, version: '0.0.9', listenUrl: 'http://10.0.0.9:8000' };
    await db.insert(servers).values([
      { ...base, id: lostId, heartbeatAt: sql`now() - interval '5 minutes'`, runningJobs: ['verify'] },
      { ...base, id: stoppedId, heartbeatAt: sql`now() - interval '2 minutes'`, stoppedAt: sql`now() - interval '2 minutes'`, runningJobs: [] },
      { ...base, id: ancientId, heartbeatAt: sql`now() - interval '25 hours'`, stoppedAt: sql`now() - interval '25 hours'`, runningJobs: [] },
    ]);
    h.ctx.serverId = randomUUID();
    registration = await registerServer({ ...h.ctx, serverId: h.ctx.serverId }, h.url);
    const root = await signedInUser(h, 'root', true);
    const alice = await signedInUser(h, 'alice');
    admin = root.browser;
    user = alice.browser;
    adminToken = await newToken(admin, root.id);
    userToken = await newToken(user, alice.id);
  });

  afterAll(async () => {
    await registration?.stop();
    await h?.close();
  });

  it('lists this replica marked as this one, a silent one as lost with what it was running, a stopped one as stopped', async () => {
    const page = await admin.get('/servers');
    expect(page.status).toBe(200);
    expect(page.body).toContain('<a href="/servers" class="active">Servers</a>');
    const mine = rowOf(page.body, h.ctx.serverId!);
    expect(mine).toContain('data-server-state="running"');
    expect(mine).toContain('this one');
    expect(mine).toContain(SERVER_VERSION);
    expect(mine).toContain(`<code>${h.url}</code>`);
    const lost = rowOf(page.body, lostId);
    expect(lost).toContain('data-server-state="lost"');
    expect(lost).toContain('was running');
    expect(lost).toContain('data-running-jobs="verify"');
    expect(lost).toMatch(/[5-6] min ago/);
    expect(rowOf(page.body, stoppedId)).toContain('data-server-state="stopped"');
    expect(rowOf(page.body, stoppedId)).not.toContain('this one');
  });

  it('shows a job while this replica holds its lock, and idle again after', async () => {
    const jobsOnPage = async () => /data-running-jobs="([^"]*)"/.exec(rowOf((await admin.get('/servers')).body, h.ctx.serverId!))?.[1];
    await lockManagerFor(h.ctx.database).tryExclusive(LOCK_KEYS.gcRun, async () => {
      await until('gc shown as running', async () => (await jobsOnPage()) === 'gc');
      const listed = (await (await api(adminToken)).json()) as { servers: { id: string; runningJobs: string[] }[] };
      expect(listed.servers.find((s) => s.id === h.ctx.serverId)?.runningJobs).toEqual(['gc']);
    });
    await until('gc no longer shown', async () => (await jobsOnPage()) === '');
  });

  it('prunes rows whose last heartbeat is a day old at the next heartbeat, and keeps the younger ones', async () => {
    const db = h.ctx.database.db;
    await until('the day-old row is pruned', async () => (await db.select().from(servers).where(eq(servers.id, ancientId))).length === 0);
    expect((await db.select({ id: servers.id }).from(servers)).map((r) => r.id).sort()).toEqual([lostId, stoppedId, h.ctx.serverId!].sort());
  });

  it('answers the API for admins with the same rows, 403 for other users, 401 without a token', async () => {
    const answer = await api(adminToken);
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { servers: { id: string; state: string; isThisServer: boolean; heartbeatAgeSeconds: number }[] };
    expect(Object.fromEntries(body.servers.map((s) => [s.id, s.state]))).toEqual({ [h.ctx.serverId!]: 'running', [lostId]: 'lost', [stoppedId]: 'stopped' });
    expect(body.servers.filter((s) => s.isThisServer).map((s) => s.id)).toEqual([h.ctx.serverId]);
    expect(body.servers.find((s) => s.id === lostId)!.heartbeatAgeSeconds).toBeGreaterThanOrEqual(300);
    expect((await api(userToken)).status).toBe(403);
    expect((await api(null)).status).toBe(401);
  });

  it('is for admins only: another user gets 403 and no nav link', async () => {
    expect((await user.get('/servers')).status).toBe(403);
    expect((await user.get('/')).body).not.toContain('href="/servers"');
  });

  it('marks the row stopped, with no jobs, at a clean shutdown', async () => {
    await registration.stop();
    const [row] = await h.ctx.database.db.select().from(servers).where(eq(servers.id, h.ctx.serverId!));
    expect(row?.stoppedAt).not.toBeNull();
    expect(row?.runningJobs).toEqual([]);
    expect(rowOf((await admin.get('/servers')).body, h.ctx.serverId!)).toContain('data-server-state="stopped"');
  });
});
