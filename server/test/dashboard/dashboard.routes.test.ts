import { gunzipSync } from 'node:zlib';
import { eq } from 'drizzle-orm';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_PREFIX, encodePosixPath } from '@cairn/shared';
import { buildApp } from '../../src/app.ts';
import { SESSION_COOKIE } from '../../src/dashboard/session.ts';
import { createSession } from '../../src/services/sessions.service.ts';
import { listRuns } from '../../src/services/backup-repository.ts';
import { auditLog, clients, sessions } from '../../src/db/schema.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { TestAgent } from './agent-fixture.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const ADMIN = { username: 'root', password: 'root-password-1' };
const ALICE = { username: 'alice', password: 'alice-password-1' };
const BOB = { username: 'bob', password: 'bob-password-1' };

async function untar(gz: Buffer): Promise<Map<string, { type: string; body: Buffer; linkname?: string | null }>> {
  const entries = new Map<string, { type: string; body: Buffer; linkname?: string | null }>();
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const parts: Buffer[] = [];
      stream.on('data', (chunk: unknown) => {
        parts.push(chunk as Buffer);
      });
      stream.on('end', () => {
        entries.set(header.name, { type: header.type ?? 'file', body: Buffer.concat(parts), linkname: header.linkname });
        next();
      });
    });
    extract.on('finish', () => resolve());
    extract.on('error', reject);
  });
  extract.end(gunzipSync(gz));
  await done;
  return entries;
}

describe.each(testDatabaseKinds())('dashboard routes (%s)', (kind) => {
  let h: DashboardHarness;
  let admin: Browser;
  let alice: Browser;
  let bob: Browser;
  let aliceAgent: TestAgent;
  let bobAgent: TestAgent;
  let aliceId: string;
  let bobId: string;
  let firstRunAt: Date;

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    await addUser(h.ctx, ADMIN.username, ADMIN.password, true);
    aliceId = (await addUser(h.ctx, ALICE.username, ALICE.password)).id;
    bobId = (await addUser(h.ctx, BOB.username, BOB.password)).id;
    aliceAgent = await TestAgent.register(h.url, ALICE.username, ALICE.password, 'alice-laptop');
    bobAgent = await TestAgent.register(h.url, BOB.username, BOB.password, 'bob-server');
    await aliceAgent.backup([
      { path: '/home/alice/notes.txt', content: 'first notes' },
      { path: '/home/alice/docs/report.md', content: '# report v1' },
      { path: '/home/alice/docs/link', linkTarget: 'report.md' },
    ]);
    await aliceAgent.backup([{ path: '/home/alice/notes.txt', content: 'second notes, longer' }]);
    await aliceAgent.sendLogs([
      { level: 'info', message: 'scan finished' },
      { level: 'error', message: 'could not read /home/alice/locked' },
    ]);
    await bobAgent.backup([{ path: '/srv/bob.txt', content: 'bob data' }]);
    // The first run's finish, on the server's clock: the tree as of then holds the first versions.
    const runs = await listRuns(h.ctx.database.db, aliceAgent.clientId);
    firstRunAt = new Date(runs[runs.length - 1]!.finishedAt!);
    admin = new Browser(h.url);
    alice = new Browser(h.url);
    bob = new Browser(h.url);
    expect((await admin.login(ADMIN.username, ADMIN.password)).status).toBe(303);
    expect((await alice.login(ALICE.username, ALICE.password)).status).toBe(303);
    expect((await bob.login(BOB.username, BOB.password)).status).toBe(303);
  });

  afterAll(async () => {
    await h?.close();
  });

  const clientPages = (id: string) => [
    `/clients/${id}`,
    `/clients/${id}/files`,
    `/clients/${id}/versions?path=/home/alice/notes.txt`,
    `/clients/${id}/versions/1/download`,
    `/clients/${id}/archive?path=/home`,
    `/clients/${id}/logs`,
    `/clients/${id}/stats`,
  ];
  const clientForms = (id: string) => [`/clients/${id}/config`, `/clients/${id}/run`, `/clients/${id}/token/rotate`, `/clients/${id}/token/revoke`];
  const adminPages = (userId: string) => ['/users', `/users/${userId}`, '/audit'];
  const adminForms = (userId: string) => ['/users', `/users/${userId}/status`, `/users/${userId}/password`, `/users/${userId}/policy`];

  it('sends every page and form to the login page without a session', async () => {
    const anonymous = new Browser(h.url);
    for (const url of ['/', '/clients', '/stats', ...clientPages(aliceAgent.clientId), ...adminPages(aliceId)]) {
      const page = await anonymous.get(url);
      expect(page.status, url).toBe(303);
      expect(page.location, url).toBe(`/login?${new URLSearchParams({ next: url })}`);
    }
    for (const url of ['/clients', ...clientForms(aliceAgent.clientId), ...adminForms(aliceId)]) {
      const page = await anonymous.post(url, {});
      expect(page.status, url).toBe(303);
      expect(page.location, url).toMatch(/^\/login\?/);
    }
  });

  it('refuses every form without a valid CSRF token and changes nothing', async () => {
    await admin.get('/');
    const forms = [
      '/logout',
      '/clients',
      ...clientForms(aliceAgent.clientId),
      ...adminForms(aliceId),
    ];
    for (const url of forms) {
      const missing = await admin.post(url, { name: 'x', password: 'new-password-9', disabled: 'true' }, { withCsrf: false });
      expect(missing.status, url).toBe(403);
      expect(missing.body).toContain('This form expired or did not come from this dashboard');
      const forged = await admin.post(url, { _csrf: 'forged-token', name: 'x' }, { withCsrf: false });
      expect(forged.status, url).toBe(403);
    }
    const [row] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, aliceAgent.clientId));
    expect(row!.runRequestedAt).toBeNull();
    expect(row!.tokenPrefix).not.toBeNull();
    expect((await aliceAgent.ping()).runRequested).toBe(false);
    // Still signed in: the refused logout did nothing.
    expect((await admin.get('/')).status).toBe(200);
    // The login form needs its token too.
    const fresh = new Browser(h.url);
    await fresh.get('/login');
    expect((await fresh.post('/login', { username: ADMIN.username, password: ADMIN.password }, { withCsrf: false })).status).toBe(403);
  });

  it('hides other users\u2019 clients from non-admins as 404, on every page and form', async () => {
    for (const url of clientPages(bobAgent.clientId)) {
      const page = await alice.get(url);
      expect(page.status, url).toBe(404);
      expect(page.body).toContain('no such client');
    }
    await alice.get('/');
    for (const url of clientForms(bobAgent.clientId)) {
      expect((await alice.post(url, { backupInterval: '1h' })).status, url).toBe(404);
    }
    expect((await alice.get('/clients/not-a-uuid')).status).toBe(404);
    const list = await alice.get('/clients');
    expect(list.body).toContain('alice-laptop');
    expect(list.body).not.toContain('bob-server');
    const overview = await alice.get('/');
    expect(overview.body).not.toContain('bob-server');
    // Admins see everyone's.
    expect((await admin.get(`/clients/${bobAgent.clientId}`)).status).toBe(200);
    expect((await admin.get('/clients')).body).toContain('bob-server');
  });

  it('keeps non-admins out of the admin pages and forms', async () => {
    // Her own user page opens (for her alert email, decision 89); another user's does not.
    for (const url of adminPages(bobId)) {
      const page = await alice.get(url);
      expect(page.status, url).toBe(403);
    }
    await alice.get('/');
    // Her own account and retention stay the admins' to change.
    for (const url of [...adminForms(bobId), ...adminForms(aliceId)]) {
      expect((await alice.post(url, { username: 'mallory', password: 'mallory-pass-1', retentionVersions: '1', disabled: 'true' })).status, url).toBe(403);
    }
    expect((await alice.get('/')).body).not.toContain('href="/users"');
    expect((await bob.get('/')).status).toBe(200);
  });

  it('shows the overview with health, storage and recent runs', async () => {
    const page = await admin.get('/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('Dedup ratio');
    expect(page.body).toContain('alice-laptop');
    expect(page.body).toContain('<svg class="chart"');
    expect(page.body).toMatch(/bar-uploaded/);
  });

  it('sets security headers on dashboard pages but leaves the agent API alone', async () => {
    const page = await admin.get('/');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(page.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('cache-control')).toBe('no-store');
    const api = await fetch(`${h.url}${API_PREFIX}/config`, { headers: { authorization: `Bearer ${aliceAgent.token}` } });
    expect(api.status).toBe(200);
    expect(api.headers.get('content-security-policy')).toBeNull();
    expect(api.headers.getSetCookie()).toEqual([]);
    const css = await fetch(`${h.url}/static/dashboard.css`);
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toContain('text/css');
  });

  it('validates the client configuration form and shows the errors in it', async () => {
    const url = `/clients/${aliceAgent.clientId}`;
    await alice.get(url);
    const bad = await alice.post(`${url}/config`, {
      monitoredPaths: 'relative/dir',
      excludes: '',
      preCommands: 'echo ok\n[0s] broken',
      backupInterval: 'whenever',
    });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('is not an absolute path');
    expect(bad.body).toContain('line 2: timeout must be between 1 second and 24 hours');
    expect(bad.body).toContain('use a number of seconds or a duration');
    expect(bad.body).toContain('[0s] broken'); // the submitted text is kept
    const [row] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, aliceAgent.clientId));
    expect(row!.preCommands).toEqual([]);
  });

  it('saves pre-commands, hands them to the agent and writes the audit log', async () => {
    const url = `/clients/${aliceAgent.clientId}`;
    await alice.get(url);
    const saved = await alice.post(`${url}/config`, {
      monitoredPaths: '/home/alice',
      excludes: '**/.cache/**',
      preCommands: '[10m] pg_dump app > /backup/app.sql\nsync',
      backupInterval: '6h',
    });
    expect(saved.status).toBe(303);
    expect(saved.location).toBe(`${url}?notice=saved`);
    const config = await fetch(`${h.url}${API_PREFIX}/config`, { headers: { authorization: `Bearer ${aliceAgent.token}` } });
    const body = (await config.json()) as { preCommands: unknown; backupIntervalSeconds: number; monitoredPaths: string[] };
    expect(body.preCommands).toEqual([
      { command: 'pg_dump app > /backup/app.sql', timeoutSeconds: 600 },
      { command: 'sync', timeoutSeconds: 300 },
    ]);
    expect(body.backupIntervalSeconds).toBe(21_600);
    expect(body.monitoredPaths).toEqual(['/home/alice']);
    const page = await alice.get(url);
    expect(page.body).toContain('[10m] pg_dump app &gt; /backup/app.sql');
    const audit = await h.ctx.database.db.select().from(auditLog).where(eq(auditLog.targetId, aliceAgent.clientId));
    const change = audit.find((entry) => entry.action === 'client.precommands.update');
    expect(change?.actorName).toBe('alice');
    expect(JSON.stringify(change?.details)).toContain('pg_dump app');
  });

  it('asks the agent to back up now', async () => {
    await alice.get(`/clients/${aliceAgent.clientId}`);
    const response = await alice.post(`/clients/${aliceAgent.clientId}/run`, {});
    expect(response.status).toBe(303);
    expect((await aliceAgent.ping()).runRequested).toBe(true);
  });

  it('creates a client by hand and shows its working token once', async () => {
    await alice.get('/clients');
    const empty = await alice.post('/clients', { name: '', hostname: '' });
    expect(empty.status).toBe(400);
    expect(empty.body).toContain('a name of 1 to 200 characters');
    const created = await alice.post('/clients', { name: 'nas', hostname: 'nas.local' });
    expect(created.status).toBe(200);
    const token = /value="(cairn_[^"]+)"/.exec(created.body)![1]!;
    const ping = await fetch(`${h.url}${API_PREFIX}/ping`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(ping.status).toBe(200);
    const duplicate = await alice.post('/clients', { name: 'nas', hostname: '' });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body).toContain('already exists');
    expect((await alice.get('/clients')).body).not.toContain(token);
  });

  it('rotates and revokes the agent token', async () => {
    const agent = await TestAgent.register(h.url, ALICE.username, ALICE.password, 'rotating');
    await alice.get(`/clients/${agent.clientId}`);
    const rotated = await alice.post(`/clients/${agent.clientId}/token/rotate`, {});
    expect(rotated.status).toBe(200);
    const newToken = /value="(cairn_[^"]+)"/.exec(rotated.body)![1]!;
    expect(newToken).not.toBe(agent.token);
    await expect(agent.ping()).rejects.toThrow(/401/);
    const pingWith = (token: string) =>
      fetch(`${h.url}${API_PREFIX}/ping`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
    expect((await pingWith(newToken)).status).toBe(200);
    const revoked = await alice.post(`/clients/${agent.clientId}/token/revoke`, {});
    expect(revoked.status).toBe(303);
    expect((await pingWith(newToken)).status).toBe(401);
    const actions = (await h.ctx.database.db.select().from(auditLog).where(eq(auditLog.targetId, agent.clientId))).map((a) => a.action);
    expect(actions).toEqual(expect.arrayContaining(['client.token.rotate', 'client.token.revoke']));
  });

  it('lists runs, logs by level and browses the tree as of an earlier time', async () => {
    const id = aliceAgent.clientId;
    const client = await alice.get(`/clients/${id}`);
    expect(client.body).toContain('succeeded');
    const errors = await alice.get(`/clients/${id}/logs?level=error`);
    expect(errors.body).toContain('could not read /home/alice/locked');
    expect(errors.body).not.toContain('scan finished');
    expect((await alice.get(`/clients/${id}/logs`)).body).toContain('scan finished');

    const root = await alice.get(`/clients/${id}/files`);
    expect(root.body).toContain('home/');
    const now = await alice.get(`/clients/${id}/files?path=/home/alice`);
    expect(now.body).toContain('notes.txt');
    expect(now.body).toContain('docs/');
    expect(now.body).toContain('20 B'); // the second version's size
    const earlier = await alice.get(`/clients/${id}/files?${new URLSearchParams({ path: '/home/alice', asOf: firstRunAt.toISOString() })}`);
    expect(earlier.body).toContain('11 B'); // the first version's size
    const before = await alice.get(`/clients/${id}/files?${new URLSearchParams({ path: '/home/alice', asOf: '2000-01-01T00:00' })}`);
    expect(before.body).toContain('Nothing here at that time');
  });

  it('pages a folder with more files than one page holds', async () => {
    const agent = await TestAgent.register(h.url, ALICE.username, ALICE.password, 'maildir');
    const names = Array.from({ length: 2001 }, (_, i) => `/mail/cur/msg-${String(i).padStart(5, '0')}`);
    await agent.backup(names.map((name) => ({ path: name, content: 'same message body' })));
    const first = await alice.get(`/clients/${agent.clientId}/files?path=/mail/cur`);
    expect(first.body.match(/>Download<\/a>/g)).toHaveLength(2000);
    const next = /href="([^"]*after=[^"]*)">Next files/.exec(first.body)![1]!.replaceAll('&amp;', '&');
    const second = await alice.get(next);
    expect(second.body.match(/>Download<\/a>/g)).toHaveLength(1);
    expect(second.body).toContain('msg-02000');
    expect(second.body).not.toContain('Next files');
    expect(second.body).toContain('First page');
  });

  it('downloads each version of a file with its exact bytes', async () => {
    const id = aliceAgent.clientId;
    const versions = await alice.get(`/clients/${id}/versions?path=/home/alice/notes.txt`);
    const links = [...versions.body.matchAll(/href="(\/clients\/[^"]+\/download)"/g)].map((m) => m[1]!);
    expect(links).toHaveLength(2);
    const bodies = await Promise.all(
      links.map(async (link) => {
        const response = await fetch(h.url + link, { headers: { cookie: alice.cookieHeader() } });
        expect(response.headers.get('content-disposition')).toContain('notes.txt');
        return Buffer.from(await response.arrayBuffer()).toString();
      }),
    );
    expect(bodies).toEqual(['second notes, longer', 'first notes']);
    // Bob cannot download Alice's version even with its id.
    const stolen = await fetch(h.url + links[0]!.replace(id, bobAgent.clientId), { headers: { cookie: bob.cookieHeader() } });
    expect(stolen.status).toBe(404);
  });

  it('streams a folder as tar.gz with files and symlinks', async () => {
    const response = await fetch(`${h.url}/clients/${aliceAgent.clientId}/archive?path=/home/alice`, { headers: { cookie: alice.cookieHeader() } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/gzip');
    const entries = await untar(Buffer.from(await response.arrayBuffer()));
    expect([...entries.keys()].sort()).toEqual(['alice/docs/link', 'alice/docs/report.md', 'alice/notes.txt']);
    expect(entries.get('alice/notes.txt')!.body.toString()).toBe('second notes, longer');
    expect(entries.get('alice/docs/link')).toMatchObject({ type: 'symlink', linkname: 'report.md' });
    const old = await fetch(`${h.url}/clients/${aliceAgent.clientId}/archive?${new URLSearchParams({ path: '/', asOf: firstRunAt.toISOString() })}`, {
      headers: { cookie: alice.cookieHeader() },
    });
    const oldEntries = await untar(Buffer.from(await old.arrayBuffer()));
    expect(oldEntries.get('home/alice/notes.txt')!.body.toString()).toBe('first notes');
  });

  it('answers an invalid query parameter with a 400 page naming it, never the root listing or the whole tree', async () => {
    const id = aliceAgent.clientId;
    const cases: [string, string][] = [
      [`/clients/${id}/files?path=%00`, 'path'],
      [`/clients/${id}/files?path=relative`, 'path'],
      [`/clients/${id}/files?path=/home/alice/`, 'path'],
      [`/clients/${id}/files?path=/home/alice/../../etc`, 'path'],
      [`/clients/${id}/files?path=%ED%A0%80`, 'path'],
      [`/clients/${id}/files?path=/home&path=/srv`, 'path'],
      [`/clients/${id}/files?path=/home&after=%00`, 'after'],
      [`/clients/${id}/files?path=/home&asOf=yesterday`, 'asOf'],
      [`/clients/${id}/versions?path=%00`, 'path'],
      [`/clients/${id}/versions?path=/home/alice/./notes.txt`, 'path'],
      [`/clients/${id}/versions`, 'path'],
      [`/clients/${id}/archive?path=%00`, 'path'],
      [`/clients/${id}/archive?path=/home/..`, 'path'],
      [`/clients/${id}/archive?asOf=%00`, 'asOf'],
      [`/clients/${id}/logs?level=%00`, 'level'],
      [`/clients/${id}/logs?level=loud`, 'level'],
      ['/clients?health=%00', 'health'],
      ['/clients?health=bad', 'health'],
    ];
    for (const [url, name] of cases) {
      const page = await alice.get(url);
      expect(page.status, url).toBe(400);
      expect(page.headers.get('content-type'), url).toContain('text/html');
      expect(page.body, url).toContain(name);
      expect(page.body, url).not.toContain('notes.txt</a>');
    }
    const audit = await admin.get('/audit?action=%00');
    expect(audit.status).toBe(400);
    expect(audit.body).toContain('action');
    // What the pages link to still works: the root, an empty asOf (now) and a canonical path.
    expect((await alice.get(`/clients/${id}/files?path=/&asOf=`)).status).toBe(200);
    expect((await alice.get(`/clients/${id}/files?path=/home/alice&asOf=2026-01-01T00:00`)).status).toBe(200);
    expect((await alice.get(`/clients/${id}/logs?level=error`)).status).toBe(200);
  });

  it('refuses NUL in any form field with a 400 naming it, changing nothing', async () => {
    const id = aliceAgent.clientId;
    const [before] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, id));
    await alice.get(`/clients/${id}`);
    for (const [name, value] of [
      ['monitoredPaths', '/srv/a\u0000b'],
      ['excludes', '*.tmp\u0000'],
      ['preCommands', 'echo a\u0000b'],
    ] as const) {
      const response = await alice.post(`/clients/${id}/config`, { monitoredPaths: '/srv', excludes: '', preCommands: '', backupInterval: '1h', [name]: value });
      expect(response.status, name).toBe(400);
      expect(response.body, name).toContain(name);
    }
    const [after] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, id));
    expect(after).toEqual(before);

    await alice.get('/clients');
    for (const [name, value] of [
      ['name', 'nul\u0000client'],
      ['hostname', 'host\u0000'],
    ] as const) {
      const response = await alice.post('/clients', { name: 'fine-name', hostname: '', [name]: value });
      expect(response.status, name).toBe(400);
      expect(response.body, name).toContain(name);
    }
    const names = (await h.ctx.database.db.select({ name: clients.name }).from(clients)).map((row) => row.name);
    expect(names).not.toContain('fine-name');

    await admin.get('/users');
    const user = await admin.post('/users', { username: 'nul\u0000user', password: 'long-enough-password', retentionVersions: '5', retentionDays: '' });
    expect(user.status).toBe(400);
    expect(user.body).toContain('username');

    const anonymous = new Browser(h.url);
    await anonymous.get('/login');
    const login = await anonymous.post('/login', { username: 'root\u0000', password: ADMIN.password, next: '/' });
    expect(login.status).toBe(400);
    expect(login.body).toContain('username');
  });

  it('shows names that are not valid UTF-8 with their bytes as \\xNN, and links to them by their exact spelling', async () => {
    const agent = await TestAgent.register(h.url, ALICE.username, ALICE.password, 'latin-1-names');
    // The agent's spelling of the Latin-1 name r\xe9sum\xe9.txt (byte escapes, decision 41).
    const spelled = encodePosixPath(Buffer.from([...Buffer.from('/docs/r'), 0xe9, ...Buffer.from('sum'), 0xe9, ...Buffer.from('.txt')]));
    await agent.backup([
      { path: spelled, content: 'cv' },
      { path: '/docs/link', linkTarget: encodePosixPath(Buffer.from([0x63, 0x61, 0x66, 0xe9])) },
    ]);
    const listing = await alice.get(`/clients/${agent.clientId}/files?path=/docs`);
    expect(listing.status).toBe(200);
    expect(listing.body).toContain('>r\\xE9sum\\xE9.txt</a>');
    expect(listing.body).toContain('→ caf\\xE9');
    expect(listing.body).not.toContain('\u{10FFE9}');
    expect(listing.body).toContain(`versions?path=${encodeURIComponent(spelled)}`);
    const versions = await alice.get(`/clients/${agent.clientId}/versions?path=${encodeURIComponent(spelled)}`);
    expect(versions.status).toBe(200);
    expect(versions.body).toContain('<strong>r\\xE9sum\\xE9.txt</strong>');
  });

  it('shows directory entries as folders, once, and an empty one too; the archive keeps them with modes, times, owners and hard links', async () => {
    const agent = await TestAgent.register(h.url, ALICE.username, ALICE.password, 'with-directories');
    const old = Date.parse('2001-02-03T04:05:06Z');
    await agent.backup([
      { path: '/data', directory: true, mode: 0o40750, mtimeMs: old, uid: 1000, gid: 1000 },
      { path: '/data/docs', directory: true, mode: 0o40700, mtimeMs: old },
      { path: '/data/docs/a.txt', content: 'linked', hardlinkGroup: 'g1', uid: 1000, gid: 100 },
      { path: '/data/docs/b.txt', content: 'linked', hardlinkGroup: 'g1' },
      { path: '/data/empty', directory: true, mode: 0o40751, mtimeMs: old },
    ]);
    const listing = await alice.get(`/clients/${agent.clientId}/files?path=/data`);
    expect(listing.status).toBe(200);
    expect(listing.body.match(/docs\/<\/a>/g)).toHaveLength(1);
    expect(listing.body.match(/empty\/<\/a>/g)).toHaveLength(1);
    // No file row for either directory entry; each folder with an entry links to its versions instead.
    expect(listing.body).not.toMatch(/icon-(file|link)" aria-hidden="true"><\/span><a [^>]*>(docs|empty)</);
    expect(listing.body.match(/versions\?path=%2Fdata%2Fdocs"/g)).toHaveLength(1);
    const versions = await alice.get(`/clients/${agent.clientId}/versions?path=/data/empty`);
    expect(versions.status).toBe(200);
    expect(versions.body).toContain('>directory<');
    const root = await alice.get(`/clients/${agent.clientId}/files`);
    expect(root.body.match(/data\/<\/a>/g)).toHaveLength(1);

    const response = await fetch(`${h.url}/clients/${agent.clientId}/archive?path=/data`, { headers: { cookie: alice.cookieHeader() } });
    expect(response.status).toBe(200);
    const headers: tar.Header[] = [];
    const extract = tar.extract();
    extract.end(gunzipSync(Buffer.from(await response.arrayBuffer())));
    for await (const entry of extract) {
      headers.push(entry.header);
      entry.resume();
    }
    const summary = headers.map((e) => ({ name: e.name, type: e.type, mode: e.mode, mtime: e.mtime?.getTime(), uid: e.uid, linkname: e.linkname ?? null }));
    expect(summary).toEqual([
      { name: 'data/', type: 'directory', mode: 0o750, mtime: old, uid: 1000, linkname: null },
      { name: 'data/docs/', type: 'directory', mode: 0o700, mtime: old, uid: 0, linkname: null },
      { name: 'data/docs/a.txt', type: 'file', mode: 0o644, mtime: expect.any(Number), uid: 1000, linkname: null },
      { name: 'data/docs/b.txt', type: 'link', mode: 0o644, mtime: expect.any(Number), uid: 0, linkname: 'data/docs/a.txt' },
      { name: 'data/empty/', type: 'directory', mode: 0o751, mtime: old, uid: 0, linkname: null },
    ]);
  });

  it('creates users with a policy, validating the form', async () => {
    await admin.get('/users');
    const bad = await admin.post('/users', { username: 'has space', password: 'short', retentionVersions: '0', retentionDays: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('1 to 64 letters');
    expect(bad.body).toContain('at least 8 characters');
    expect(bad.body).toContain('a whole number from 1 to 100000');
    const created = await admin.post('/users', { username: 'carol', password: 'carol-password', retentionVersions: '7', retentionDays: '30' });
    expect(created.status).toBe(303);
    const page = await admin.get(created.location!);
    expect(page.body).toContain('carol');
    expect(page.body).toContain('value="7"');
    const taken = await admin.post('/users', { username: 'carol', password: 'carol-password', retentionVersions: '7', retentionDays: '' });
    expect(taken.status).toBe(409);
  });

  it('previews what a retention policy prunes before saving it', async () => {
    // Bob's file gets a second and third version; a 1-version policy would prune the two older ones.
    await bobAgent.backup([{ path: '/srv/bob.txt', content: 'bob data v2' }]);
    await bobAgent.backup([{ path: '/srv/bob.txt', content: 'bob data v3!' }]);
    await admin.get(`/users/${bobId}`);
    const invalid = await admin.post(`/users/${bobId}/policy`, { retentionVersions: 'many', retentionDays: '', action: 'preview' });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toContain('a whole number from 1 to 100000');
    const preview = await admin.post(`/users/${bobId}/policy`, { retentionVersions: '1', retentionDays: '', action: 'preview' });
    expect(preview.status).toBe(200);
    expect(preview.body).toMatch(/<strong>2<\/strong> old versions/);
    expect(preview.body).toContain('/srv/bob.txt');
    const unchanged = await admin.get(`/users/${bobId}`);
    expect(unchanged.body).toContain('value="30"'); // still the default policy
    const saved = await admin.post(`/users/${bobId}/policy`, { retentionVersions: '2', retentionDays: '', action: 'save' });
    expect(saved.status).toBe(303);
    expect((await admin.get(`/users/${bobId}`)).body).toContain('value="2"');
  });

  it('resets passwords and disables users, whose sessions end with their next request', async () => {
    const dave = await addUser(h.ctx, 'dave', 'dave-password-1');
    const daveBrowser = new Browser(h.url);
    expect((await daveBrowser.login('dave', 'dave-password-1')).status).toBe(303);
    expect((await daveBrowser.get('/')).status).toBe(200);
    await admin.get(`/users/${dave.id}`);
    expect((await admin.post(`/users/${dave.id}/password`, { password: 'short' })).status).toBe(400);
    expect((await admin.post(`/users/${dave.id}/password`, { password: 'dave-password-2' })).status).toBe(303);
    expect((await admin.post(`/users/${dave.id}/status`, { disabled: 'true' })).status).toBe(303);
    const after = await daveBrowser.get('/');
    expect(after.status).toBe(303);
    expect(after.location).toMatch(/^\/login/);
    const relogin = await new Browser(h.url).login('dave', 'dave-password-2');
    expect(relogin.status).toBe(401);
    expect(relogin.body).toContain('Invalid username or password.');
    // Admins cannot lock themselves out.
    const self = (await admin.get('/users')).body.match(/href="\/users\/([0-9a-f-]{36})">root</)![1]!;
    await admin.get(`/users/${self}`);
    expect((await admin.post(`/users/${self}/status`, { disabled: 'true' })).status).toBe(400);
  });

  it('shows who changed what in the audit log', async () => {
    const page = await admin.get('/audit');
    expect(page.status).toBe(200);
    for (const action of ['client.precommands.update', 'client.token.rotate', 'user.create', 'user.disable', 'user.password.reset', 'user.retention.update', 'login.succeeded']) {
      expect(page.body, action).toContain(action);
    }
    const filtered = await admin.get('/audit?action=login');
    expect(filtered.body).toContain('login.succeeded');
    expect(filtered.body).not.toContain('user.create');
  });

  it('signs out and rejects the cleared session', async () => {
    const carol = new Browser(h.url);
    await carol.login('carol', 'carol-password');
    const saved = carol.cookieHeader();
    await carol.get('/');
    const out = await carol.post('/logout', {});
    expect(out.status).toBe(303);
    expect(out.location).toBe('/login?notice=logged-out');
    expect(carol.cookies.has(SESSION_COOKIE)).toBe(false);
    expect((await carol.get('/')).status).toBe(303);
    expect(saved).toContain(SESSION_COOKIE);
  });
});

describe.each(testDatabaseKinds())('dashboard sessions and login limits (%s)', (kind) => {
  let h: DashboardHarness;
  let userId: string;

  beforeAll(async () => {
    h = await startDashboardHarness(kind, { SESSION_IDLE_MINUTES: '30', TRUST_PROXY: 'true' });
    userId = (await addUser(h.ctx, 'erin', 'erin-password-1')).id;
    await addUser(h.ctx, 'frank', 'frank-password-1');
  });

  afterAll(async () => {
    await h?.close();
  });

  /** A session row last seen (and created) `minutesAgo` minutes ago, as its cookie header. */
  const cookieFor = async (minutesAgo: number) => {
    const at = new Date(Date.now() - minutesAgo * 60_000);
    const { token, id } = await createSession(h.ctx.database.db, userId, { userAgent: 'test', ip: '127.0.0.1', now: at, limits: h.ctx.config.session });
    return { cookie: `${SESSION_COOKIE}=${token}`, id, at };
  };

  it('issues an HttpOnly, SameSite session cookie with a new session id at every login, Secure behind TLS', async () => {
    const first = new Browser(h.url);
    const login = await first.login('erin', 'erin-password-1', { 'x-forwarded-for': '10.0.0.1' });
    const setCookie = login.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`))!;
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Lax/i);
    expect(setCookie).not.toMatch(/Secure/i);
    const second = new Browser(h.url);
    const tls = await second.login('erin', 'erin-password-1', { 'x-forwarded-for': '10.0.0.2', 'x-forwarded-proto': 'https' });
    expect(tls.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`))).toMatch(/; Secure/i);
    expect(first.cookies.get(SESSION_COOKIE)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.cookies.get(SESSION_COOKIE)).not.toBe(second.cookies.get(SESSION_COOKIE));
  });

  it('accepts a session last seen within the idle timeout and slides it forward', async () => {
    const { cookie, id, at } = await cookieFor(29);
    const response = await fetch(`${h.url}/`, { redirect: 'manual', headers: { cookie } });
    expect(response.status).toBe(200);
    // Nothing to re-issue: the cookie only names the row, whose last-seen time moved.
    expect(response.headers.getSetCookie().some((c) => c.startsWith(`${SESSION_COOKIE}=`))).toBe(false);
    const [row] = await h.ctx.database.db.select().from(sessions).where(eq(sessions.id, id));
    expect(row!.lastSeenAt.getTime()).toBeGreaterThan(at.getTime() + 28 * 60_000);
  });

  it('ends a session idle for longer than SESSION_IDLE_MINUTES, and deletes it', async () => {
    const { cookie, id } = await cookieFor(31);
    const response = await fetch(`${h.url}/clients`, { redirect: 'manual', headers: { cookie } });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/login?next=%2Fclients&notice=expired');
    expect(response.headers.getSetCookie().join()).toMatch(new RegExp(`${SESSION_COOKIE}=;`));
    expect(await h.ctx.database.db.select().from(sessions).where(eq(sessions.id, id))).toEqual([]);
  });

  it('sends a signed-in user from the login page to where they were going', async () => {
    const { cookie } = await cookieFor(1);
    const response = await fetch(`${h.url}/login?next=%2Fclients`, { redirect: 'manual', headers: { cookie } });
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/clients');
    const offsite = await fetch(`${h.url}/login?next=%2F%2Fevil.example`, { redirect: 'manual', headers: { cookie } });
    expect(offsite.headers.get('location')).toBe('/');
  });

  it('accepts the session on another replica that shares the database', async () => {
    const replica = await buildApp(h.ctx);
    const replicaUrl = await replica.listen({ port: 0, host: '127.0.0.1' });
    try {
      const browser = new Browser(h.url);
      expect((await browser.login('erin', 'erin-password-1', { 'x-forwarded-for': '10.0.4.1' })).status).toBe(303);
      const elsewhere = await fetch(`${replicaUrl}/clients`, { redirect: 'manual', headers: { cookie: browser.cookieHeader() } });
      expect(elsewhere.status).toBe(200);
    } finally {
      await replica.close();
    }
  });

  it('rejects a session id that names no session', async () => {
    const response = await fetch(`${h.url}/`, { redirect: 'manual', headers: { cookie: `${SESSION_COOKIE}=${'A'.repeat(43)}` } });
    expect(response.status).toBe(303);
  });

  it('asks for both fields on the login form', async () => {
    const browser = new Browser(h.url);
    await browser.get('/login');
    const empty = await browser.post('/login', { username: 'erin', password: '' }, { headers: { 'x-forwarded-for': '10.0.5.1' } });
    expect(empty.status).toBe(400);
    expect(empty.body).toContain('Enter your username and password.');
    expect(empty.body).toContain('value="erin"');
  });

  it('gives one message for an unknown user and a wrong password', async () => {
    const unknown = await new Browser(h.url).login('nobody', 'whatever-password', { 'x-forwarded-for': '10.0.1.1' });
    const wrong = await new Browser(h.url).login('erin', 'wrong-password', { 'x-forwarded-for': '10.0.1.2' });
    expect(unknown.status).toBe(401);
    expect(wrong.status).toBe(401);
    const message = (body: string) => /<p class="form-error" role="alert">([^<]+)<\/p>/.exec(body)![1];
    expect(message(unknown.body)).toBe('Invalid username or password.');
    expect(message(wrong.body)).toBe(message(unknown.body));
  });

  it('limits failed logins per account, whatever the IP', async () => {
    for (let i = 0; i < 5; i++) {
      const attempt = await new Browser(h.url).login('frank', `wrong-${i}`, { 'x-forwarded-for': `10.0.2.${i}` });
      expect(attempt.status).toBe(401);
    }
    const blocked = await new Browser(h.url).login('frank', 'frank-password-1', { 'x-forwarded-for': '10.0.2.99' });
    expect(blocked.status).toBe(429);
    expect(blocked.body).toContain('Too many sign-in attempts');
    // Other accounts are not affected.
    expect((await new Browser(h.url).login('erin', 'erin-password-1', { 'x-forwarded-for': '10.0.2.98' })).status).toBe(303);
  });

  it('limits login attempts per IP, whatever the account', async () => {
    const ip = { 'x-forwarded-for': '10.0.3.1' };
    const browser = new Browser(h.url);
    await browser.get('/login');
    for (let i = 0; i < 20; i++) {
      const attempt = await browser.post('/login', { username: `user-${i}`, password: 'nope-nope' }, { headers: ip });
      expect(attempt.status).toBe(401);
    }
    const blocked = await browser.post('/login', { username: 'erin', password: 'erin-password-1' }, { headers: ip });
    expect(blocked.status).toBe(429);
    expect(blocked.body).toContain('Too many sign-in attempts');
    expect((await new Browser(h.url).login('erin', 'erin-password-1', { 'x-forwarded-for': '10.0.3.2' })).status).toBe(303);
  });
});
