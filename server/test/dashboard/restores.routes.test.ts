/**
 * The Restores tab and the restore-job pages of the dashboard, and the same
 * actions in the admin REST API, against a real server: a job restores a
 * client's backup onto a client of the same owner; bad fields are 400s
 * named under their field; another user's client, job or schedule is 404;
 * a read-only token cannot make or cancel one.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESTORE_JOBS_PAGE } from '../../src/dashboard/restores.routes.ts';
import { createRestoreJob, restoreRequestOf } from '../../src/services/restore-jobs.service.ts';
import { createApiToken } from '../../src/services/api-tokens.service.ts';
import { SYSTEM_ACTOR } from '../../src/services/users.service.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { TestAgent } from './agent-fixture.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const API = '/api/v1/admin';
const FORM = {
  when: 'now',
  asOf: '',
  paths: '/home/alice',
  targetDir: '/restore',
  overwrite: '',
  postCommand: '',
  postCommandTimeout: '10m',
  scheduleKind: 'cron',
  interval: '1d',
  cron: '0 4 * * *',
  timeZone: 'UTC',
};

describe.each(testDatabaseKinds())('restores on the dashboard and in the admin API (%s)', (kind) => {
  let h: DashboardHarness;
  let alice: Browser;
  let bob: Browser;
  let aliceId: string;
  let laptop: TestAgent;
  let desktop: TestAgent;
  let bobBox: TestAgent;
  let fullToken: string;
  let readToken: string;

  async function newToken(browser: Browser, userId: string, fields: Record<string, string>) {
    await browser.get(`/users/${userId}`);
    const page = await browser.post(`/users/${userId}/tokens`, fields);
    return /value="(cairn_pat_[A-Za-z0-9_-]+)" id="api-token"/.exec(page.body)![1]!;
  }
  const call = (token: string, method: string, path: string, body?: unknown) =>
    fetch(h.url + API + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    aliceId = (await addUser(h.ctx, 'alice', 'alice-password-1')).id;
    await addUser(h.ctx, 'bob', 'bob-password-1');
    laptop = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-laptop');
    desktop = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-desktop');
    bobBox = await TestAgent.register(h.url, 'bob', 'bob-password-1', 'bob-box');
    await laptop.backup([{ path: '/home/alice/notes.txt', content: 'notes' }]);
    alice = new Browser(h.url);
    expect((await alice.login('alice', 'alice-password-1')).status).toBe(303);
    bob = new Browser(h.url);
    expect((await bob.login('bob', 'bob-password-1')).status).toBe(303);
    fullToken = await newToken(alice, aliceId, { name: 'restores', access: 'full', expiresInDays: '30' });
    readToken = await newToken(alice, aliceId, { name: 'reader', access: 'read', expiresInDays: '7' });
  });

  afterAll(async () => {
    await h?.close();
  });

  it('offers only clients of the owner as targets, prefills a path from the file browser, and queues a job', async () => {
    const page = await alice.get(`/clients/${laptop.clientId}/restores?path=/home/alice/notes.txt`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('alice-desktop');
    expect(page.body).not.toContain('bob-box');
    expect(page.body).toMatch(/<textarea name="paths"[^>]*>\/home\/alice\/notes.txt<\/textarea>/);
    const posted = await alice.post(`/clients/${laptop.clientId}/restores`, { ...FORM, targetClientId: desktop.clientId });
    expect(posted.status).toBe(303);
    const jobUrl = posted.headers.get('location')!;
    expect(jobUrl).toMatch(/^\/restore-jobs\/[0-9a-f-]{36}\?notice=restore-queued$/);
    const job = await alice.get(jobUrl);
    expect(job.body).toContain('Restore job queued');
    expect(job.body).toMatch(/data-restore-status>queued</);
    expect(job.body).toContain('alice-desktop');
    // Listed on both clients' tabs.
    const id = /\/restore-jobs\/([0-9a-f-]{36})/.exec(jobUrl)![1]!;
    expect((await alice.get(`/clients/${desktop.clientId}/restores`)).body).toContain(`data-job-id="${id}"`);
    // Bob sees neither the job nor the client.
    expect((await bob.get(jobUrl)).status).toBe(404);
    expect((await bob.get(`/clients/${laptop.clientId}/restores`)).status).toBe(404);
    await bob.get(`/clients/${bobBox.clientId}/restores`);
    expect((await bob.post(`/restore-jobs/${id}/cancel`, {})).status).toBe(404);
    // Alice cancels it: queued, so at once.
    await alice.get(jobUrl);
    const cancelled = await alice.post(`/restore-jobs/${id}/cancel`, {});
    expect(cancelled.headers.get('location')).toContain('notice=restore-cancelled');
    expect((await alice.get(`/restore-jobs/${id}`)).body).toMatch(/data-restore-status>cancelled</);
  });

  it('pages the Restores tab: older jobs behind a link, each job on exactly one page', async () => {
    const pager = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-pager');
    const made: string[] = [];
    for (let i = 0; i < RESTORE_JOBS_PAGE + 2; i++) {
      const job = await createRestoreJob(h.ctx, { userId: aliceId, isAdmin: false }, SYSTEM_ACTOR, { ...restoreRequestOf(pager.clientId, { paths: ['/'], targetDir: `/restore-${i}` }), asOf: null });
      made.push(job.id);
    }
    const jobIds = (body: string) => [...body.matchAll(/data-job-id="([0-9a-f-]{36})"/g)].map((m) => m[1]!);
    const olderLink = (body: string) => /href="([^"]+)"[^>]*>Older jobs/.exec(body)?.[1]?.replaceAll('&amp;', '&');

    const first = await alice.get(`/clients/${pager.clientId}/restores`);
    expect(jobIds(first.body)).toEqual(made.slice(-RESTORE_JOBS_PAGE).reverse());
    expect(first.body).not.toContain('← Newest');
    const link = olderLink(first.body);
    expect(link).toMatch(new RegExp(`^/clients/${pager.clientId}/restores\\?before=`));

    const older = await alice.get(link!);
    expect(older.status).toBe(200);
    expect(jobIds(older.body)).toEqual(made.slice(0, -RESTORE_JOBS_PAGE).reverse());
    expect(older.body).toContain('← Newest');
    expect(olderLink(older.body)).toBeUndefined();
    expect((await alice.get(`/clients/${pager.clientId}/restores?before=yesterday`)).status).toBe(400);
  });

  it('pages jobs that share one created_at (a sweep makes them in one transaction) without skipping any, on the tab and in the admin API', async () => {
    const pager = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-same-time');
    const made: string[] = [];
    for (let i = 0; i < RESTORE_JOBS_PAGE + 4; i++) {
      const job = await createRestoreJob(h.ctx, { userId: aliceId, isAdmin: false }, SYSTEM_ACTOR, { ...restoreRequestOf(pager.clientId, { paths: ['/'], targetDir: `/same-${i}` }), asOf: null });
      made.push(job.id);
    }
    // Six jobs around the page boundary in one microsecond, and two of them a microsecond apart inside one millisecond.
    const boundary = made.slice(2, 8);
    await h.ctx.database.sql`update restore_jobs set created_at = '2026-12-01 10:00:00.123456+00' where id in ${h.ctx.database.sql(boundary)}`;
    await h.ctx.database.sql`update restore_jobs set created_at = '2026-12-01 10:00:00.123457+00' where id = ${made[8]!}`;
    await h.ctx.database.sql`update restore_jobs set created_at = '2026-11-30 10:00:00+00' where id in ${h.ctx.database.sql(made.slice(0, 2))}`;
    const jobIds = (body: string) => [...body.matchAll(/data-job-id="([0-9a-f-]{36})"/g)].map((m) => m[1]!);
    const olderLink = (body: string) => /href="([^"]+)"[^>]*>Older jobs/.exec(body)?.[1]?.replaceAll('&amp;', '&');
    const seen: string[] = [];
    let page = await alice.get(`/clients/${pager.clientId}/restores`);
    for (let i = 0; i < 5; i++) {
      seen.push(...jobIds(page.body));
      const link = olderLink(page.body);
      if (!link) break;
      page = await alice.get(link);
    }
    expect([...seen].sort()).toEqual([...made].sort());
    expect(new Set(seen).size).toBe(seen.length);

    const { token } = await createApiToken(h.ctx, aliceId, { name: 'pager', readOnly: true, expiresInDays: 1 }, SYSTEM_ACTOR, new Date());
    const viaApi: string[] = [];
    let before: string | undefined;
    for (let i = 0; i < 20; i++) {
      const response = await request(`${h.url}/api/v1/admin/clients/${pager.clientId}/restore-jobs?limit=3${before ? `&before=${encodeURIComponent(before)}` : ''}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.statusCode).toBe(200);
      const { jobs } = (await response.body.json()) as { jobs: { id: string; createdAt: string }[] };
      if (jobs.length === 0) break;
      viaApi.push(...jobs.map((j) => j.id));
      before = jobs.at(-1)!.createdAt;
    }
    expect([...viaApi].sort()).toEqual([...made].sort());
    expect(new Set(viaApi).size).toBe(viaApi.length);
  });

  it.each([
    [{ paths: '' }, 'paths', /at least one path/],
    [{ paths: 'relative/path' }, 'paths', /not an absolute path/],
    [{ targetDir: '/' }, 'targetDir', /other than \//],
    [{ targetClientId: '00000000-0000-4000-8000-000000000000' }, 'targetClientId', /no such client/],
    [{ postCommandTimeout: 'soon' }, 'postCommandTimeout', /duration/],
    [{ asOf: 'yesterday' }, 'asOf', /date and time/],
    [{ when: 'schedule', cron: '61 * * * *' }, 'cron', /.+/],
    [{ when: 'schedule', scheduleKind: 'interval', interval: '5s' }, 'interval', /at least 60s/],
    [{ when: 'schedule', timeZone: 'Mars/Olympus' }, 'timeZone', /unknown time zone/],
  ])('answers %o with a 400 naming %s', async (change, name, message) => {
    await alice.get(`/clients/${laptop.clientId}/restores`);
    const answer = await alice.post(`/clients/${laptop.clientId}/restores`, { ...FORM, targetClientId: laptop.clientId, ...change });
    expect(answer.status).toBe(400);
    const error = new RegExp(`<label class="field[^"]*has-error[^"]*"><span>[^]*?name="${name}"[^]*?<small class="error">([^<]*)</small>`).exec(answer.body);
    expect(error, answer.body.slice(0, 200)).not.toBeNull();
    expect(error![1]).toMatch(message);
  });

  it('refuses a target of another owner', async () => {
    await alice.get(`/clients/${laptop.clientId}/restores`);
    const answer = await alice.post(`/clients/${laptop.clientId}/restores`, { ...FORM, targetClientId: bobBox.clientId });
    expect(answer.status).toBe(400);
    expect(answer.body).toContain('no such client');
  });

  it('saves a schedule, shows it with its next time, runs it now and deletes it', async () => {
    await alice.get(`/clients/${laptop.clientId}/restores`);
    const saved = await alice.post(`/clients/${laptop.clientId}/restores`, { ...FORM, when: 'schedule', targetClientId: desktop.clientId, timeZone: 'Europe/Berlin' });
    expect(saved.status).toBe(303);
    const page = await alice.get(`/clients/${laptop.clientId}/restores`);
    const scheduleId = /data-schedule-id="([0-9a-f-]{36})"/.exec(page.body)![1]!;
    expect(page.body).toContain('0 4 * * *');
    expect(page.body).toContain('Europe/Berlin');
    const run = await alice.post(`/restore-schedules/${scheduleId}/run`, {});
    expect(run.headers.get('location')).toMatch(/^\/restore-jobs\//);
    await alice.get(`/clients/${laptop.clientId}/restores`);
    expect((await bob.post(`/restore-schedules/${scheduleId}/delete`, { clientId: laptop.clientId })).status).toBe(404);
    const deleted = await alice.post(`/restore-schedules/${scheduleId}/delete`, { clientId: laptop.clientId });
    expect(deleted.headers.get('location')).toContain('restore-schedule-deleted');
    expect((await alice.get(`/clients/${laptop.clientId}/restores`)).body).not.toContain(`data-schedule-id="${scheduleId}"`);
  });

  it('the admin API makes, lists, shows and cancels jobs and schedules with the same rules', async () => {
    const made = await call(fullToken, 'POST', `/clients/${laptop.clientId}/restore-jobs`, { targetClientId: desktop.clientId, paths: ['/home/alice'], targetDir: '/restore', postCommand: 'true' });
    expect(made.status).toBe(201);
    const job = (await made.json()) as { id: string; status: string; targetClientName: string; paths: string[] };
    expect(job).toMatchObject({ status: 'queued', targetClientName: 'alice-desktop', paths: ['/home/alice'] });
    const listed = (await (await call(readToken, 'GET', `/clients/${desktop.clientId}/restore-jobs`)).json()) as { jobs: { id: string }[] };
    expect(listed.jobs.map((j) => j.id)).toContain(job.id);
    expect((await call(readToken, 'GET', `/restore-jobs/${job.id}`)).status).toBe(200);
    expect((await call(readToken, 'POST', `/restore-jobs/${job.id}/cancel`)).status).toBe(403);
    expect((await call(readToken, 'POST', `/clients/${laptop.clientId}/restore-jobs`, { paths: ['/'], targetDir: '/r' })).status).toBe(403);
    const bad = await call(fullToken, 'POST', `/clients/${laptop.clientId}/restore-jobs`, { paths: ['x'], targetDir: '/r' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/^paths/);
    expect((await call(fullToken, 'POST', `/clients/${bobBox.clientId}/restore-jobs`, { paths: ['/'], targetDir: '/r' })).status).toBe(404);
    expect((await call(fullToken, 'POST', `/clients/${laptop.clientId}/restore-jobs`, { targetClientId: bobBox.clientId, paths: ['/'], targetDir: '/r' })).status).toBe(400);
    const cancel = await call(fullToken, 'POST', `/restore-jobs/${job.id}/cancel`);
    expect(await cancel.json()).toEqual({ status: 'cancelled' });
    expect((await call(fullToken, 'POST', `/restore-jobs/${job.id}/cancel`)).status).toBe(409);

    const schedule = await call(fullToken, 'POST', `/clients/${laptop.clientId}/restore-schedules`, { paths: ['/home/alice'], targetDir: '/nightly', cron: '30 2 * * *', timeZone: 'UTC' });
    expect(schedule.status).toBe(201);
    const created = (await schedule.json()) as { id: string; nextRunAt: string; cron: string };
    expect(created.cron).toBe('30 2 * * *');
    // What the body leaves out takes its default: onto the same client, no overwrite, no post-command.
    expect(created).toMatchObject({ targetClientId: laptop.clientId, overwrite: false, postCommand: null });
    expect(created.nextRunAt).toMatch(/T02:30:00\.000Z$/);
    expect((await call(fullToken, 'POST', `/restore-schedules/${created.id}/run`)).status).toBe(201);
    expect((await call(readToken, 'DELETE', `/restore-schedules/${created.id}`)).status).toBe(403);
    expect(await (await call(fullToken, 'DELETE', `/restore-schedules/${created.id}`)).json()).toEqual({ deleted: true });
    expect((await call(fullToken, 'DELETE', `/restore-schedules/${created.id}`)).status).toBe(404);
    // In the OpenAPI document.
    const doc = (await (await fetch(`${h.url}/docs/json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/admin/clients/{id}/restore-jobs', '/api/v1/admin/restore-jobs/{id}/cancel', '/api/v1/restore-jobs/claim']));
  });
});
