/**
 * Temporary download links (issue 14), against a real server: made with a
 * personal access token (POST /api/v1/admin/clients/:id/download-links) or on
 * the dashboard, they download a version or a folder archive with no session
 * and no token, stop at their expiry, when the token that made them is
 * revoked, on "Revoke all tokens and links" and when their user is disabled;
 * each use is audited; bad input is a 400 naming the field.
 */
import { gunzipSync } from 'node:zlib';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '@cairn/shared';
import { auditLog, downloadLinks } from '../../src/db/schema.ts';
import { listRuns } from '../../src/services/backup-repository.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { TestAgent } from './agent-fixture.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const API = '/api/v1/admin';

describe.each(testDatabaseKinds())('temporary download links (%s)', (kind) => {
  let h: DashboardHarness;
  let alice: Browser;
  let aliceId: string;
  let agent: TestAgent;
  let bobAgent: TestAgent;
  let token: string;
  let firstRunAt: string;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test reads loosely typed JSON
  const json = async (response: Response) => (await response.json()) as Record<string, any>;
  const call = (bearer: string, method: string, path: string, body?: unknown) =>
    fetch(h.url + API + path, {
      method,
      headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  /** Makes a link through the API; the answer's JSON. */
  const makeLink = async (bearer: string, body: Record<string, unknown>, clientId = agent.clientId) => {
    const response = await call(bearer, 'POST', `/clients/${clientId}/download-links`, body);
    expect(response.status, JSON.stringify(await response.clone().json())).toBe(201);
    return json(response);
  };
  /** A plain GET: no cookie, no authorization header. */
  const download = (url: string) => fetch(url, { redirect: 'manual' });
  const uses = (linkId: string) =>
    h.ctx.database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.action, 'download-link.use'), eq(auditLog.targetId, agent.clientId)))
      .then((rows) => rows.filter((r) => (r.details as { linkId?: string }).linkId === linkId));

  /** A personal access token through POST /api/v1/auth/token (what `cairn login` does). */
  async function passwordToken(username: string, password: string, extra: Record<string, unknown> = {}) {
    const response = await fetch(`${h.url}/api/v1/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password, ...extra }),
    });
    expect(response.status).toBe(201);
    return (await json(response)).token as string;
  }

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    aliceId = (await addUser(h.ctx, 'alice', 'alice-password-1')).id;
    await addUser(h.ctx, 'bob', 'bob-password-1');
    agent = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-laptop');
    bobAgent = await TestAgent.register(h.url, 'bob', 'bob-password-1', 'bob-box');
    await agent.backup([{ path: '/home/alice/notes.txt', content: 'first notes' }]);
    firstRunAt = (await listRuns(h.ctx.database.db, agent.clientId))[0]!.finishedAt!;
    await new Promise((resolve) => setTimeout(resolve, 20));
    await agent.backup([
      { path: '/home/alice/notes.txt', content: 'second notes' },
      { path: '/home/alice/docs/plan.md', content: '# plan' },
    ]);
    alice = new Browser(h.url);
    await alice.login('alice', 'alice-password-1');
    token = await passwordToken('alice', 'alice-password-1', { tokenName: 'laptop CLI' });
  });

  afterAll(async () => {
    await h?.close();
  });

  it('trades a password for a personal access token; wrong ones are 401, bad fields 400', async () => {
    expect(token).toMatch(/^cairn_pat_/);
    const me = await json(await call(token, 'GET', '/me'));
    expect(me).toMatchObject({ user: { username: 'alice' }, token: { name: 'laptop CLI', readOnly: false } });
    const wrong = await fetch(`${h.url}/api/v1/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: 'nope' }),
    });
    expect(wrong.status).toBe(401);
    expect((await json(wrong)).message).toBe('invalid username or password');
    const bad = await fetch(`${h.url}/api/v1/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: 'alice-password-1', expiresInDays: 400 }),
    });
    expect(bad.status).toBe(400);
    expect((await json(bad)).message).toContain('expiresInDays');
  });

  it('limits failed password-for-token attempts per account, as the sign-in page does', async () => {
    await addUser(h.ctx, 'carol', 'carol-password-1');
    const attempt = (password: string) =>
      fetch(`${h.url}/api/v1/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'carol', password }) });
    for (let i = 0; i < 5; i++) expect((await attempt('wrong-password')).status).toBe(401);
    const limited = await attempt('carol-password-1');
    expect(limited.status).toBe(429);
    expect((await json(limited)).message).toContain('too many sign-in attempts');
    const failed = await h.ctx.database.db.select().from(auditLog).where(and(eq(auditLog.action, 'login.failed'), eq(auditLog.targetId, 'carol')));
    expect(failed).toHaveLength(5);
    expect(failed[0]!.details).toMatchObject({ via: 'api' });
  });

  it('downloads the file at a path, as of now and as of an earlier run, with no session or token', async () => {
    const now = await makeLink(token, { path: '/home/alice/notes.txt' });
    expect(now).toMatchObject({ kind: 'version', path: '/home/alice/notes.txt', asOf: null });
    // Without PUBLIC_URL the origin is the one the request reached (127.0.0.1:port), not PUBLIC_URL's default http://localhost:0.
    expect(now.url).toMatch(new RegExp(`^${h.url}/api/v1/download/cairn_dl_[A-Za-z0-9_-]{43}$`));
    // Default: one hour.
    expect(Date.parse(now.expiresAt) - Date.now()).toBeGreaterThan(3500_000);
    expect(Date.parse(now.expiresAt) - Date.now()).toBeLessThanOrEqual(3600_000);
    const response = await download(now.url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-disposition')).toContain('filename="notes.txt"');
    expect(await response.text()).toBe('second notes');

    const then = await makeLink(token, { path: '/home/alice/notes.txt', asOf: firstRunAt, expiresInSeconds: 600 });
    expect(await (await download(then.url)).text()).toBe('first notes');
    const byId = await makeLink(token, { versionId: then.versionId });
    expect(await (await download(byId.url)).text()).toBe('first notes');

    // Only the hash is stored; each use is audited, as is the creation.
    const rows = await h.ctx.database.db.select().from(downloadLinks).where(eq(downloadLinks.id, now.id));
    expect(rows[0]!.tokenHash).toBe(sha256Hex(now.url.split('/').pop()));
    expect(rows[0]!.uses).toBe(1);
    expect(JSON.stringify(await h.ctx.database.db.select().from(auditLog))).not.toContain(now.url.split('/').pop());
    const used = await uses(now.id);
    expect(used).toHaveLength(1);
    expect(used[0]!.details).toMatchObject({ outcome: 'served', kind: 'version', path: '/home/alice/notes.txt', ip: '127.0.0.1' });
    expect(used[0]!.actorName).toBe(`download link ${rows[0]!.tokenPrefix}`);
    const created = await h.ctx.database.db.select().from(auditLog).where(eq(auditLog.action, 'download-link.create'));
    expect(created.find((r) => (r.details as { linkId: string }).linkId === now.id)!.actorName).toBe('alice (API token "laptop CLI")');
  });

  it('downloads a folder as a .tar.gz of its tree at the link’s time', async () => {
    const link = await makeLink(token, { folder: '/home/alice/docs' });
    expect(link).toMatchObject({ kind: 'archive', path: '/home/alice/docs', versionId: null });
    const response = await download(link.url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/gzip');
    const tar = gunzipSync(Buffer.from(await response.arrayBuffer())).toString('latin1');
    expect(tar).toContain('docs/plan.md');
    expect(tar).toContain('# plan');
    expect(tar).not.toContain('second notes');
  });

  it('refuses bad input with a 400 naming the field, and other users’ clients with a 404', async () => {
    const tooLong = await call(token, 'POST', `/clients/${agent.clientId}/download-links`, { path: '/home/alice/notes.txt', expiresInSeconds: 7 * 86_400 + 1 });
    expect(tooLong.status).toBe(400);
    const body = await json(tooLong);
    expect(body.message).toContain('expiresInSeconds');
    expect(body.fields).toEqual({ expiresInSeconds: 'from 1 second to 7 days (604800 seconds)' });
    // Seven days exactly is allowed.
    expect((await call(token, 'POST', `/clients/${agent.clientId}/download-links`, { path: '/home/alice/notes.txt', expiresInSeconds: 7 * 86_400 })).status).toBe(201);
    for (const [field, payload] of [
      ['expiresInSeconds', { path: '/home/alice/notes.txt', expiresInSeconds: 0 }],
      ['versionId', { path: '/home/alice/notes.txt', folder: '/home' }],
      ['versionId', {}],
      ['path', { path: 'relative/path' }],
      ['asOf', { folder: '/', asOf: 'yesterday' }],
    ] as const) {
      const response = await call(token, 'POST', `/clients/${agent.clientId}/download-links`, payload);
      expect(response.status, JSON.stringify(payload)).toBe(400);
      expect((await json(response)).message, JSON.stringify(payload)).toContain(field);
    }
    expect((await call(token, 'POST', `/clients/${agent.clientId}/download-links`, { path: '/home/alice/missing.txt' })).status).toBe(404);
    expect((await call(token, 'POST', `/clients/${bobAgent.clientId}/download-links`, { folder: '/' })).status).toBe(404);
  });

  it('lets a read-only token make links (they only read)', async () => {
    const readOnly = await passwordToken('alice', 'alice-password-1', { readOnly: true });
    const link = await makeLink(readOnly, { path: '/home/alice/notes.txt' });
    expect(await (await download(link.url)).text()).toBe('second notes');
    expect((await call(readOnly, 'POST', `/clients/${agent.clientId}/run`)).status).toBe(403);
  });

  it('answers 404 for an unknown link and a 4xx for a malformed one, never 500', async () => {
    const unknown = await download(`${h.url}/api/v1/download/cairn_dl_${'A'.repeat(43)}`);
    expect(unknown.status).toBe(404);
    expect((await json(unknown)).message).toBe('no such download link');
    expect((await download(`${h.url}/api/v1/download/not-a-link`)).status).toBe(404);
    // Longer than Fastify's route parameters may be (100): 414.
    expect((await download(`${h.url}/api/v1/download/${'x'.repeat(101)}`)).status).toBe(414);
    expect((await download(`${h.url}/api/v1/download/bad%20chars`)).status).toBe(400);
  });

  it('stops working when it expires (410), and the refused use is audited', async () => {
    const link = await makeLink(token, { path: '/home/alice/notes.txt', expiresInSeconds: 1 });
    const deadline = Date.now() + 20_000;
    let response = await download(link.url);
    while (response.status === 200 && Date.now() < deadline) {
      await response.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, 200));
      response = await download(link.url);
    }
    expect(response.status).toBe(410);
    expect((await json(response)).message).toBe('this download link no longer works: expired');
    expect((await uses(link.id)).some((r) => (r.details as { outcome: string; reason?: string }).reason === 'expired')).toBe(true);
  });

  it('stops working when the token that made it is revoked', async () => {
    const temp = await passwordToken('alice', 'alice-password-1', { tokenName: 'temp' });
    const link = await makeLink(temp, { path: '/home/alice/notes.txt' });
    const other = await makeLink(token, { path: '/home/alice/notes.txt' });
    expect((await download(link.url)).status).toBe(200);
    const page = await alice.get(`/users/${aliceId}`);
    const tokenId = new RegExp(`temp</td>[\\s\\S]*?/users/${aliceId}/tokens/([0-9a-f-]{36})/revoke`).exec(page.body)![1]!;
    expect((await alice.post(`/users/${aliceId}/tokens/${tokenId}/revoke`, {})).status).toBe(303);
    const gone = await download(link.url);
    expect(gone.status).toBe(410);
    expect((await json(gone)).message).toBe('this download link no longer works: the token that made it was revoked');
    // A link of another token is untouched.
    expect((await download(other.url)).status).toBe(200);
  });

  it('makes links on the dashboard for a version and a folder; "Revoke all tokens and links" stops them and the tokens', async () => {
    const versions = await alice.get(`/clients/${agent.clientId}/versions?path=${encodeURIComponent('/home/alice/notes.txt')}`);
    const versionId = /name="versionId" value="(\d+)"/.exec(versions.body)![1]!;
    const made = await alice.post(`/clients/${agent.clientId}/download-links`, { versionId, expires: '1d' });
    expect(made.status).toBe(200);
    const url = /value="([^"]+)" id="download-link"/.exec(made.body)![1]!;
    expect(await (await download(url)).text()).toBe('second notes');
    const [row] = await h.ctx.database.db.select().from(downloadLinks).where(eq(downloadLinks.tokenHash, sha256Hex(url.split('/').pop()!)));
    expect(row!.apiTokenId).toBeNull();
    expect(row!.expiresAt.getTime() - row!.createdAt.getTime()).toBe(86_400_000);

    await alice.get(`/clients/${agent.clientId}/files?path=/home/alice`);
    const folder = await alice.post(`/clients/${agent.clientId}/download-links`, { folder: '/home/alice', asOf: '', expires: '1h' });
    const folderUrl = /value="([^"]+)" id="download-link"/.exec(folder.body)![1]!;
    expect((await download(folderUrl)).headers.get('content-type')).toBe('application/gzip');

    const bad = await alice.post(`/clients/${agent.clientId}/download-links`, { versionId, expires: '8d' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('expires: from 1 second to 7 days');
    const badFolder = await alice.post(`/clients/${agent.clientId}/download-links`, { folder: '/home//alice/', expires: '1h' });
    expect(badFolder.status).toBe(400);
    expect(badFolder.body).toContain('folder: not a canonical absolute path');

    await alice.get(`/users/${aliceId}`);
    expect((await alice.post(`/users/${aliceId}/credentials/revoke-all`, {})).status).toBe(303);
    expect((await download(url)).status).toBe(410);
    expect((await download(folderUrl)).status).toBe(410);
    expect((await call(token, 'GET', '/me')).status).toBe(401);
    const [entry] = await h.ctx.database.db.select().from(auditLog).where(eq(auditLog.action, 'user.credentials.revoke-all'));
    expect(entry!.details).toMatchObject({ tokens: expect.any(Number), links: expect.any(Number) });
    expect((entry!.details as { links: number }).links).toBeGreaterThanOrEqual(2);
  });

  it('lists the user’s live links on their page and the API, and revokes one at a time (CSRF, audited); another user’s link is 404', async () => {
    token = await passwordToken('alice', 'alice-password-1', { tokenName: 'links CLI' });
    const keep = await makeLink(token, { path: '/home/alice/notes.txt' });
    const stop = await makeLink(token, { folder: '/home/alice/docs', expiresInSeconds: 600 });
    const listed = await json(await call(token, 'GET', `/users/${aliceId}/download-links`));
    expect(listed.links.map((l: { id: string }) => l.id)).toEqual([stop.id, keep.id]);
    expect(listed.links[0]).toMatchObject({ kind: 'archive', path: '/home/alice/docs', clientName: 'alice-laptop', uses: 0, apiTokenName: 'links CLI' });
    await download(keep.url);
    const page = await alice.get(`/users/${aliceId}`);
    expect(page.body).toContain('Temporary download links');
    expect(page.body).toContain(`/users/${aliceId}/download-links/${stop.id}/revoke`);
    // Without the CSRF token the form is refused and the link keeps working.
    expect((await alice.post(`/users/${aliceId}/download-links/${stop.id}/revoke`, {}, { withCsrf: false })).status).toBe(403);
    expect((await download(stop.url)).status).toBe(200);
    await alice.get(`/users/${aliceId}`);
    const revoked = await alice.post(`/users/${aliceId}/download-links/${stop.id}/revoke`, {});
    expect(revoked.status).toBe(303);
    expect(revoked.location).toContain('notice=download-link-revoked');
    expect((await json(await download(stop.url))).message).toBe('this download link no longer works: revoked');
    expect((await download(keep.url)).status).toBe(200);
    const [entry] = await h.ctx.database.db.select().from(auditLog).where(eq(auditLog.action, 'download-link.revoke'));
    expect(entry).toMatchObject({ actorName: 'alice', targetId: agent.clientId, details: { linkId: stop.id, path: '/home/alice/docs' } });
    const after = await json(await call(token, 'GET', `/users/${aliceId}/download-links`));
    expect(after.links.map((l: { id: string }) => l.id)).toEqual([keep.id]);
    expect(after.links[0].uses).toBe(2);
    // Twice, or a made-up id: 404; through the API as well.
    expect((await alice.post(`/users/${aliceId}/download-links/${stop.id}/revoke`, {})).status).toBe(404);
    expect((await alice.post(`/users/${aliceId}/download-links/not-a-uuid/revoke`, {})).status).toBe(404);

    // Bob cannot see or stop Alice's links: her page is 403, her link under his name 404.
    const bob = new Browser(h.url);
    await bob.login('bob', 'bob-password-1');
    const bobId = (await json(await call(await passwordToken('bob', 'bob-password-1'), 'GET', '/me'))).user.id as string;
    await bob.get(`/users/${bobId}`);
    expect((await bob.post(`/users/${aliceId}/download-links/${keep.id}/revoke`, {})).status).toBe(403);
    expect((await bob.post(`/users/${bobId}/download-links/${keep.id}/revoke`, {})).status).toBe(404);
    const bobToken = await passwordToken('bob', 'bob-password-1');
    expect((await call(bobToken, 'GET', `/users/${aliceId}/download-links`)).status).toBe(403);
    expect((await call(bobToken, 'DELETE', `/users/${bobId}/download-links/${keep.id}`)).status).toBe(404);
    expect((await download(keep.url)).status).toBe(200);
    // Alice revokes it through the API (a read-only token may: it only takes access away).
    const readOnly = await passwordToken('alice', 'alice-password-1', { readOnly: true });
    expect(await json(await call(readOnly, 'DELETE', `/users/${aliceId}/download-links/${keep.id}`))).toEqual({ ok: true });
    expect((await download(keep.url)).status).toBe(410);
    expect((await call(readOnly, 'DELETE', `/users/${aliceId}/download-links/${keep.id}`)).status).toBe(404);
    expect((await json(await call(token, 'GET', `/users/${aliceId}/download-links`))).links).toEqual([]);
  });

  it('stops working when its user is disabled', async () => {
    token = await passwordToken('alice', 'alice-password-1');
    const link = await makeLink(token, { path: '/home/alice/notes.txt' });
    expect((await download(link.url)).status).toBe(200);
    await addUser(h.ctx, 'root', 'root-password-1', true);
    const root = new Browser(h.url);
    await root.login('root', 'root-password-1');
    await root.get(`/users/${aliceId}`);
    expect((await root.post(`/users/${aliceId}/status`, { disabled: 'true' })).status).toBe(303);
    const gone = await download(link.url);
    expect(gone.status).toBe(410);
    expect((await json(gone)).message).toBe('this download link no longer works: its user is disabled');
  });

  it('describes the endpoints in the OpenAPI document', async () => {
    const doc = await json(await fetch(`${h.url}/docs/json`));
    expect(doc.paths['/api/v1/download/{token}'].get.responses['410']).toBeDefined();
    const create = doc.paths['/api/v1/admin/clients/{id}/download-links'].post;
    expect(create.security).toEqual([{ bearer: [] }]);
    expect(Object.keys(create.requestBody.content['application/json'].schema.properties)).toEqual(['versionId', 'path', 'folder', 'asOf', 'expiresInSeconds']);
    expect(doc.paths['/api/v1/auth/token'].post).toBeDefined();
  });
});

describe('temporary download links with PUBLIC_URL set', () => {
  let h: DashboardHarness;

  beforeAll(async () => {
    h = await startDashboardHarness('embedded', { PUBLIC_URL: 'https://backup.example.test/cairn/' });
    await addUser(h.ctx, 'alice', 'alice-password-1');
  });

  afterAll(async () => {
    await h?.close();
  });

  it('builds the URL under PUBLIC_URL (the address people reach), from the API and the dashboard', async () => {
    const agent = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-laptop');
    await agent.backup([{ path: '/home/alice/notes.txt', content: 'notes' }]);
    const issued = await fetch(`${h.url}/api/v1/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: 'alice-password-1' }),
    });
    const { token } = (await issued.json()) as { token: string };
    const made = await fetch(`${h.url}${API}/clients/${agent.clientId}/download-links`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ path: '/home/alice/notes.txt' }),
    });
    const { url } = (await made.json()) as { url: string };
    expect(url).toMatch(/^https:\/\/backup\.example\.test\/cairn\/api\/v1\/download\/cairn_dl_[A-Za-z0-9_-]{43}$/);
    // The proxy would strip /cairn; here the same path on the server itself downloads.
    expect(await (await fetch(url.replace('https://backup.example.test/cairn', h.url))).text()).toBe('notes');

    const alice = new Browser(h.url);
    await alice.login('alice', 'alice-password-1');
    await alice.get(`/clients/${agent.clientId}/files?path=/home/alice`);
    const page = await alice.post(`/clients/${agent.clientId}/download-links`, { folder: '/home/alice', asOf: '', expires: '1h' });
    expect(/value="([^"]+)" id="download-link"/.exec(page.body)![1]).toMatch(/^https:\/\/backup\.example\.test\/cairn\/api\/v1\/download\/cairn_dl_/);
  });
});
