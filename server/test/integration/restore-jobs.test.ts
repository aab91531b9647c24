/**
 * Restore jobs over the real agent API on both databases: who may make one,
 * the ping flag, claim order and the stale-run rule, the job's file pages
 * (the source client's tree as of the job's time, under each of its paths),
 * progress with cancel, finish, the 404/409/400 answers, and the schedule
 * sweep queuing each time once.
 */
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileVersion, RestoreJobSpec } from '@cairn/shared';
import { restoreJobs, restoreSchedules } from '../../src/db/schema.ts';
import { moveClient } from '../../src/services/clients.service.ts';
import {
  cancelRestoreJob,
  createRestoreJob,
  createRestoreSchedule,
  foldPaths,
  sweepRestoreSchedules,
  type RestoreRequest,
} from '../../src/services/restore-jobs.service.ts';
import { SYSTEM_ACTOR } from '../../src/services/users.service.ts';
import { addUser, callApi, fileUpsert, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const zeroStats = { filesScanned: 0, filesChanged: 0, filesDeleted: 0, filesFailed: 0, bytesScanned: 0, bytesUploaded: 0 };
const progress = { phase: 'restoring', filesTotal: 2, bytesTotal: 10, filesDone: 1, bytesDone: 5, filesFailed: 0 } as const;
const finish = { status: 'succeeded', filesRestored: 2, bytesRestored: 10, filesFailed: 0, failures: [], command: null, error: null } as const;

describe('foldPaths', () => {
  it('sorts, drops duplicates and paths inside another, and lets / cover all', () => {
    expect(foldPaths(['/b', '/a/x', '/a', '/b'])).toEqual(['/a', '/b']);
    expect(foldPaths(['/a-x', '/a'])).toEqual(['/a', '/a-x']);
    expect(foldPaths(['/etc', '/'])).toEqual(['/']);
  });
});

describe.each(testDatabaseKinds())('restore jobs on %s', (kind) => {
  let h: Harness;
  let alice: Awaited<ReturnType<typeof addUser>>;
  let bob: Awaited<ReturnType<typeof addUser>>;
  const aliceViewer = () => ({ userId: alice.id, isAdmin: false });
  const actor = () => ({ userId: alice.id, name: 'alice' });

  async function backUp(token: string, files: Record<string, string>): Promise<Date> {
    const parts = Object.values(files).map((text) => Buffer.from(text));
    expect((await upload(h, token, parts)).status).toBe(200);
    const run = await callApi<{ runId: string }>(h, 'POST', '/runs', { token, json: {} });
    const upserts = Object.entries(files).map(([path, text]) => fileUpsert(path, Buffer.from(text)));
    expect((await callApi(h, 'POST', `/runs/${run.body.runId}/changes`, { token, json: { upserts, deletes: [] } })).status).toBe(200);
    expect((await callApi(h, 'POST', `/runs/${run.body.runId}/finish`, { token, json: { status: 'succeeded', stats: zeroStats, preCommands: [] } })).status).toBe(200);
    return new Date();
  }

  const request = (source: string, target: string, extra: Partial<RestoreRequest & { asOf: Date | null }> = {}): RestoreRequest & { asOf: Date | null } => ({
    sourceClientId: source,
    targetClientId: target,
    paths: ['/'],
    targetDir: '/restore',
    overwrite: false,
    postCommand: null,
    postCommandTimeoutSeconds: 60,
    asOf: null,
    ...extra,
  });

  async function claim(token: string) {
    return callApi<RestoreJobSpec>(h, 'POST', '/restore-jobs/claim', { token, json: {} });
  }

  async function allFiles(token: string, jobId: string, limit: number): Promise<string[]> {
    const paths: string[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page: { status: number; body: { files: FileVersion[]; nextCursor: string | null } } = await callApi(
        h,
        'GET',
        `/restore-jobs/${jobId}/files?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        { token },
      );
      expect(page.status).toBe(200);
      paths.push(...page.body.files.map((f) => f.path));
      cursor = page.body.nextCursor;
    }
    return paths;
  }

  beforeAll(async () => {
    h = await startHarness(kind);
    alice = await addUser(h, 'alice');
    bob = await addUser(h, 'bob');
  });

  afterAll(async () => {
    await h?.close();
  });

  it("restores the source's tree as of the job's time, under each path, page by page, onto another client of the owner", async () => {
    const source = await registerAgent(h, alice, 'db-server');
    const target = await registerAgent(h, alice, 'standby');
    const asOf = await backUp(source.token, { '/dumps/a.sql': 'a1', '/dumps/b.sql': 'b1', '/dumps-old/x.sql': 'x', '/etc/conf': 'c', '/home/u/f': 'f' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await backUp(source.token, { '/dumps/a.sql': 'a2', '/dumps/c.sql': 'c-later' });

    const job = await createRestoreJob(h.ctx, aliceViewer(), actor(), request(source.clientId, target.clientId, { paths: ['/etc/', '/dumps', '/dumps/a.sql'], asOf }));
    expect(job.paths).toEqual(['/dumps', '/etc']);
    // The ping says a job waits, for the target only.
    const ping = (token: string) => callApi<{ restoreJobsPending?: boolean }>(h, 'POST', '/ping', { token, json: {} });
    expect((await ping(target.token)).body.restoreJobsPending).toBe(true);
    expect((await ping(source.token)).body.restoreJobsPending).toBe(false);

    expect((await claim(source.token)).status).toBe(204);
    const claimed = await claim(target.token);
    expect(claimed.status).toBe(200);
    expect(claimed.body).toMatchObject({ jobId: job.id, sourceClientName: 'db-server', paths: ['/dumps', '/etc'], targetDir: '/restore', overwrite: false, postCommand: null });
    expect(claimed.body.asOf).toBe(asOf.toISOString());
    expect((await ping(target.token)).body.restoreJobsPending).toBe(false);

    // As of the first run: a.sql's first version, no c.sql, not /dumps-old (a sibling, not under /dumps).
    for (const limit of [1, 2, 1000]) expect(await allFiles(target.token, job.id, limit)).toEqual(['/dumps/a.sql', '/dumps/b.sql', '/etc/conf']);
    const first = await callApi<{ files: FileVersion[] }>(h, 'GET', `/restore-jobs/${job.id}/files`, { token: target.token });
    expect(first.body.files.find((f) => f.path === '/dumps/a.sql')?.size).toBe(2);

    // Only the target's agent may read or report the job.
    expect((await callApi(h, 'GET', `/restore-jobs/${job.id}/files`, { token: source.token })).status).toBe(404);
    expect((await callApi(h, 'POST', `/restore-jobs/${job.id}/progress`, { token: source.token, json: progress })).status).toBe(404);
    const badCursor = await callApi<{ message: string }>(h, 'GET', `/restore-jobs/${job.id}/files?cursor=9:x`, { token: target.token });
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.message).toMatch(/^cursor/);
    const badProgress = await callApi<{ message: string }>(h, 'POST', `/restore-jobs/${job.id}/progress`, { token: target.token, json: { ...progress, filesDone: -1 } });
    expect(badProgress.status).toBe(400);
    expect(badProgress.body.message).toContain('filesDone');

    expect((await callApi<{ cancelRequested: boolean }>(h, 'POST', `/restore-jobs/${job.id}/progress`, { token: target.token, json: progress })).body).toEqual({ cancelRequested: false });
    expect((await callApi(h, 'POST', `/restore-jobs/${job.id}/finish`, { token: target.token, json: finish })).status).toBe(200);
    const [row] = await h.ctx.database.db.select().from(restoreJobs).where(eq(restoreJobs.id, job.id));
    expect(row).toMatchObject({ status: 'succeeded', progress, result: { filesRestored: 2, bytesRestored: 10, filesFailed: 0, failures: [], command: null } });
    // Ended: no more pages, progress or a second finish.
    expect((await callApi(h, 'POST', `/restore-jobs/${job.id}/finish`, { token: target.token, json: finish })).status).toBe(409);
    expect((await callApi(h, 'GET', `/restore-jobs/${job.id}/files`, { token: target.token })).status).toBe(409);
    await expect(cancelRestoreJob(h.ctx, aliceViewer(), actor(), job.id)).rejects.toThrow(/already ended/);
  });

  it('refuses another owner, names bad fields, and keeps jobs from crossing owners after a move', async () => {
    const mine = await registerAgent(h, alice, 'laptop');
    const mine2 = await registerAgent(h, alice, 'desktop');
    const theirs = await registerAgent(h, bob, 'bob-box');
    await expect(createRestoreJob(h.ctx, aliceViewer(), actor(), request(mine.clientId, theirs.clientId))).rejects.toThrow(/^targetClientId/);
    await expect(createRestoreJob(h.ctx, aliceViewer(), actor(), request(theirs.clientId, mine.clientId))).rejects.toThrow('no such client');
    // An admin may act for anyone, but still not across owners.
    await expect(createRestoreJob(h.ctx, { userId: 'x', isAdmin: true }, SYSTEM_ACTOR, request(mine.clientId, theirs.clientId))).rejects.toThrow(/one owner|belong to the owner/);
    await expect(createRestoreJob(h.ctx, aliceViewer(), actor(), request(mine.clientId, mine.clientId, { paths: ['relative'] }))).rejects.toThrow(/^paths/);
    await expect(createRestoreJob(h.ctx, aliceViewer(), actor(), request(mine.clientId, mine.clientId, { paths: [] }))).rejects.toThrow(/^paths/);
    await expect(createRestoreJob(h.ctx, aliceViewer(), actor(), request(mine.clientId, mine.clientId, { targetDir: '/' }))).rejects.toThrow(/^targetDir/);
    await expect(createRestoreJob(h.ctx, aliceViewer(), actor(), request(mine.clientId, mine.clientId, { postCommandTimeoutSeconds: 0 }))).rejects.toThrow(/^postCommandTimeoutSeconds/);
    await expect(createRestoreJob(h.ctx, aliceViewer(), actor(), { ...request(mine.clientId, mine.clientId), asOf: new Date(Date.now() + 86_400_000) })).rejects.toThrow(/^asOf/);

    const job = await createRestoreJob(h.ctx, aliceViewer(), actor(), request(mine.clientId, mine2.clientId));
    await moveClient(h.ctx, mine2.clientId, bob.id, SYSTEM_ACTOR);
    expect((await claim(mine2.token)).status).toBe(204);
    const [row] = await h.ctx.database.db.select().from(restoreJobs).where(eq(restoreJobs.id, job.id));
    expect(row).toMatchObject({ status: 'failed', error: expect.stringMatching(/no longer belong to one owner/) });
  });

  it('claims the oldest first, ends a job cut off by a restart, and cancels queued and running jobs', async () => {
    const source = await registerAgent(h, alice, 'src');
    const target = await registerAgent(h, alice, 'dst');
    const one = await createRestoreJob(h.ctx, aliceViewer(), actor(), request(source.clientId, target.clientId, { paths: ['/one'] }));
    const two = await createRestoreJob(h.ctx, aliceViewer(), actor(), request(source.clientId, target.clientId, { paths: ['/two'] }));
    const three = await createRestoreJob(h.ctx, aliceViewer(), actor(), request(source.clientId, target.clientId, { paths: ['/three'] }));
    expect((await claim(target.token)).body.jobId).toBe(one.id);
    // The agent started again without finishing `one`: the next claim ends it as interrupted.
    expect((await claim(target.token)).body.jobId).toBe(two.id);
    const [interrupted] = await h.ctx.database.db.select().from(restoreJobs).where(eq(restoreJobs.id, one.id));
    expect(interrupted).toMatchObject({ status: 'failed', error: expect.stringMatching(/interrupted/) });

    expect(await cancelRestoreJob(h.ctx, aliceViewer(), actor(), three.id)).toBe('cancelled');
    expect(await cancelRestoreJob(h.ctx, aliceViewer(), actor(), two.id)).toBe('running');
    const answer = await callApi<{ cancelRequested: boolean }>(h, 'POST', `/restore-jobs/${two.id}/progress`, { token: target.token, json: progress });
    expect(answer.body.cancelRequested).toBe(true);
    expect((await callApi(h, 'POST', `/restore-jobs/${two.id}/finish`, { token: target.token, json: { ...finish, status: 'cancelled', error: 'cancelled on the dashboard' } })).status).toBe(200);
    expect((await claim(target.token)).status).toBe(204);
    // Bob sees none of it.
    await expect(cancelRestoreJob(h.ctx, { userId: bob.id, isAdmin: false }, SYSTEM_ACTOR, two.id)).rejects.toThrow('no such restore job');
  });

  it('the sweep queues each due time once, skips a time while the previous job runs, and sets the next time', async () => {
    const source = await registerAgent(h, alice, 'nightly-src');
    const target = await registerAgent(h, alice, 'nightly-dst');
    const created = new Date('2026-12-01T12:00:00Z');
    const schedule = await createRestoreSchedule(h.ctx, aliceViewer(), actor(), { ...request(source.clientId, target.clientId, { paths: ['/dumps/app.sql'] }), cron: '0 4 * * *', intervalSeconds: 86_400, timeZone: 'Europe/Berlin' }, created);
    // 04:00 in Berlin is 03:00 UTC in December.
    expect(schedule.nextRunAt?.toISOString()).toBe('2026-12-02T03:00:00.000Z');
    await expect(createRestoreSchedule(h.ctx, aliceViewer(), actor(), { ...request(source.clientId, target.clientId), cron: 'every night', intervalSeconds: 86_400, timeZone: 'UTC' }, created)).rejects.toThrow(/^cron/);
    await expect(createRestoreSchedule(h.ctx, aliceViewer(), actor(), { ...request(source.clientId, target.clientId), cron: null, intervalSeconds: 10, timeZone: 'UTC' }, created)).rejects.toThrow(/^intervalSeconds/);
    await expect(createRestoreSchedule(h.ctx, aliceViewer(), actor(), { ...request(source.clientId, target.clientId), cron: null, intervalSeconds: 3600, timeZone: 'Mars/Olympus' }, created)).rejects.toThrow(/^timeZone/);

    const jobsOf = () => h.ctx.database.db.select().from(restoreJobs).where(eq(restoreJobs.scheduleId, schedule.id));
    expect((await sweepRestoreSchedules(h.ctx, new Date('2026-12-02T02:59:00Z'))).queued).toBe(0);
    const at = new Date('2026-12-02T03:00:30Z');
    const [a, b] = await Promise.all([sweepRestoreSchedules(h.ctx, at), sweepRestoreSchedules(h.ctx, at)]);
    expect(a!.queued + b!.queued).toBe(1);
    const jobs = await jobsOf();
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ asOf: at, paths: ['/dumps/app.sql'], status: 'queued', createdByName: 'schedule' });
    const [row] = await h.ctx.database.db.select().from(restoreSchedules).where(eq(restoreSchedules.id, schedule.id));
    expect(row!.nextRunAt?.toISOString()).toBe('2026-12-03T03:00:00.000Z');
    // The next night the first job still waits for its agent: skipped, not stacked.
    expect(await sweepRestoreSchedules(h.ctx, new Date('2026-12-03T03:00:05Z'))).toEqual({ queued: 0, skipped: 1 });
    expect(await jobsOf()).toHaveLength(1);
  });
});
