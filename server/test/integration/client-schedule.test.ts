import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import type { RunStats } from '@cairn/shared';
import { evaluateClientAlerts } from '../../src/alerts/alert-engine.ts';
import { alerts, clients } from '../../src/db/schema.ts';
import { updateClientSettings } from '../../src/services/clients.service.ts';
import { SYSTEM_ACTOR } from '../../src/services/users.service.ts';
import { addUser, callApi, registerAgent, startHarness, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const stats: RunStats = { filesScanned: 1, filesChanged: 1, filesDeleted: 0, filesFailed: 0, bytesScanned: 1, bytesUploaded: 1 };

describe.each(testDatabaseKinds())('client schedules (%s)', (kind) => {
  let h: Harness;
  let alice: Awaited<ReturnType<typeof addUser>>;

  beforeAll(async () => {
    h = await startHarness(kind);
    alice = await addUser(h, 'alice');
  });
  afterAll(() => h?.close());

  it('a cron schedule with zone and window reaches the agent in /config and in every ping', async () => {
    const reg = await registerAgent(h, alice, 'cron-box');
    const schedule = { cron: '0 3 * * 1-5', timeZone: 'Europe/Berlin', window: { start: '01:00', end: '05:00' } };
    await updateClientSettings(h.ctx, reg.clientId, { schedule }, SYSTEM_ACTOR);
    const config = await callApi(h, 'GET', '/config', { token: reg.token });
    expect(config.body).toMatchObject({ backupIntervalSeconds: 3600, schedule: { intervalSeconds: 3600, ...schedule } });
    const ping = await callApi(h, 'POST', '/ping', { token: reg.token, json: {} });
    expect(ping.body).toMatchObject({ schedule: { intervalSeconds: 3600, ...schedule } });
  });

  it.each([
    [{ cron: '0 3 * *', timeZone: 'UTC', window: null }, 'cron: must have five fields'],
    [{ cron: '0 3 * * *', timeZone: 'Mars/Olympus', window: null }, 'timeZone: unknown time zone "Mars/Olympus"'],
    [{ cron: null, timeZone: 'UTC', window: { start: '25:00', end: '06:00' } }, 'backupWindow: start and end are times of day'],
    [{ cron: '0 12 * * *', timeZone: 'UTC', window: { start: '22:00', end: '06:00' } }, 'backupWindow: no time of the cron expression'],
  ])('refuses %j with a 400 naming the field, changing nothing', async (schedule, message) => {
    const reg = await registerAgent(h, alice, `bad-${message.split(':')[0]}-${Math.random().toString(36).slice(2, 8)}`);
    const error = await updateClientSettings(h.ctx, reg.clientId, { schedule }, SYSTEM_ACTOR).catch((e: unknown) => e);
    expect(error).toMatchObject({ statusCode: 400 });
    expect((error as Error).message).toContain(message);
    const [row] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, reg.clientId));
    expect(row?.scheduleCron).toBeNull();
    expect(row?.scheduleTimeZone).toBe('UTC');
  });

  it('the missed-backup alert measures a weekday cron by its longest gap, Friday to Monday', async () => {
    const reg = await registerAgent(h, alice, 'weekdays');
    await updateClientSettings(h.ctx, reg.clientId, { backupIntervalSeconds: 3600, schedule: { cron: '0 3 * * 1-5', timeZone: 'UTC', window: null } }, SYSTEM_ACTOR);
    const runId = ((await callApi<{ runId: string }>(h, 'POST', '/runs', { token: reg.token, json: {} })).body).runId;
    expect((await callApi(h, 'POST', `/runs/${runId}/finish`, { token: reg.token, json: { status: 'succeeded', stats, preCommands: [] } })).status).toBe(200);
    const [row] = await h.ctx.database.db.select().from(clients).where(eq(clients.id, reg.clientId));
    const lastBackup = row!.lastBackupAt!.getTime();
    const missed = async () => (await h.ctx.database.db.select().from(alerts).where(eq(alerts.clientId, reg.clientId))).filter((a) => a.type === 'missed_backup' && a.state === 'open');
    // With the hourly interval, 2 days of silence would be far past 2x; with the cron's 3-day weekend gap it is on time.
    await evaluateClientAlerts(h.ctx, reg.clientId, { now: new Date(lastBackup + 2 * 86_400_000) });
    expect(await missed()).toHaveLength(0);
    // Twice the longest gap (6 days) and more: missed.
    await evaluateClientAlerts(h.ctx, reg.clientId, { now: new Date(lastBackup + 7 * 86_400_000) });
    const open = await missed();
    expect(open).toHaveLength(1);
    expect(open[0]?.message).toContain('expected at most 72 h apart, tolerance 2x');
  });
});
