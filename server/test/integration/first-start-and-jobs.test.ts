import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { pino, type Logger } from 'pino';
import { sha256Hex } from '@cairn/shared';
import type { AppContext } from '../../src/app-context.ts';
import { DiskBlobStore } from '../../src/blob/disk-blob-store.ts';
import { loadServerConfig } from '../../src/config/server-config.ts';
import { alerts, backupRuns, chunks, restoreJobs, restoreSchedules } from '../../src/db/schema.ts';
import { eq } from 'drizzle-orm';
import { RESTORE_SCHEDULE_SWEEP_SECONDS, startPeriodicJobs } from '../../src/jobs/periodic-jobs.ts';
import { REDACT_PATHS } from '../../src/logger.ts';
import { startServer } from '../../src/server.ts';
import { createClient } from '../../src/services/clients.service.ts';
import { storeUploadedContent } from '../../src/services/content-store.service.ts';
import { createRestoreSchedule, restoreRequestOf } from '../../src/services/restore-jobs.service.ts';
import { createUser, ensureInitialAdmin, listUsers, SYSTEM_ACTOR, verifyUserCredentials } from '../../src/services/users.service.ts';
import { createScratchPostgres, openTestDatabase, testDatabaseKinds, type DatabaseKind } from '../helpers/test-database.ts';

/** A logger like the server's (same redaction) whose lines the test can read. */
function capturingLogger(): { log: Logger; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString());
      callback();
    },
  });
  return { log: pino({ level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink), text: () => lines.join('') };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function context(kind: DatabaseKind, env: Record<string, string> = {}) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-first-'));
  const database = await openTestDatabase(kind);
  const blobs = new DiskBlobStore(path.join(dataDir, 'blobs'));
  const capture = capturingLogger();
  const ctx: AppContext = { config: loadServerConfig({ DATA_DIR: dataDir, ...env }), database, blobs, log: capture.log };
  cleanups.push(async () => {
    await database.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  return { ctx, logs: capture.text };
}

describe.each(testDatabaseKinds())('first start and periodic jobs (%s)', (kind) => {
  it('creates the admin with a generated password printed exactly once in a marked line', async () => {
    const { ctx, logs } = await context(kind);
    const first = await ensureInitialAdmin(ctx);
    expect(first.created).toBe(true);
    const password = first.generatedPassword!;
    expect(password.length).toBeGreaterThanOrEqual(24);
    expect(logs().split(password).length - 1).toBe(1);
    expect(logs()).toContain('INITIAL ADMIN PASSWORD');
    const admin = await verifyUserCredentials(ctx.database.db, 'admin', password);
    expect(admin).toMatchObject({ username: 'admin', isAdmin: true });

    const again = await ensureInitialAdmin(ctx);
    expect(again).toEqual({ created: false, username: 'admin' });
    expect(logs().split(password).length - 1).toBe(1);
  });

  it('uses ADMIN_USERNAME / ADMIN_PASSWORD when set and never logs the password', async () => {
    const { ctx, logs } = await context(kind, { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'configured-secret' });
    expect(await ensureInitialAdmin(ctx)).toEqual({ created: true, username: 'root' });
    expect(logs()).not.toContain('configured-secret');
    expect(await verifyUserCredentials(ctx.database.db, 'root', 'configured-secret')).not.toBeNull();
  });

  it('creates nothing when users exist, and exactly one admin when two replicas start at once', async () => {
    const existing = await context(kind);
    await createUser(existing.ctx, { username: 'someone', password: 'someone-password' }, SYSTEM_ACTOR);
    expect((await ensureInitialAdmin(existing.ctx)).created).toBe(false);

    const fresh = await context(kind);
    const results = await Promise.all([ensureInitialAdmin(fresh.ctx), ensureInitialAdmin(fresh.ctx)]);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect((await listUsers(fresh.ctx.database.db)).map((u) => u.username)).toEqual(['admin']);
  });

  it('runs GC on its interval and waits for a running job when stopped', async () => {
    const { ctx } = await context(kind, { GC_INTERVAL_SECONDS: '10', GC_GRACE_SECONDS: '0', RETENTION_SWEEP_INTERVAL_SECONDS: '3600' });
    const user = await createUser(ctx, { username: 'jobs', password: 'jobs-password' }, SYSTEM_ACTOR);
    const bytes = Buffer.from('an orphan for the periodic GC');
    const { Readable } = await import('node:stream');
    await storeUploadedContent(ctx, { userId: user.id, sha256: sha256Hex(bytes), source: Readable.from([bytes]), maxBytes: 1024 });
    const chunkRows = () => ctx.database.db.select().from(chunks).where(eq(chunks.sha256, sha256Hex(bytes)));
    expect(await chunkRows()).toHaveLength(1);

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const jobs = startPeriodicJobs(ctx);
    vi.advanceTimersByTime(10_000);
    vi.useRealTimers();
    await jobs.stop();
    expect(await chunkRows()).toEqual([]);
  });

  it('runs the alert engine on its interval: a run that failed without passing the finish hook still gets its alert', async () => {
    const { ctx } = await context(kind, { ALERTS_INTERVAL_SECONDS: '10', GC_INTERVAL_SECONDS: '3600', RETENTION_SWEEP_INTERVAL_SECONDS: '3600' });
    const user = await createUser(ctx, { username: 'alerts-job', password: 'alerts-password' }, SYSTEM_ACTOR);
    const { clientId } = await createClient(ctx, user.id, { name: 'quiet-box', hostname: 'quiet' }, SYSTEM_ACTOR);
    await ctx.database.db.insert(backupRuns).values({ clientId, status: 'failed', finishedAt: new Date(), error: 'disk full' });
    expect(await ctx.database.db.select().from(alerts)).toEqual([]);

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const jobs = startPeriodicJobs(ctx);
    vi.advanceTimersByTime(10_000);
    vi.useRealTimers();
    await jobs.stop();
    const opened = await ctx.database.db.select().from(alerts);
    expect(opened.map((a) => [a.clientId, a.dedupeKey, a.state])).toEqual([[clientId, 'failing:run', 'open']]);
  });

  it('runs the restore-schedule sweep on its interval: a due schedule gets its job queued', async () => {
    const { ctx } = await context(kind, { GC_INTERVAL_SECONDS: '3600', RETENTION_SWEEP_INTERVAL_SECONDS: '3600', ALERTS_INTERVAL_SECONDS: '3600' });
    const user = await createUser(ctx, { username: 'restorer', password: 'restorer-password' }, SYSTEM_ACTOR);
    const { clientId } = await createClient(ctx, user.id, { name: 'db-box', hostname: 'db' }, SYSTEM_ACTOR);
    const schedule = await createRestoreSchedule(
      ctx,
      { userId: user.id, isAdmin: false },
      SYSTEM_ACTOR,
      { ...restoreRequestOf(clientId, { paths: ['/'], targetDir: '/restore' }), cron: null, intervalSeconds: 3600, timeZone: 'UTC' },
    );
    await ctx.database.db.update(restoreSchedules).set({ nextRunAt: new Date(Date.now() - 1000) }).where(eq(restoreSchedules.id, schedule.id));
    expect(await ctx.database.db.select().from(restoreJobs)).toEqual([]);

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const jobs = startPeriodicJobs(ctx);
    vi.advanceTimersByTime(RESTORE_SCHEDULE_SWEEP_SECONDS * 1000);
    vi.useRealTimers();
    await jobs.stop();
    const queued = await ctx.database.db.select().from(restoreJobs);
    expect(queued.map((job) => [job.scheduleId, job.targetClientId, job.status])).toEqual([[schedule.id, clientId, 'queued']]);
  });

  it('startServer creates the admin, serves, and closes with its jobs', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-start-'));
    const scratch = kind === 'postgres' ? await createScratchPostgres() : undefined;
    cleanups.push(async () => {
      await scratch?.drop();
      await rm(dataDir, { recursive: true, force: true });
    });
    const env = { DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', SECRET_KEY: 's'.repeat(40), ...(scratch && { DATABASE_URL: scratch.url }) };
    const first = capturingLogger();
    const server = await startServer(loadServerConfig(env), first.log);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect(first.text()).toContain('INITIAL ADMIN PASSWORD');
    await server.close();

    const second = capturingLogger();
    const restarted = await startServer(loadServerConfig(env), second.log);
    expect(second.text()).not.toContain('INITIAL ADMIN PASSWORD');
    await restarted.close();
  });
});
