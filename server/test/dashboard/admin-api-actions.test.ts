/**
 * Every dashboard action has an admin-API counterpart (issue 14): the
 * dashboard's POST routes are read from the running app and each must be in
 * ROUTE_TABLE, mapped to routes that exist, are in the OpenAPI document and
 * take a bearer token, so a new dashboard form without an API route fails
 * here. Then the counterparts added for the user and client pages, the
 * enrollment keys and the settings pages, against a real server: the same
 * permissions as the dashboard (another user's thing 404, admin-only 403,
 * read-only tokens 403), the forms' messages naming the fields, audited as
 * the user and the token.
 */
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_PREFIX } from '@cairn/shared';
import { auditLog, clients, users } from '../../src/db/schema.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { TestAgent } from './agent-fixture.ts';
import { Browser, signedInUser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const ADMIN = '/api/v1/admin';

/** Each dashboard POST route and the admin-API route(s) doing the same; login trades a password for a token instead of a cookie. */
const ROUTE_TABLE: Record<string, string[]> = {
  '/login': ['POST /api/v1/auth/token'],
  '/logout': [`DELETE ${ADMIN}/me/token`],
  '/alerts/:id/acknowledge': [`POST ${ADMIN}/alerts/:id/acknowledge`],
  '/clients': [`POST ${ADMIN}/clients`],
  '/clients/:id/config': [`PATCH ${ADMIN}/clients/:id/config`],
  '/clients/:id/retention': [`PATCH ${ADMIN}/clients/:id/config`, `POST ${ADMIN}/clients/:id/prune-preview`],
  '/clients/:id/alerts': [`PUT ${ADMIN}/clients/:id/alert-settings`],
  '/clients/:id/run': [`POST ${ADMIN}/clients/:id/run`],
  '/clients/:id/restores': [`POST ${ADMIN}/clients/:id/restore-jobs`, `POST ${ADMIN}/clients/:id/restore-schedules`],
  '/restore-jobs/:jobId/cancel': [`POST ${ADMIN}/restore-jobs/:id/cancel`],
  '/restore-schedules/:scheduleId/run': [`POST ${ADMIN}/restore-schedules/:id/run`],
  '/restore-schedules/:scheduleId/delete': [`DELETE ${ADMIN}/restore-schedules/:id`],
  '/clients/:id/token/rotate': [`POST ${ADMIN}/clients/:id/token/rotate`],
  '/clients/:id/owner': [`PUT ${ADMIN}/clients/:id/owner`],
  '/clients/:id/token/revoke': [`DELETE ${ADMIN}/clients/:id/token`],
  '/clients/:id/download-links': [`POST ${ADMIN}/clients/:id/download-links`],
  '/enrollment-keys': [`POST ${ADMIN}/enrollment-keys`],
  '/enrollment-keys/:id/revoke': [`DELETE ${ADMIN}/enrollment-keys/:id`],
  '/settings/alerts': [`PUT ${ADMIN}/settings/alerts`],
  '/settings/notifications/test': [`POST ${ADMIN}/settings/notifications/test`],
  '/users': [`POST ${ADMIN}/users`],
  '/users/:id/alert-email': [`PUT ${ADMIN}/users/:id/alert-email`],
  '/users/:id/alert-webhook': [`PUT ${ADMIN}/users/:id/alert-webhook`],
  '/users/:id/status': [`PUT ${ADMIN}/users/:id/status`],
  '/users/:id/password': [`PUT ${ADMIN}/users/:id/password`],
  '/users/:id/policy': [`PUT ${ADMIN}/users/:id/policy`, `POST ${ADMIN}/users/:id/policy/preview`],
  '/users/:id/change-password': [`POST ${ADMIN}/users/:id/change-password`],
  '/users/:id/sessions/:sessionId/revoke': [`DELETE ${ADMIN}/users/:id/sessions/:sessionId`],
  '/users/:id/tokens': [`POST ${ADMIN}/users/:id/tokens`],
  '/users/:id/tokens/:tokenId/revoke': [`DELETE ${ADMIN}/users/:id/tokens/:tokenId`],
  '/users/:id/credentials/revoke-all': [`POST ${ADMIN}/users/:id/credentials/revoke-all`],
  '/users/:id/download-links/:linkId/revoke': [`DELETE ${ADMIN}/users/:id/download-links/:linkId`],
  '/users/:id/delete': [`DELETE ${ADMIN}/users/:id`],
  '/verify': [`POST ${ADMIN}/verify-runs`],
};

/** The POST routes of `printRoutes`' tree, as full paths (each level of the tree is indented by 4 characters). */
function postRoutes(tree: string): string[] {
  const found: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const match = /^([│├└─\s]*)(\S.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    stack.length = depth;
    stack.push(match[2]!);
    if ((match[3] ?? '').split(', ').includes('POST')) found.push(stack.join(''));
  }
  return found;
}

describe.each(testDatabaseKinds())('admin API counterparts of the dashboard actions (%s)', (kind) => {
  let h: DashboardHarness;
  let rootId: string;
  let aliceId: string;
  let bobId: string;
  let root: string;
  let alice: string;
  let aliceRead: string;
  let bob: string;
  let aliceBrowser: Browser;
  let agent: TestAgent;
  let bobAgent: TestAgent;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test reads loosely typed JSON
  const json = async (response: Response) => (await response.json()) as Record<string, any>;
  const call = (token: string, method: string, path: string, body?: unknown) =>
    fetch(h.url + ADMIN + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  /** The answer, after checking its status (the body is in the message when it differs). */
  const expectStatus = async (response: Response, status: number) => {
    const body = await json(response);
    expect(response.status, JSON.stringify(body)).toBe(status);
    return body;
  };
  async function passwordToken(username: string, readOnly = false) {
    const response = await fetch(`${h.url}/api/v1/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: `${username}-password-1`, readOnly }),
    });
    return (await expectStatus(response, 201)).token as string;
  }
  const audited = (action: string) => h.ctx.database.db.select().from(auditLog).where(eq(auditLog.action, action));

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    rootId = (await signedInUser(h, 'root', true)).id;
    const a = await signedInUser(h, 'alice');
    aliceId = a.id;
    aliceBrowser = a.browser;
    bobId = (await signedInUser(h, 'bob')).id;
    agent = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-laptop');
    bobAgent = await TestAgent.register(h.url, 'bob', 'bob-password-1', 'bob-box');
    await agent.backup([{ path: '/home/alice/notes.txt', content: 'one' }]);
    await agent.backup([{ path: '/home/alice/notes.txt', content: 'two' }]);
    root = await passwordToken('root');
    alice = await passwordToken('alice');
    aliceRead = await passwordToken('alice', true);
    bob = await passwordToken('bob');
  });

  afterAll(async () => {
    await h?.close();
  });

  it('maps every dashboard POST route to admin-API routes that exist, are documented and take a bearer token', async () => {
    const dashboard = postRoutes(h.app.printRoutes({ method: 'POST', commonPrefix: false })).filter((route) => !route.startsWith('/api/'));
    expect(dashboard.length).toBeGreaterThan(20);
    const unmapped = dashboard.filter((route) => !(route in ROUTE_TABLE));
    expect(unmapped, 'dashboard actions without an admin-API counterpart: add the route and a ROUTE_TABLE entry').toEqual([]);
    expect(Object.keys(ROUTE_TABLE).filter((route) => !dashboard.includes(route)), 'ROUTE_TABLE entries the dashboard no longer has').toEqual([]);
    const doc = await json(await fetch(`${h.url}/docs/json`));
    for (const target of Object.values(ROUTE_TABLE).flat()) {
      const [method, url] = target.split(' ') as [string, string];
      expect(h.app.hasRoute({ method: method as 'GET', url }), target).toBe(true);
      const operation = doc.paths[url.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()];
      expect(operation, `${target} in the OpenAPI document`).toBeDefined();
      if (url.startsWith(ADMIN)) expect(operation.security, target).toEqual([{ bearer: [] }]);
    }
  });

  it('creates users, disables and enables them, resets passwords: administrators only, the form’s messages', async () => {
    const made = await expectStatus(await call(root, 'POST', '/users', { username: 'carol', password: 'carol-password-1', retentionVersions: 5 }), 201);
    expect(made).toMatchObject({ username: 'carol', isAdmin: false, disabled: false, retentionVersions: 5 });
    const bad = await expectStatus(await call(root, 'POST', '/users', { username: 'no spaces', password: 'short' }), 400);
    expect(Object.keys(bad.fields)).toEqual(['username', 'password']);
    await expectStatus(await call(root, 'POST', '/users', { username: 'carol', password: 'carol-password-1' }), 409);
    await expectStatus(await call(alice, 'POST', '/users', { username: 'dave', password: 'dave-password-1' }), 403);
    await expectStatus(await call(aliceRead, 'POST', '/users', { username: 'dave', password: 'dave-password-1' }), 403);

    expect(await expectStatus(await call(root, 'PUT', `/users/${made.id}/status`, { disabled: true }), 200)).toMatchObject({ disabled: true });
    const refused = await fetch(`${h.url}/api/v1/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'carol', password: 'carol-password-1' }) });
    expect(refused.status).toBe(401);
    expect(await expectStatus(await call(root, 'PUT', `/users/${made.id}/status`, { disabled: false }), 200)).toMatchObject({ disabled: false });
    expect((await expectStatus(await call(root, 'PUT', `/users/${rootId}/status`, { disabled: true }), 400)).fields).toEqual({ disabled: 'you cannot disable your own account' });
    await expectStatus(await call(alice, 'PUT', `/users/${bobId}/status`, { disabled: true }), 403);

    expect((await expectStatus(await call(root, 'PUT', `/users/${made.id}/password`, { password: 'x' }), 400)).fields.password).toContain('8');
    await expectStatus(await call(root, 'PUT', `/users/${made.id}/password`, { password: 'carol-password-2' }), 200);
    const withNew = await fetch(`${h.url}/api/v1/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'carol', password: 'carol-password-2' }) });
    expect(withNew.status).toBe(201);
    await expectStatus(await call(root, 'PUT', `/users/00000000-0000-4000-8000-000000000000/password`, { password: 'carol-password-3' }), 404);
    expect((await audited('user.create')).map((e) => e.actorName)).toContainEqual(expect.stringMatching(/^root \(API token "/));
  });

  it('changes your own password only, checking the current one', async () => {
    const wrong = await expectStatus(await call(alice, 'POST', `/users/${aliceId}/change-password`, { currentPassword: 'nope-nope', newPassword: 'alice-password-2' }), 400);
    expect(wrong.fields).toEqual({ currentPassword: 'does not match your current password' });
    await expectStatus(await call(root, 'POST', `/users/${aliceId}/change-password`, { currentPassword: 'alice-password-1', newPassword: 'alice-password-2' }), 403);
    await expectStatus(await call(alice, 'POST', `/users/${aliceId}/change-password`, { currentPassword: 'alice-password-1', newPassword: 'alice-password-2' }), 200);
    // Her browser session ends; the token keeps working (decision 107).
    expect((await aliceBrowser.get('/')).status).toBe(303);
    await expectStatus(await call(alice, 'GET', '/me'), 200);
    await expectStatus(await call(alice, 'POST', `/users/${aliceId}/change-password`, { currentPassword: 'alice-password-2', newPassword: 'alice-password-1' }), 200);
    aliceBrowser = new Browser(h.url);
    expect((await aliceBrowser.login('alice', 'alice-password-1')).status).toBe(303);
  });

  it('sets the retention policy and previews it without saving (administrators)', async () => {
    const none = { last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
    const policy = { retentionVersions: 1, retentionDays: null, retentionRules: { folders: [], restorePoints: none } };
    const preview = await expectStatus(await call(root, 'POST', `/users/${aliceId}/policy/preview`, policy), 200);
    expect(preview).toMatchObject({ rules: 'keep 1 version', pruneCount: 1, pruned: [{ clientName: 'alice-laptop', path: '/home/alice/notes.txt', size: 3 }] });
    const [before] = await h.ctx.database.db.select().from(users).where(eq(users.id, aliceId));
    expect(before!.retentionVersions).not.toBe(1);
    await expectStatus(await call(alice, 'POST', `/users/${aliceId}/policy/preview`, policy), 403);
    const bad = await expectStatus(await call(root, 'PUT', `/users/${aliceId}/policy`, { ...policy, retentionVersions: 0 }), 400);
    expect(Object.keys(bad.fields)).toEqual(['retentionVersions']);
    const saved = await expectStatus(await call(root, 'PUT', `/users/${aliceId}/policy`, { ...policy, retentionVersions: 7, retentionDays: 30 }), 200);
    expect(saved).toMatchObject({ retentionVersions: 7, retentionDays: 30 });
    await expectStatus(await call(alice, 'PUT', `/users/${aliceId}/policy`, policy), 403);
  });

  it('sets the alert email and webhook on your own user (an admin on anyone), never answering the secret', async () => {
    expect((await expectStatus(await call(alice, 'PUT', `/users/${aliceId}/alert-email`, { email: 'not an address', types: ['nope'] }), 400)).fields).toMatchObject({
      email: expect.stringContaining('one address'),
      types: 'unknown alert type: nope',
    });
    await expectStatus(await call(alice, 'PUT', `/users/${aliceId}/alert-email`, { email: 'alice@example.com', types: ['missed_backup'] }), 200);
    await expectStatus(await call(alice, 'PUT', `/users/${bobId}/alert-email`, { email: 'x@example.com', types: [] }), 403);
    expect((await expectStatus(await call(alice, 'PUT', `/users/${aliceId}/alert-webhook`, { url: 'https://hooks.example.com/a', types: [] }), 400)).fields).toHaveProperty('secret');
    await expectStatus(await call(root, 'PUT', `/users/${aliceId}/alert-webhook`, { url: 'https://hooks.example.com/a', secret: 'a-secret-of-sixteen-plus', types: ['failing'] }), 200);
    const read = await expectStatus(await call(alice, 'GET', `/users/${aliceId}/alert-recipients`), 200);
    expect(read).toEqual({ email: 'alice@example.com', emailTypes: ['missed_backup'], webhookUrl: 'https://hooks.example.com/a', webhookSecretHint: 'plus', webhookTypes: ['failing'] });
    expect(JSON.stringify(read)).not.toContain('a-secret-of');
  });

  it('lists and ends sessions, lists, makes and revokes tokens, revokes all credentials', async () => {
    const { sessions } = await expectStatus(await call(alice, 'GET', `/users/${aliceId}/sessions`), 200);
    expect(sessions).toHaveLength(1);
    await expectStatus(await call(bob, 'GET', `/users/${aliceId}/sessions`), 403);
    await expectStatus(await call(bob, 'DELETE', `/users/${bobId}/sessions/${sessions[0].id}`), 404);
    await expectStatus(await call(alice, 'DELETE', `/users/${aliceId}/sessions/${sessions[0].id}`), 200);
    expect((await aliceBrowser.get('/')).status).toBe(303);

    const made = await expectStatus(await call(alice, 'POST', `/users/${aliceId}/tokens`, { name: 'backup report', readOnly: true, expiresInDays: 3 }), 201);
    expect(made.token).toMatch(/^cairn_pat_/);
    expect((await expectStatus(await call(alice, 'POST', `/users/${aliceId}/tokens`, { name: '', readOnly: true, expiresInDays: 999 }), 400)).fields).toMatchObject({
      name: 'a name of 1 to 100 characters',
      expiresInDays: 'a whole number of days from 1 to 365',
    });
    // Only the user makes their own tokens; a read-only token makes none.
    await expectStatus(await call(root, 'POST', `/users/${aliceId}/tokens`, { name: 'x', readOnly: true }), 403);
    await expectStatus(await call(aliceRead, 'POST', `/users/${aliceId}/tokens`, { name: 'x', readOnly: true }), 403);
    const listed = await expectStatus(await call(alice, 'GET', `/users/${aliceId}/tokens`), 200);
    expect(listed.tokens.map((t: { name: string }) => t.name)).toContain('backup report');
    expect(JSON.stringify(listed)).not.toContain(made.token);
    await expectStatus(await call(made.token, 'GET', '/me'), 200);
    await expectStatus(await call(bob, 'DELETE', `/users/${bobId}/tokens/${made.id}`), 404);
    await expectStatus(await call(root, 'DELETE', `/users/${aliceId}/tokens/${made.id}`), 200);
    await expectStatus(await call(made.token, 'GET', '/me'), 401);

    const spare = await passwordToken('bob');
    expect(await expectStatus(await call(root, 'POST', `/users/${bobId}/credentials/revoke-all`), 200)).toEqual({ tokens: 2, links: 0 });
    await expectStatus(await call(spare, 'GET', '/me'), 401);
    bob = await passwordToken('bob');
  });

  it('makes clients, rotates and revokes their agent tokens, moves them (administrators), 404 for another user’s', async () => {
    const made = await expectStatus(await call(alice, 'POST', '/clients', { name: 'alice-nas', hostname: 'nas.local', ownerId: bobId }), 201);
    // A user makes clients for themselves only; ownerId is an administrator's choice.
    expect(made.client).toMatchObject({ name: 'alice-nas', hostname: 'nas.local', ownerUsername: 'alice' });
    const ping = (token: string) => fetch(`${h.url}${API_PREFIX}/ping`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"state":"idle"}' });
    expect((await ping(made.token)).status).toBe(200);
    await expectStatus(await call(alice, 'POST', '/clients', { name: 'alice-nas' }), 409);
    expect((await expectStatus(await call(alice, 'POST', '/clients', { name: '  ' }), 400)).fields).toEqual({ name: 'a name of 1 to 200 characters' });
    await expectStatus(await call(aliceRead, 'POST', '/clients', { name: 'x' }), 403);

    const rotated = await expectStatus(await call(alice, 'POST', `/clients/${made.client.id}/token/rotate`), 200);
    expect((await ping(made.token)).status).toBe(401);
    expect((await ping(rotated.token)).status).toBe(200);
    expect(await expectStatus(await call(alice, 'DELETE', `/clients/${made.client.id}/token`), 200)).toMatchObject({ tokenPrefix: null });
    expect((await ping(rotated.token)).status).toBe(401);
    await expectStatus(await call(alice, 'POST', `/clients/${bobAgent.clientId}/token/rotate`), 404);
    await expectStatus(await call(alice, 'DELETE', `/clients/${bobAgent.clientId}/token`), 404);

    await expectStatus(await call(alice, 'PUT', `/clients/${made.client.id}/owner`, { ownerId: bobId }), 403);
    expect((await expectStatus(await call(root, 'PUT', `/clients/${made.client.id}/owner`, { ownerId: '00000000-0000-4000-8000-000000000000' }), 400)).fields).toEqual({ ownerId: 'choose an existing user' });
    expect(await expectStatus(await call(root, 'PUT', `/clients/${made.client.id}/owner`, { ownerId: bobId }), 200)).toMatchObject({ ownerUsername: 'bob' });
    await expectStatus(await call(alice, 'GET', `/clients/${made.client.id}`), 404);
    const [moved] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, made.client.id));
    expect(moved!.ownerId).toBe(bobId);
  });

  it('previews a client’s retention override and changes its alert settings by the form’s rules', async () => {
    const preview = await expectStatus(await call(aliceRead, 'POST', `/clients/${agent.clientId}/prune-preview`, { retention: { versions: 1, days: null }, retentionRules: null }), 200);
    expect(preview).toMatchObject({ pruneCount: 1, pruned: [{ path: '/home/alice/notes.txt' }] });
    expect((await expectStatus(await call(alice, 'POST', `/clients/${agent.clientId}/prune-preview`, { retention: { versions: 0, days: null }, retentionRules: null }), 400)).fields).toHaveProperty(['retention.versions']);
    await expectStatus(await call(alice, 'POST', `/clients/${bobAgent.clientId}/prune-preview`, { retention: null, retentionRules: null }), 404);

    const before = await expectStatus(await call(alice, 'GET', `/clients/${agent.clientId}/alert-settings`), 200);
    expect(before).toMatchObject({ overridden: false, settings: { missedBackup: { enabled: true }, expectedFile: { folders: [] } } });
    const changed = await expectStatus(
      await call(alice, 'PUT', `/clients/${agent.clientId}/alert-settings`, { missedBackup: { tolerance: 3 }, expectedFile: { folders: [{ path: '/dumps', maxAgeHours: 26 }] } }),
      200,
    );
    expect(changed).toMatchObject({ overridden: true, settings: { missedBackup: { enabled: true, tolerance: 3 }, expectedFile: { folders: [{ path: '/dumps', maxAgeHours: 26 }] } } });
    const bad = await expectStatus(await call(alice, 'PUT', `/clients/${agent.clientId}/alert-settings`, { missedBackup: { tolerance: 0 } }), 400);
    expect(bad.fields).toEqual({ 'missedBackup.tolerance': 'a number from 1 to 1000' });
    await expectStatus(await call(alice, 'PUT', `/clients/${agent.clientId}/alert-settings`, { missedBackup: { bogus: 1 } }), 400);
    await expectStatus(await call(aliceRead, 'PUT', `/clients/${agent.clientId}/alert-settings`, { reset: true }), 403);
    await expectStatus(await call(alice, 'PUT', `/clients/${bobAgent.clientId}/alert-settings`, { reset: true }), 404);
    expect(await expectStatus(await call(alice, 'PUT', `/clients/${agent.clientId}/alert-settings`, { reset: true }), 200)).toMatchObject({ overridden: false });
    const entries = await h.ctx.database.db.select().from(auditLog).where(and(eq(auditLog.action, 'client.alerts.update'), eq(auditLog.targetId, agent.clientId)));
    expect(entries).toHaveLength(2);
  });

  it('makes, lists and revokes enrollment keys; another user’s key is 404', async () => {
    const made = await expectStatus(await call(alice, 'POST', '/enrollment-keys', { singleUse: false, expiresInSeconds: 86_400, namePrefix: 'lab-', description: 'lab' }), 201);
    expect(made.key).toBeTypeOf('string');
    expect((await expectStatus(await call(alice, 'POST', '/enrollment-keys', { singleUse: false, expiresInSeconds: null }), 400)).fields).toEqual({ expiresInSeconds: 'a multi-use key needs an expiry' });
    const listed = await expectStatus(await call(alice, 'GET', '/enrollment-keys'), 200);
    expect(listed.keys).toEqual([expect.objectContaining({ id: made.id, singleUse: false, namePrefix: 'lab-', state: 'usable', ownerUsername: 'alice' })]);
    expect((await expectStatus(await call(bob, 'GET', '/enrollment-keys'), 200)).keys).toEqual([]);
    await expectStatus(await call(bob, 'DELETE', `/enrollment-keys/${made.id}`), 404);
    await expectStatus(await call(alice, 'DELETE', `/enrollment-keys/${made.id}`), 200);
    expect((await expectStatus(await call(root, 'GET', '/enrollment-keys'), 200)).keys[0]).toMatchObject({ id: made.id, state: 'revoked' });
  });

  it('reads and changes the server-wide alert defaults and tests notifications (administrators only)', async () => {
    await expectStatus(await call(alice, 'GET', '/settings/alerts'), 403);
    await expectStatus(await call(alice, 'PUT', '/settings/alerts', { massChange: { enabled: false } }), 403);
    expect(await expectStatus(await call(root, 'PUT', '/settings/alerts', { massChange: { enabled: false } }), 200)).toMatchObject({ overridden: true, settings: { massChange: { enabled: false } } });
    expect(await expectStatus(await call(alice, 'GET', `/clients/${agent.clientId}/alert-settings`), 200)).toMatchObject({ settings: { massChange: { enabled: false } } });
    expect(await expectStatus(await call(root, 'PUT', '/settings/alerts', { reset: true }), 200)).toMatchObject({ overridden: false, settings: { massChange: { enabled: true } } });
    expect((await expectStatus(await call(root, 'PUT', '/settings/alerts', { reset: true, failing: { enabled: false } }), 400)).fields).toEqual({ reset: 'send reset alone' });
    await expectStatus(await call(alice, 'POST', '/settings/notifications/test'), 403);
    expect((await expectStatus(await call(root, 'POST', '/settings/notifications/test'), 409)).message).toContain('no notification channel is configured');
  });

  it('deletes a user after confirmation (administrators, never themselves)', async () => {
    const carol = (await h.ctx.database.db.select().from(users).where(eq(users.username, 'carol')))[0]!;
    await expectStatus(await call(alice, 'DELETE', `/users/${carol.id}?confirmUsername=carol`), 403);
    expect((await expectStatus(await call(root, 'DELETE', `/users/${carol.id}?confirmUsername=caro`), 400)).fields).toEqual({ confirmUsername: 'type carol to confirm' });
    await expectStatus(await call(root, 'DELETE', `/users/${carol.id}`), 400);
    await expectStatus(await call(root, 'DELETE', `/users/${rootId}?confirmUsername=root`), 409);
    expect(await expectStatus(await call(root, 'DELETE', `/users/${carol.id}?confirmUsername=carol`), 200)).toEqual({ username: 'carol', clients: 0, versions: 0 });
    await expectStatus(await call(root, 'GET', `/users/${carol.id}`), 404);
  });
});
