/**
 * Personal access tokens and the admin REST API (issue 14), against a real
 * server: tokens are made on the user's page (shown once, stored hashed),
 * act with their user's permissions on /api/v1/admin, read-only ones cannot
 * change anything, and revoked, expired or disabled-user tokens get 401.
 */
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '@cairn/shared';
import { alerts, apiTokens, auditLog, clients } from '../../src/db/schema.ts';
import { listRuns } from '../../src/services/backup-repository.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { TestAgent } from './agent-fixture.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const API = '/api/v1/admin';

describe.each(testDatabaseKinds())('API tokens and /api/v1/admin (%s)', (kind) => {
  let h: DashboardHarness;
  let alice: Browser;
  let aliceId: string;
  let rootId: string;
  let agent: TestAgent;
  let bobAgent: TestAgent;
  let fullToken: string;
  let readToken: string;
  let rootToken: string;
  let firstRunAt: string;

  /** Creates a token on the user's own page and reads it from the page, where it is shown once. */
  async function newToken(browser: Browser, userId: string, fields: Record<string, string>) {
    await browser.get(`/users/${userId}`);
    const page = await browser.post(`/users/${userId}/tokens`, fields);
    expect(page.status).toBe(200);
    return /value="(cairn_pat_[A-Za-z0-9_-]+)" id="api-token"/.exec(page.body)![1]!;
  }

  const call = (token: string | null, method: string, path: string, body?: unknown) =>
    fetch(h.url + API + path, {
      method,
      headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const json = async (response: Response) => (await response.json()) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test reads loosely typed JSON

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    rootId = (await addUser(h.ctx, 'root', 'root-password-1', true)).id;
    aliceId = (await addUser(h.ctx, 'alice', 'alice-password-1')).id;
    await addUser(h.ctx, 'bob', 'bob-password-1');
    agent = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-laptop');
    bobAgent = await TestAgent.register(h.url, 'bob', 'bob-password-1', 'bob-box');
    await agent.backup([{ path: '/home/alice/notes.txt', content: 'first notes' }]);
    firstRunAt = (await listRuns(h.ctx.database.db, agent.clientId))[0]!.finishedAt!;
    await new Promise((resolve) => setTimeout(resolve, 20));
    await agent.backup([{ path: '/home/alice/notes.txt', content: 'second notes' }]);
    alice = new Browser(h.url);
    expect((await alice.login('alice', 'alice-password-1')).status).toBe(303);
    fullToken = await newToken(alice, aliceId, { name: 'deploy script', access: 'full', expiresInDays: '30' });
    readToken = await newToken(alice, aliceId, { name: 'report', access: 'read', expiresInDays: '7' });
    const root = new Browser(h.url);
    await root.login('root', 'root-password-1');
    rootToken = await newToken(root, rootId, { name: 'admin cron', access: 'read', expiresInDays: '1' });
  });

  afterAll(async () => {
    await h?.close();
  });

  it('shows a new token once and stores only its hash; lists it on the user page; audits its creation', async () => {
    expect(fullToken).toMatch(/^cairn_pat_[A-Za-z0-9_-]{43}$/);
    const rows = await h.ctx.database.db.select().from(apiTokens).where(eq(apiTokens.userId, aliceId));
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.tokenHash)).toContain(sha256Hex(fullToken));
    expect(JSON.stringify(rows)).not.toContain(fullToken);
    const page = await alice.get(`/users/${aliceId}`);
    expect(page.body).toContain('deploy script');
    expect(page.body).toContain(fullToken.slice(0, 16));
    expect(page.body).not.toContain(fullToken);
    const entries = await h.ctx.database.db.select().from(auditLog).where(and(eq(auditLog.action, 'user.api-token.create'), eq(auditLog.targetId, aliceId)));
    expect(entries).toHaveLength(2);
    expect(JSON.stringify(entries)).not.toContain(fullToken);
  });

  it('validates the token form with errors naming the fields', async () => {
    await alice.get(`/users/${aliceId}`);
    const bad = await alice.post(`/users/${aliceId}/tokens`, { name: '', access: 'root', expiresInDays: '400' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('a name of 1 to 100 characters');
    expect(bad.body).toContain('read or full');
    expect(bad.body).toContain('a whole number of days from 1 to 365');
    // Only the user themselves makes tokens, even an admin cannot make one for them.
    const root = new Browser(h.url);
    await root.login('root', 'root-password-1');
    await root.get(`/users/${aliceId}`);
    expect((await root.post(`/users/${aliceId}/tokens`, { name: 'x', access: 'full', expiresInDays: '1' })).status).toBe(403);
  });

  it('answers 401 without a token or with an unknown one', async () => {
    const none = await call(null, 'GET', '/clients');
    expect(none.status).toBe(401);
    expect((await json(none)).message).toBe('missing bearer token');
    expect((await call('cairn_pat_nope', 'GET', '/clients')).status).toBe(401);
    // An agent's token is not a personal access token.
    expect((await call(agent.token, 'GET', '/clients')).status).toBe(401);
  });

  it("acts with the user's permissions: own clients only, other users' clients are 404, users are for admins", async () => {
    const me = await json(await call(readToken, 'GET', '/me'));
    expect(me).toMatchObject({ user: { id: aliceId, username: 'alice', isAdmin: false }, token: { name: 'report', readOnly: true } });
    const list = await json(await call(readToken, 'GET', '/clients'));
    expect(list.clients.map((c: { name: string }) => c.name)).toEqual(['alice-laptop']);
    const one = await json(await call(readToken, 'GET', `/clients/${agent.clientId}`));
    expect(one).toMatchObject({ id: agent.clientId, ownerUsername: 'alice', monitoredPaths: [], retention: { versions: null, days: null } });
    expect((await call(readToken, 'GET', `/clients/${bobAgent.clientId}`)).status).toBe(404);
    expect((await call(readToken, 'GET', '/clients/not-a-uuid')).status).toBe(400);
    expect((await call(readToken, 'GET', '/users')).status).toBe(403);
    expect((await call(readToken, 'GET', `/users/${aliceId}`)).status).toBe(200);
    expect((await call(readToken, 'GET', `/users/${rootId}`)).status).toBe(403);
    const users = await json(await call(rootToken, 'GET', '/users'));
    expect(users.users.map((u: { username: string }) => u.username)).toEqual(['alice', 'bob', 'root']);
    expect(JSON.stringify(users)).not.toContain('password');
    const all = await json(await call(rootToken, 'GET', '/clients'));
    expect(all.clients).toHaveLength(2);
  });

  it('lists runs and the tree as of a time', async () => {
    const runs = await json(await call(readToken, 'GET', `/clients/${agent.clientId}/runs`));
    expect(runs.runs).toHaveLength(2);
    expect(runs.runs[0]).toMatchObject({ status: 'succeeded', trigger: 'schedule' });
    const now = await json(await call(readToken, 'GET', `/clients/${agent.clientId}/files`));
    expect(now.files.map((f: { sha256: string }) => f.sha256)).toEqual([sha256Hex('second notes')]);
    const then = await json(await call(readToken, 'GET', `/clients/${agent.clientId}/files?asOf=${encodeURIComponent(firstRunAt)}`));
    expect(then.files.map((f: { sha256: string }) => f.sha256)).toEqual([sha256Hex('first notes')]);
    const bad = await call(readToken, 'GET', `/clients/${agent.clientId}/files?asOf=yesterday`);
    expect(bad.status).toBe(400);
    expect((await json(bad)).message).toContain('querystring/asOf');
  });

  it('refuses every change with a read-only token (403), changing nothing', async () => {
    for (const [method, path, body] of [
      ['POST', `/clients/${agent.clientId}/run`, undefined],
      ['PATCH', `/clients/${agent.clientId}/config`, { backupIntervalSeconds: 600 }],
      ['POST', `/alerts/00000000-0000-4000-8000-000000000000/acknowledge`, undefined],
    ] as const) {
      const response = await call(readToken, method, path, body);
      expect(response.status, path).toBe(403);
      expect((await json(response)).message).toBe('this token is read-only');
    }
    const [row] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, agent.clientId));
    expect(row!.runRequestedAt).toBeNull();
    expect(row!.backupIntervalSeconds).toBe(3600);
  });

  it('changes the configuration with a full token, by the dashboard form rules, audited as the user and the token', async () => {
    const bad = await call(fullToken, 'PATCH', `/clients/${agent.clientId}/config`, { backupIntervalSeconds: 30, monitoredPaths: ['relative/path'] });
    expect(bad.status).toBe(400);
    const badBody = await json(bad);
    expect(badBody.fields).toEqual({ backupIntervalSeconds: 'must be between 1 minute and 30 days', monitoredPaths: '"relative/path" is not an absolute path' });
    const unknown = await call(fullToken, 'PATCH', `/clients/${agent.clientId}/config`, { backupInterval: '6h' });
    expect(unknown.status).toBe(400);
    expect((await json(unknown)).message).toContain('body');
    const ok = await call(fullToken, 'PATCH', `/clients/${agent.clientId}/config`, {
      monitoredPaths: ['/home/alice', '/etc/'],
      preCommands: [{ command: 'pg_dump app > /tmp/app.sql', timeoutSeconds: 120 }, { command: 'sync' }],
      backupIntervalSeconds: 21_600,
      retention: { versions: 5, days: null },
    });
    expect(ok.status, JSON.stringify(await ok.clone().json())).toBe(200);
    expect(await json(ok)).toMatchObject({
      monitoredPaths: ['/home/alice', '/etc'],
      preCommands: [{ command: 'pg_dump app > /tmp/app.sql', timeoutSeconds: 120 }, { command: 'sync', timeoutSeconds: 300 }],
      backupIntervalSeconds: 21_600,
      retention: { versions: 5, days: null },
      excludes: [],
    });
    // Only the fields sent change.
    const again = await json(await call(fullToken, 'PATCH', `/clients/${agent.clientId}/config`, { excludes: ['*.tmp'] }));
    expect(again).toMatchObject({ monitoredPaths: ['/home/alice', '/etc'], excludes: ['*.tmp'], backupIntervalSeconds: 21_600 });
    const [entry] = await h.ctx.database.db.select().from(auditLog).where(and(eq(auditLog.action, 'client.precommands.update'), eq(auditLog.targetId, agent.clientId)));
    expect(entry).toMatchObject({ actorUserId: aliceId, actorName: 'alice (API token "deploy script")' });
    expect((await call(fullToken, 'PATCH', `/clients/${bobAgent.clientId}/config`, { excludes: [] })).status).toBe(404);
    const run = await call(fullToken, 'POST', `/clients/${agent.clientId}/run`);
    expect(await json(run)).toEqual({ runRequested: true });
    expect((await agent.ping()).runRequested).toBe(true);
  });

  it('reads and changes retention rules (folder rules, restore points), refusing a bad rule with 400 naming the field', async () => {
    const none = { last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
    expect(await json(await call(readToken, 'GET', `/clients/${agent.clientId}`))).toMatchObject({ retentionRules: null });
    expect(await json(await call(readToken, 'GET', `/users/${aliceId}`))).toMatchObject({ retentionRules: { folders: [], restorePoints: none } });
    const bad = await call(fullToken, 'PATCH', `/clients/${agent.clientId}/config`, {
      retentionRules: { folders: [{ folder: '/dumps', rules: [{ count: 0, minAgeDays: 1 }] }], restorePoints: none },
    });
    expect(bad.status).toBe(400);
    expect((await json(bad)).fields).toEqual({ 'retentionRules.folders': expect.stringContaining('"0.1" is not count.min_age') });
    const rules = { folders: [{ folder: '/dumps', rules: [{ count: 3, minAgeDays: 1 }, { count: 2, minAgeDays: 15 }] }], restorePoints: { ...none, daily: 7 } };
    const ok = await call(fullToken, 'PATCH', `/clients/${agent.clientId}/config`, { retentionRules: rules });
    expect(ok.status).toBe(200);
    expect(await json(ok)).toMatchObject({ retentionRules: rules });
    const [row] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, agent.clientId));
    expect(row!.retentionRules).toEqual(rules);
    expect(await json(await call(fullToken, 'PATCH', `/clients/${agent.clientId}/config`, { retentionRules: null }))).toMatchObject({ retentionRules: null });
  });

  it('lists and acknowledges alerts of the user’s own clients only', async () => {
    const db = h.ctx.database.db;
    const values = { type: 'mass_change' as const, severity: 'critical' as const, dedupeKey: 'mass_change', observed: '90%', reference: '2%', message: 'mass change' };
    const [mine] = await db.insert(alerts).values({ ...values, clientId: agent.clientId }).returning();
    const [bobs] = await db.insert(alerts).values({ ...values, clientId: bobAgent.clientId }).returning();
    const listed = await json(await call(readToken, 'GET', '/alerts'));
    expect(listed.alerts.map((a: { id: string }) => a.id)).toEqual([mine!.id]);
    expect(listed.alerts[0]).toMatchObject({ type: 'mass_change', state: 'open', clientName: 'alice-laptop' });
    expect((await call(readToken, 'GET', '/alerts?state=nope')).status).toBe(400);
    expect((await call(fullToken, 'POST', `/alerts/${bobs!.id}/acknowledge`)).status).toBe(404);
    expect(await json(await call(fullToken, 'POST', `/alerts/${mine!.id}/acknowledge`))).toEqual({ ok: true });
    expect((await call(fullToken, 'POST', `/alerts/${mine!.id}/acknowledge`)).status).toBe(409);
    const acknowledged = await json(await call(readToken, 'GET', '/alerts?state=acknowledged'));
    expect(acknowledged.alerts[0]).toMatchObject({ id: mine!.id, acknowledgedBy: 'alice' });
  });

  it('describes the admin API in the OpenAPI document', async () => {
    const doc = await json(await fetch(`${h.url}/docs/json`));
    for (const path of ['/api/v1/admin/clients', '/api/v1/admin/clients/{id}', '/api/v1/admin/clients/{id}/config', '/api/v1/admin/clients/{id}/files', '/api/v1/admin/users', '/api/v1/admin/alerts/{id}/acknowledge']) {
      expect(doc.paths[path], path).toBeDefined();
    }
    const patch = doc.paths['/api/v1/admin/clients/{id}/config'].patch;
    expect(patch.security).toEqual([{ bearer: [] }]);
    expect(Object.keys(patch.requestBody.content['application/json'].schema.properties)).toEqual(['monitoredPaths', 'excludes', 'preCommands', 'backupIntervalSeconds', 'retention', 'retentionRules']);
  });

  it('answers 401 to a revoked token, an expired one and one of a disabled user', async () => {
    const temp = await newToken(alice, aliceId, { name: 'temp', access: 'read', expiresInDays: '1' });
    expect((await call(temp, 'GET', '/me')).status).toBe(200);
    const page = await alice.get(`/users/${aliceId}`);
    const tokenId = new RegExp(`/users/${aliceId}/tokens/([0-9a-f-]{36})/revoke`).exec(page.body)![1]!;
    const [row] = await h.ctx.database.db.select().from(apiTokens).where(eq(apiTokens.id, tokenId));
    expect(row!.name).toBe('temp');
    expect((await alice.post(`/users/${aliceId}/tokens/${tokenId}/revoke`, {})).status).toBe(303);
    expect((await call(temp, 'GET', '/me')).status).toBe(401);
    expect((await alice.get(`/users/${aliceId}`)).body).toContain('revoked');
    expect((await h.ctx.database.db.select().from(auditLog).where(eq(auditLog.action, 'user.api-token.revoke'))).length).toBe(1);

    await h.ctx.database.db.update(apiTokens).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(apiTokens.tokenHash, sha256Hex(readToken)));
    const expired = await call(readToken, 'GET', '/me');
    expect(expired.status).toBe(401);
    expect((await json(expired)).message).toBe('unknown, expired or revoked token');

    expect((await call(fullToken, 'GET', '/me')).status).toBe(200);
    const root = new Browser(h.url);
    await root.login('root', 'root-password-1');
    await root.get(`/users/${aliceId}`);
    expect((await root.post(`/users/${aliceId}/status`, { disabled: 'true' })).status).toBe(303);
    expect((await call(fullToken, 'GET', '/me')).status).toBe(401);
  });
});
