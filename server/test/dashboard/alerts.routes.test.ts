import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { alertDefaults, alerts, auditLog, clients } from '../../src/db/schema.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { TestAgent } from './agent-fixture.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const ADMIN = { username: 'root', password: 'root-password-1' };
const ALICE = { username: 'alice', password: 'alice-password-1' };
const BOB = { username: 'bob', password: 'bob-password-1' };

const failedDump = { command: 'pg_dump -f /dumps/db.sql', source: 'server' as const, exitCode: 1, durationMs: 3, timedOut: false, output: 'connection refused' };

describe.each(testDatabaseKinds())('dashboard alerts (%s)', (kind) => {
  let h: DashboardHarness;
  let admin: Browser;
  let alice: Browser;
  let bob: Browser;
  let aliceAgent: TestAgent;
  let bobAgent: TestAgent;
  let bobId: string;

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    await addUser(h.ctx, ADMIN.username, ADMIN.password, true);
    await addUser(h.ctx, ALICE.username, ALICE.password);
    bobId = (await addUser(h.ctx, BOB.username, BOB.password)).id;
    aliceAgent = await TestAgent.register(h.url, ALICE.username, ALICE.password, 'alice-laptop');
    bobAgent = await TestAgent.register(h.url, BOB.username, BOB.password, 'bob-server');
    await aliceAgent.backup([{ path: '/dumps/db.sql', content: 'dump' }], { status: 'partial', preCommands: [failedDump] });
    await bobAgent.backup([{ path: '/etc/hosts', content: 'hosts' }], { status: 'failed' });
    admin = new Browser(h.url);
    alice = new Browser(h.url);
    bob = new Browser(h.url);
    await admin.login(ADMIN.username, ADMIN.password);
    await alice.login(ALICE.username, ALICE.password);
    await bob.login(BOB.username, BOB.password);
  });
  afterAll(() => h?.close());

  it('lists open alerts with the observed value beside its reference; a user sees only their own', async () => {
    const page = await alice.get('/alerts');
    expect(page.status).toBe(200);
    expect(page.body).toContain('pre-command `pg_dump -f /dumps/db.sql` exited with 1');
    expect(page.body).toMatch(/<td class="observed" data-label="Observed">exited with 1<\/td>\s*<td class="reference muted" data-label="Reference">exit code 0<\/td>/);
    expect(page.body).not.toContain('bob-server');
    const all = await admin.get('/alerts');
    expect(all.body).toContain('alice-laptop');
    expect(all.body).toContain('bob-server');
  });

  it('filters by type, state and client, and names a bad filter', async () => {
    const byClient = await admin.get(`/alerts?client=${bobAgent.clientId}`);
    expect(byClient.body).toContain('the last backup run failed');
    expect(byClient.body).not.toContain('pg_dump');
    const byType = await admin.get('/alerts?type=missed_backup');
    expect(byType.body).toContain('No unresolved alerts for this filter.');
    const resolved = await admin.get('/alerts?state=resolved');
    expect(resolved.body).toContain('No resolved alerts.');
    expect((await admin.get('/alerts?state=sleeping')).status).toBe(400);
    expect((await admin.get('/alerts?type=meteor')).body).toContain('type: one of');
    // Another user's client is as unknown as a missing one.
    expect((await alice.get(`/alerts?client=${bobAgent.clientId}`)).status).toBe(404);
  });

  it('shows open alerts on the overview and on the client page', async () => {
    expect((await alice.get('/')).body).toContain('Open alerts');
    const client = await alice.get(`/clients/${aliceAgent.clientId}`);
    expect(client.body).toContain('Open alerts');
    expect(client.body).toContain('exited with 1');
  });

  it('acknowledges with a CSRF token, records who did it, and refuses a forged form or another user', async () => {
    const page = await bob.get('/alerts');
    const id = /action="\/alerts\/([0-9a-f-]{36})\/acknowledge"/.exec(page.body)![1]!;
    expect((await bob.post(`/alerts/${id}/acknowledge`, { _csrf: 'forged', back: '/alerts' }, { withCsrf: false })).status).toBe(403);
    await alice.get('/alerts');
    expect((await alice.post(`/alerts/${id}/acknowledge`, { back: '/alerts' })).status).toBe(404);
    await bob.get('/alerts');
    expect((await bob.post(`/alerts/${id}/acknowledge`, { back: '//evil.example' })).status).toBe(400);
    await bob.get('/alerts');
    const done = await bob.post(`/alerts/${id}/acknowledge`, { back: `/clients/${bobAgent.clientId}` });
    expect(done.status).toBe(303);
    expect(done.location).toBe(`/clients/${bobAgent.clientId}?notice=alert-acknowledged`);
    const after = await bob.get('/alerts');
    expect(after.body).toContain('acknowledged');
    expect(after.body).toContain('by bob');
    await bob.get('/alerts');
    expect((await bob.post(`/alerts/${id}/acknowledge`, { back: '/alerts' })).status).toBe(409);
    const audit = await h.ctx.database.db.select().from(auditLog).where(eq(auditLog.action, 'alert.acknowledge'));
    expect(audit.map((a) => [a.actorName, a.targetId])).toEqual([['bob', bobAgent.clientId]]);
  });

  it('resolves an alert when the client backs up again, and shows it under resolved', async () => {
    await aliceAgent.backup([{ path: '/dumps/db.sql', content: 'dump 2' }]);
    expect((await alice.get('/alerts')).body).toContain('No unresolved alerts.');
    const resolved = await alice.get('/alerts?state=resolved');
    expect(resolved.body).toContain('exited with 1');
    expect(resolved.body).toContain('badge ok">resolved');
  });

  it('per-client alert settings: stores only overrides, names a bad field, and a disabled detector opens nothing', async () => {
    const page = await alice.get(`/clients/${aliceAgent.clientId}`);
    expect(page.body).toContain('This client uses the defaults.');
    const fields = Object.fromEntries([...page.body.matchAll(/<input (?:type="checkbox" )?name="([a-zA-Z]+\.[a-zA-Z]+)" (?:value|inputmode)="[^"]*"(?: value="([^"]*)")?( checked)?/g)].map((m) => [m[1]!, m[2] ?? (m[3] ? 'on' : '')]));
    expect(fields['missedBackup.tolerance']).toBe('2');
    expect(fields['failing.enabled']).toBe('on');

    const bad = await alice.post(`/clients/${aliceAgent.clientId}/alerts`, { ...fields, 'missedBackup.tolerance': 'soon' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('a number from 1 to 1000');
    await bob.get('/alerts');
    expect((await bob.post(`/clients/${aliceAgent.clientId}/alerts`, fields)).status).toBe(404);

    await alice.get(`/clients/${aliceAgent.clientId}`);
    const saved = await alice.post(`/clients/${aliceAgent.clientId}/alerts`, { ...fields, 'failing.enabled': '', 'missedBackup.tolerance': '4' });
    expect(saved.status).toBe(303);
    const [row] = await h.ctx.database.db.select({ alertSettings: clients.alertSettings }).from(clients).where(eq(clients.id, aliceAgent.clientId));
    expect(row!.alertSettings).toEqual({ failing: { enabled: false }, missedBackup: { tolerance: 4 } });
    expect((await alice.get(`/clients/${aliceAgent.clientId}`)).body).toContain('This client overrides some defaults');

    await aliceAgent.backup([{ path: '/dumps/db.sql', content: 'dump 3' }], { status: 'failed' });
    expect((await alice.get('/alerts')).body).toContain('No unresolved alerts.');

    await alice.get(`/clients/${aliceAgent.clientId}`);
    expect((await alice.post(`/clients/${aliceAgent.clientId}/alerts`, { reset: 'on' })).status).toBe(303);
    const [reset] = await h.ctx.database.db.select({ alertSettings: clients.alertSettings }).from(clients).where(eq(clients.id, aliceAgent.clientId));
    expect(reset!.alertSettings).toBeNull();
  });

  it('the compressibility mass change has its own switch and thresholds in the client form', async () => {
    const page = await alice.get(`/clients/${aliceAgent.clientId}`);
    expect(page.body).toContain('Content stops compressing (holds pruning)');
    const fields = Object.fromEntries([...page.body.matchAll(/<input (?:type="checkbox" )?name="([a-zA-Z]+\.[a-zA-Z]+)" (?:value|inputmode)="[^"]*"(?: value="([^"]*)")?( checked)?/g)].map((m) => [m[1]!, m[2] ?? (m[3] ? 'on' : '')]));
    expect(fields['incompressible.enabled']).toBe('on');
    expect(fields['incompressible.minSampleBytes']).toBe(String(1024 * 1024));
    expect(fields['incompressible.minRatio']).toBe('0.9');

    const bad = await alice.post(`/clients/${aliceAgent.clientId}/alerts`, { ...fields, 'incompressible.minSampleBytes': '100' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('a whole number from 65536 to');
    await alice.get(`/clients/${aliceAgent.clientId}`);
    const saved = await alice.post(`/clients/${aliceAgent.clientId}/alerts`, { ...fields, 'incompressible.enabled': '', 'incompressible.minRatio': '0.95' });
    expect(saved.status).toBe(303);
    const [row] = await h.ctx.database.db.select({ alertSettings: clients.alertSettings }).from(clients).where(eq(clients.id, aliceAgent.clientId));
    expect(row!.alertSettings).toEqual({ incompressible: { enabled: false, minRatio: 0.95 } });
    await alice.get(`/clients/${aliceAgent.clientId}`);
    expect((await alice.post(`/clients/${aliceAgent.clientId}/alerts`, { reset: 'on' })).status).toBe(303);
  });

  it('server-wide alert defaults: admins only, CSRF, a bad field named, stored as what differs, reaching client pages, reset', async () => {
    expect((await alice.get('/settings/alerts')).status).toBe(403);
    await alice.get('/alerts');
    expect((await alice.post('/settings/alerts', { 'missedBackup.tolerance': '5' })).status).toBe(403);

    const page = await admin.get('/settings/alerts');
    expect(page.status).toBe(200);
    expect(page.body).toContain('These are the built-in defaults.');
    const fields = Object.fromEntries([...page.body.matchAll(/<input (?:type="checkbox" )?name="([a-zA-Z]+\.[a-zA-Z]+)" (?:value|inputmode)="[^"]*"(?: value="([^"]*)")?( checked)?/g)].map((m) => [m[1]!, m[2] ?? (m[3] ? 'on' : '')]));
    expect(fields['missedBackup.tolerance']).toBe('2');
    const stored = async () => (await h.ctx.database.db.select().from(alertDefaults))[0]?.settings ?? null;

    expect((await admin.post('/settings/alerts', { ...fields, 'missedBackup.tolerance': '5' }, { withCsrf: false })).status).toBe(403);
    expect(await stored()).toBeNull();

    await admin.get('/settings/alerts');
    const bad = await admin.post('/settings/alerts', { ...fields, 'unusualSize.minHistory': '2.5' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatch(/Size: earlier runs needed[\s\S]*value="2.5"[\s\S]*a whole number from 2 to 200/);
    expect(await stored()).toBeNull();

    await admin.get('/settings/alerts');
    const saved = await admin.post('/settings/alerts', { ...fields, 'missedBackup.tolerance': '5', 'extraBackup.enabled': '' });
    expect(saved.status).toBe(303);
    expect(await stored()).toEqual({ missedBackup: { tolerance: 5 }, extraBackup: { enabled: false } });
    const [audit] = await h.ctx.database.db.select().from(auditLog).where(eq(auditLog.action, 'alerts.defaults.update'));
    expect(audit).toMatchObject({ actorName: ADMIN.username, details: { before: null, after: { missedBackup: { tolerance: 5 }, extraBackup: { enabled: false } } } });
    expect((await admin.get('/settings/alerts')).body).toContain('Use the built-in defaults');

    // A client without its own values now starts from 5, and the page says so.
    const client = await bob.get(`/clients/${bobAgent.clientId}`);
    expect(client.body).toContain('<em>default 5</em>');
    expect(client.body).toContain('name="missedBackup.tolerance" inputmode="decimal" value="5"');

    await admin.get('/settings/alerts');
    expect((await admin.post('/settings/alerts', { reset: 'on' })).status).toBe(303);
    expect(await stored()).toBeNull();
    expect((await admin.get('/settings/alerts')).body).toContain('These are the built-in defaults.');
  });

  it("the retention preview says when a client's pruning is held by a mass-change alert", async () => {
    await h.ctx.database.db.insert(alerts).values({
      type: 'mass_change',
      severity: 'critical',
      clientId: bobAgent.clientId,
      dedupeKey: 'mass_change',
      observed: '9500 of 10000 files changed',
      reference: 'median 20 ± 0 over 20 runs',
      message: 'mass change',
    });
    await admin.get(`/users/${bobId}`);
    const preview = await admin.post(`/users/${bobId}/policy`, { retentionVersions: '1', retentionDays: '', action: 'preview' });
    expect(preview.status).toBe(200);
    expect(preview.body).toContain('Pruning is held for bob-server by an open mass-change alert');
  });

  it('watched folders in the alert settings form: a bad line is a 400 naming the field, a forged form is refused, and a shrunk dump shows on the alerts page', async () => {
    const page = await alice.get(`/clients/${aliceAgent.clientId}`);
    expect(page.body).toContain('<textarea name="expectedFile.folders"');
    const fields = Object.fromEntries([...page.body.matchAll(/<input (?:type="checkbox" )?name="([a-zA-Z]+\.[a-zA-Z]+)" (?:value|inputmode)="[^"]*"(?: value="([^"]*)")?( checked)?/g)].map((m) => [m[1]!, m[2] ?? (m[3] ? 'on' : '')]));

    const bad = await alice.post(`/clients/${aliceAgent.clientId}/alerts`, { ...fields, 'expectedFile.folders': '/dumps 26\ndumps <b>x</b> 3' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('line 2: the path must be absolute (start with /)');
    // What was typed comes back, escaped.
    expect(bad.body).toContain('/dumps 26\ndumps &lt;b&gt;x&lt;/b&gt; 3</textarea>');

    await alice.get(`/clients/${aliceAgent.clientId}`);
    const forged = await alice.post(`/clients/${aliceAgent.clientId}/alerts`, { ...fields, 'expectedFile.folders': '/dumps 26', _csrf: 'forged' }, { withCsrf: false });
    expect(forged.status).toBe(403);
    const [untouched] = await h.ctx.database.db.select({ alertSettings: clients.alertSettings }).from(clients).where(eq(clients.id, aliceAgent.clientId));
    expect(untouched!.alertSettings).toBeNull();

    await alice.get(`/clients/${aliceAgent.clientId}`);
    const saved = await alice.post(`/clients/${aliceAgent.clientId}/alerts`, { ...fields, 'expectedFile.folders': '/dumps/ 26' });
    expect(saved.status).toBe(303);
    const [row] = await h.ctx.database.db.select({ alertSettings: clients.alertSettings }).from(clients).where(eq(clients.id, aliceAgent.clientId));
    expect(row!.alertSettings).toEqual({ expectedFile: { folders: [{ path: '/dumps', maxAgeHours: 26 }] } });
    expect((await alice.get(`/clients/${aliceAgent.clientId}`)).body).toContain('placeholder="/dumps 26">/dumps 26</textarea>');

    await aliceAgent.backup([{ path: '/dumps/db.sql', content: 'x'.repeat(4 * 1024 * 1024) }]);
    await aliceAgent.backup([{ path: '/dumps/db.sql', content: 'y'.repeat(400 * 1024) }]);
    const list = await alice.get('/alerts?type=file_shrank');
    expect(list.status).toBe(200);
    expect(list.body).toContain('/dumps/db.sql');
    expect(list.body).toContain('previous version 4.00 MiB');
  });
});
