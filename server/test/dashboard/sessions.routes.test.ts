/**
 * Server-side sessions and account security (issue 14): a cookie copied
 * before sign-out, a password change or a reset stops working; disabling a
 * user ends theirs; sessions have an absolute lifetime; the user's page lists
 * their sessions and ends each; admins delete users and move clients.
 */
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_PREFIX, sha256Hex } from '@cairn/shared';
import { buildApp } from '../../src/app.ts';
import { loadServerConfig } from '../../src/config/server-config.ts';
import { SESSION_COOKIE } from '../../src/dashboard/session.ts';
import { auditLog, clientPaths, clients, fileVersions, ownerContents, sessions, users } from '../../src/db/schema.ts';
import { findMissingContents } from '../../src/services/content-store.service.ts';
import { createSession } from '../../src/services/sessions.service.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { TestAgent } from './agent-fixture.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

describe.each(testDatabaseKinds())('revocable sessions (%s)', (kind) => {
  let h: DashboardHarness;
  let rootId: string;

  beforeAll(async () => {
    h = await startDashboardHarness(kind, { SESSION_MAX_HOURS: '2' });
    rootId = (await addUser(h.ctx, 'root', 'root-password-1', true)).id;
    await addUser(h.ctx, 'gina', 'gina-password-1');
  });

  afterAll(async () => {
    await h?.close();
  });

  /** The page as a browser holding only the copied cookie would see it. */
  const asCopy = (cookie: string, url = '/') => fetch(h.url + url, { redirect: 'manual', headers: { cookie } });
  const copyOf = (browser: Browser) => `${SESSION_COOKIE}=${browser.cookies.get(SESSION_COOKIE)}`;
  const signedIn = async (username: string, password: string) => {
    const browser = new Browser(h.url);
    expect((await browser.login(username, password)).status).toBe(303);
    return browser;
  };
  const sessionCount = async (userId: string) => (await h.ctx.database.db.select().from(sessions).where(eq(sessions.userId, userId))).length;
  const idOf = async (username: string) => (await h.ctx.database.db.select({ id: users.id }).from(users).where(eq(users.username, username)))[0]!.id;

  it('refuses a session cookie copied before sign-out, after it', async () => {
    const gina = await signedIn('gina', 'gina-password-1');
    await gina.get('/');
    const copied = copyOf(gina);
    expect((await asCopy(copied)).status).toBe(200);
    expect((await gina.post('/logout', {})).status).toBe(303);
    const after = await asCopy(copied);
    expect(after.status).toBe(303);
    expect(after.headers.get('location')).toMatch(/^\/login/);
  });

  it('ends the other sessions on a self-service password change, keeps this one, and asks for the current password', async () => {
    const hank = await addUser(h.ctx, 'hank', 'hank-password-1');
    const laptop = await signedIn('hank', 'hank-password-1');
    const phone = await signedIn('hank', 'hank-password-1');
    const copied = copyOf(phone);
    await laptop.get(`/users/${hank.id}`);
    const wrong = await laptop.post(`/users/${hank.id}/change-password`, { currentPassword: 'not-it-at-all', newPassword: 'hank-password-2' });
    expect(wrong.status).toBe(400);
    expect(wrong.body).toContain('does not match your current password');
    const short = await laptop.post(`/users/${hank.id}/change-password`, { currentPassword: 'hank-password-1', newPassword: 'short' });
    expect(short.status).toBe(400);
    expect(short.body).toContain('at least 8 characters');
    expect((await asCopy(copied)).status).toBe(200);
    const changed = await laptop.post(`/users/${hank.id}/change-password`, { currentPassword: 'hank-password-1', newPassword: 'hank-password-2' });
    expect(changed.status).toBe(303);
    expect((await asCopy(copied)).status).toBe(303);
    expect((await phone.get('/')).status).toBe(303);
    expect((await laptop.get('/')).status).toBe(200);
    expect(await sessionCount(hank.id)).toBe(1);
    expect((await new Browser(h.url).login('hank', 'hank-password-1')).status).toBe(401);
    expect((await new Browser(h.url).login('hank', 'hank-password-2')).status).toBe(303);
    const [entry] = await h.ctx.database.db.select().from(auditLog).where(and(eq(auditLog.action, 'user.password.change'), eq(auditLog.targetId, hank.id)));
    expect(entry!.details).toEqual({ sessionsEnded: 1 });
    // Someone else's password is not theirs to change.
    const root = await signedIn('root', 'root-password-1');
    await root.get(`/users/${hank.id}`);
    expect((await root.post(`/users/${hank.id}/change-password`, { currentPassword: 'hank-password-2', newPassword: 'taken-over-1' })).status).toBe(403);
  });

  it('ends every session of a user whose password an admin resets, and of a disabled user', async () => {
    const ivy = await addUser(h.ctx, 'ivy', 'ivy-password-1');
    const first = copyOf(await signedIn('ivy', 'ivy-password-1'));
    const root = await signedIn('root', 'root-password-1');
    await root.get(`/users/${ivy.id}`);
    expect((await root.post(`/users/${ivy.id}/password`, { password: 'ivy-password-2' })).status).toBe(303);
    expect((await asCopy(first)).status).toBe(303);
    expect(await sessionCount(ivy.id)).toBe(0);
    expect((await root.get('/')).status).toBe(200);

    const second = copyOf(await signedIn('ivy', 'ivy-password-2'));
    expect((await asCopy(second)).status).toBe(200);
    await root.get(`/users/${ivy.id}`);
    expect((await root.post(`/users/${ivy.id}/status`, { disabled: 'true' })).status).toBe(303);
    expect(await sessionCount(ivy.id)).toBe(0);
    expect((await asCopy(second)).status).toBe(303);
  });

  it('keeps the admin signed in when they reset their own password, ending their other sessions', async () => {
    const here = await signedIn('root', 'root-password-1');
    const other = copyOf(await signedIn('root', 'root-password-1'));
    await here.get(`/users/${rootId}`);
    expect((await here.post(`/users/${rootId}/password`, { password: 'root-password-2' })).status).toBe(303);
    expect((await here.get('/')).status).toBe(200);
    expect((await asCopy(other)).status).toBe(303);
    await here.get(`/users/${rootId}`);
    expect((await here.post(`/users/${rootId}/password`, { password: 'root-password-1' })).status).toBe(303);
  });

  it('ends a session SESSION_MAX_HOURS after sign-in however active it is', async () => {
    const gina = await idOf('gina');
    const db = h.ctx.database.db;
    const { token, id } = await createSession(db, gina, { userAgent: 'test', ip: '127.0.0.1', now: new Date(), limits: h.ctx.config.session });
    expect((await asCopy(`${SESSION_COOKIE}=${token}`)).status).toBe(200);
    // Signed in 2 h 1 min ago, seen a moment ago: past the absolute lifetime, within the idle timeout.
    await db.update(sessions).set({ createdAt: new Date(Date.now() - 121 * 60_000), lastSeenAt: new Date() }).where(eq(sessions.id, id));
    const response = await asCopy(`${SESSION_COOKIE}=${token}`, '/clients');
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/login?next=%2Fclients&notice=expired');
    expect(await db.select().from(sessions).where(eq(sessions.id, id))).toEqual([]);
  });

  it('sets the cookie once, with the absolute lifetime as its Max-Age, and never re-issues it', async () => {
    const browser = new Browser(h.url);
    const login = await browser.login('gina', 'gina-password-1');
    expect(login.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`))).toMatch(/Max-Age=7200/);
    const page = await fetch(`${h.url}/`, { redirect: 'manual', headers: { cookie: browser.cookieHeader() } });
    expect(page.status).toBe(200);
    expect(page.headers.getSetCookie().some((c) => c.startsWith(`${SESSION_COOKIE}=`))).toBe(false);
  });

  it('lists the user’s sessions on their page and ends one of them; nobody else’s', async () => {
    const jo = await addUser(h.ctx, 'jo', 'jo-password-1');
    const here = await signedIn('jo', 'jo-password-1');
    const there = await signedIn('jo', 'jo-password-1');
    // An idle one not yet deleted is not listed.
    await createSession(h.ctx.database.db, jo.id, { userAgent: 'old', ip: '127.0.0.1', now: new Date(Date.now() - 90 * 60_000), limits: h.ctx.config.session });
    const page = await here.get(`/users/${jo.id}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('this browser');
    const rows = await h.ctx.database.db.select().from(sessions).where(eq(sessions.userId, jo.id));
    expect(rows).toHaveLength(3);
    const thereCookie = copyOf(there);
    // The other browser is the one whose row is not marked as this browser: end it by id.
    const ids = [...page.body.matchAll(/\/sessions\/([0-9a-f-]{36})\/revoke"( data-confirm)?/g)];
    expect(ids).toHaveLength(2);
    const otherId = ids.find((m) => m[2] === undefined)![1]!;
    // Another user cannot end it (404, not revealed), an admin can.
    const gina = await signedIn('gina', 'gina-password-1');
    await gina.get(`/users/${await idOf('gina')}`);
    expect((await gina.post(`/users/${jo.id}/sessions/${otherId}/revoke`, {})).status).toBe(403);
    expect((await gina.post(`/users/${await idOf('gina')}/sessions/${otherId}/revoke`, {})).status).toBe(404);
    expect((await asCopy(thereCookie)).status).toBe(200);
    const ended = await here.post(`/users/${jo.id}/sessions/${otherId}/revoke`, {});
    expect(ended.status).toBe(303);
    expect((await asCopy(thereCookie)).status).toBe(303);
    expect((await here.get('/')).status).toBe(200);
    const [entry] = await h.ctx.database.db.select().from(auditLog).where(and(eq(auditLog.action, 'user.session.revoke'), eq(auditLog.targetId, jo.id)));
    expect(entry!.details).toEqual({ sessionId: otherId });
  });

  it('still refuses a form without its CSRF token', async () => {
    const gina = await signedIn('gina', 'gina-password-1');
    const response = await gina.post('/logout', {}, { withCsrf: false });
    expect(response.status).toBe(403);
    expect((await gina.get('/')).status).toBe(200);
  });

  it('ends a session on every replica that shares the database when one of them signs it out', async () => {
    const replica = await buildApp(h.ctx);
    const replicaUrl = await replica.listen({ port: 0, host: '127.0.0.1' });
    try {
      const gina = await signedIn('gina', 'gina-password-1');
      const copied = copyOf(gina);
      expect((await fetch(`${replicaUrl}/`, { redirect: 'manual', headers: { cookie: copied } })).status).toBe(200);
      await gina.get('/');
      expect((await gina.post('/logout', {})).status).toBe(303);
      expect((await fetch(`${replicaUrl}/`, { redirect: 'manual', headers: { cookie: copied } })).status).toBe(303);
    } finally {
      await replica.close();
    }
  });

  it('refuses SESSION_MAX_HOURS out of range, naming it', () => {
    const base = { DATA_DIR: '/tmp/x', SECRET_KEY: 'k'.repeat(40) };
    expect(() => loadServerConfig({ ...base, SESSION_MAX_HOURS: '0' })).toThrow(/SESSION_MAX_HOURS/);
    expect(() => loadServerConfig({ ...base, SESSION_MAX_HOURS: 'week' })).toThrow(/SESSION_MAX_HOURS/);
    expect(loadServerConfig({ ...base, SESSION_MAX_HOURS: '12' }).session.maxHours).toBe(12);
  });
});

/** The agent API's answer to the agent's heartbeat: 200, or 401 once its token stopped working. */
async function pingStatus(agent: TestAgent): Promise<number> {
  const response = await fetch(`${agent.baseUrl}${API_PREFIX}/ping`, {
    method: 'POST',
    headers: { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ state: 'idle' }),
  });
  return response.status;
}

describe.each(testDatabaseKinds())('deleting users and moving clients (%s)', (kind) => {
  let h: DashboardHarness;
  let root: Browser;

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    await addUser(h.ctx, 'root', 'root-password-1', true);
    root = new Browser(h.url);
    expect((await root.login('root', 'root-password-1')).status).toBe(303);
  });

  afterAll(async () => {
    await h?.close();
  });

  it('deletes a user after the admin types their name, with their clients and backups, and audits it', async () => {
    const kim = await addUser(h.ctx, 'kim', 'kim-password-1');
    const agent = await TestAgent.register(h.url, 'kim', 'kim-password-1', 'kim-pc');
    await agent.backup([{ path: '/home/kim/a.txt', content: 'kim a' }, { path: '/home/kim/b.txt', content: 'kim b' }]);
    const kimBrowser = new Browser(h.url);
    await kimBrowser.login('kim', 'kim-password-1');
    const page = await root.get(`/users/${kim.id}`);
    expect(page.body).toContain('Type <strong>kim</strong> to confirm');
    const unconfirmed = await root.post(`/users/${kim.id}/delete`, { confirmUsername: 'ki' });
    expect(unconfirmed.status).toBe(400);
    expect(unconfirmed.body).toContain('confirmUsername: type kim to confirm');
    expect((await root.get(`/users/${kim.id}`)).status).toBe(200);
    const deleted = await root.post(`/users/${kim.id}/delete`, { confirmUsername: 'kim' });
    expect(deleted.status).toBe(303);
    expect(deleted.location).toBe('/users?notice=user-deleted');
    const db = h.ctx.database.db;
    expect(await db.select().from(clients).where(eq(clients.id, agent.clientId))).toEqual([]);
    expect(await db.select().from(clientPaths).where(eq(clientPaths.clientId, agent.clientId))).toEqual([]);
    expect(await db.select({ id: fileVersions.id }).from(fileVersions).innerJoin(clientPaths, eq(clientPaths.id, fileVersions.pathId)).where(eq(clientPaths.clientId, agent.clientId))).toEqual([]);
    expect(await db.select().from(ownerContents).where(eq(ownerContents.userId, kim.id))).toEqual([]);
    expect((await kimBrowser.get('/')).status).toBe(303);
    expect(await pingStatus(agent)).toBe(401);
    const [entry] = await db.select().from(auditLog).where(and(eq(auditLog.action, 'user.delete'), eq(auditLog.targetId, kim.id)));
    expect(entry!.details).toEqual({ username: 'kim', clients: 1, versions: 2 });
    expect((await root.get(`/users/${kim.id}`)).status).toBe(404);
  });

  it('does not let an admin delete themselves or a non-admin delete anyone', async () => {
    const selfId = (await root.get('/users')).body.match(/href="\/users\/([0-9a-f-]{36})">root</)![1]!;
    await root.get(`/users/${selfId}`);
    expect((await root.post(`/users/${selfId}/delete`, { confirmUsername: 'root' })).status).toBe(400);
    const lee = await addUser(h.ctx, 'lee', 'lee-password-1');
    const leeBrowser = new Browser(h.url);
    await leeBrowser.login('lee', 'lee-password-1');
    await leeBrowser.get(`/users/${lee.id}`);
    expect((await leeBrowser.post(`/users/${selfId}/delete`, { confirmUsername: 'root' })).status).toBe(403);
  });

  it('moves a client to another owner, who then holds its contents, downloads its files and deduplicates against them', async () => {
    const max = await addUser(h.ctx, 'max', 'max-password-1');
    const nia = await addUser(h.ctx, 'nia', 'nia-password-1');
    const agent = await TestAgent.register(h.url, 'max', 'max-password-1', 'shared-box');
    await agent.backup([{ path: '/srv/ledger.csv', content: 'a,b\n1,2\n' }]);
    await root.get(`/clients/${agent.clientId}`);
    const moved = await root.post(`/clients/${agent.clientId}/owner`, { ownerId: nia.id });
    expect(moved.status).toBe(303);
    const db = h.ctx.database.db;
    expect((await db.select().from(clients).where(eq(clients.id, agent.clientId)))[0]!.ownerId).toBe(nia.id);
    const [version] = await db
      .select({ id: fileVersions.id })
      .from(fileVersions)
      .innerJoin(clientPaths, eq(clientPaths.id, fileVersions.pathId))
      .where(eq(clientPaths.clientId, agent.clientId));
    const niaBrowser = new Browser(h.url);
    await niaBrowser.login('nia', 'nia-password-1');
    const download = await niaBrowser.get(`/clients/${agent.clientId}/versions/${version!.id}/download`);
    expect(download.status).toBe(200);
    expect(download.body).toBe('a,b\n1,2\n');
    const maxBrowser = new Browser(h.url);
    await maxBrowser.login('max', 'max-password-1');
    expect((await maxBrowser.get(`/clients/${agent.clientId}`)).status).toBe(404);
    // The agent's token still works, now as nia's client, and nia holds the content: no upload asked for.
    expect(await pingStatus(agent)).toBe(200);
    expect(await findMissingContents(h.ctx, nia.id, [sha256Hex('a,b\n1,2\n')])).toEqual([]);
    await agent.backup([{ path: '/srv/ledger.csv', content: 'a,b\n1,2\n' }, { path: '/srv/new.txt', content: 'after the move' }]);
    const [entry] = await db.select().from(auditLog).where(and(eq(auditLog.action, 'client.move'), eq(auditLog.targetId, agent.clientId)));
    expect(entry!.details).toMatchObject({ fromUserId: max.id, toUserId: nia.id, toUsername: 'nia', contentsGranted: 1 });
  });

  it('refuses a move to a user who already has a client of that name (409) or to no user (400)', async () => {
    const olga = await addUser(h.ctx, 'olga', 'olga-password-1');
    const pia = await addUser(h.ctx, 'pia', 'pia-password-1');
    const first = await TestAgent.register(h.url, 'olga', 'olga-password-1', 'desktop');
    await TestAgent.register(h.url, 'pia', 'pia-password-1', 'desktop');
    await root.get(`/clients/${first.clientId}`);
    const clash = await root.post(`/clients/${first.clientId}/owner`, { ownerId: pia.id });
    expect(clash.status).toBe(409);
    expect(clash.body).toContain('already has a client with this name');
    const nobody = await root.post(`/clients/${first.clientId}/owner`, { ownerId: '00000000-0000-4000-8000-000000000000' });
    expect(nobody.status).toBe(400);
    expect(nobody.body).toContain('ownerId: choose an existing user');
    expect((await h.ctx.database.db.select().from(clients).where(eq(clients.id, first.clientId)))[0]!.ownerId).toBe(olga.id);
  });
});
