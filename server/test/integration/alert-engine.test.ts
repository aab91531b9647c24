import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileVersion, PreCommandResult, RunStats } from '@cairn/shared';
import { acknowledgeAlert, evaluateClientAlerts, evaluateServerAlerts, runAlertEngine } from '../../src/alerts/alert-engine.ts';
import type { AlertEvent, AlertNotifier } from '../../src/alerts/alert-event.ts';
import { loadAlertDefaultsOverride, saveAlertDefaults } from '../../src/alerts/alert-settings.ts';
import { and, asc, eq, isNull, ne, sql } from 'drizzle-orm';
import { alerts, backupRuns, chunks, clients, fileVersions, users } from '../../src/db/schema.ts';
import { S3BlobStore } from '../../src/blob/s3-blob-store.ts';
import { gatherStorageFacts } from '../../src/alerts/storage-filling.ts';
import { sweepRetention } from '../../src/services/retention.service.ts';
import { addUser, callApi, fileUpsert, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const usual: RunStats = { filesScanned: 10_000, filesChanged: 20, filesDeleted: 0, filesFailed: 0, bytesScanned: 1000, bytesUploaded: 100 };
const HOUR = 3600_000;
const run = promisify(execFile);

/** Keeps every event the engine hands over, as a real notifier would queue them. */
class RecordingNotifier implements AlertNotifier {
  readonly events: AlertEvent[] = [];
  async notify(events: readonly AlertEvent[]): Promise<void> {
    this.events.push(...events);
  }
}

describe.each(testDatabaseKinds())('alert engine (%s)', (kind) => {
  let h: Harness;
  let notifier: RecordingNotifier;

  beforeAll(async () => {
    h = await startHarness(kind);
    notifier = new RecordingNotifier();
    h.ctx.alertNotifier = notifier;
  });
  afterAll(() => h?.close());

  async function agentFor(username: string, retention: { retentionVersions?: number } = {}) {
    const user = await addUser(h, username, retention);
    const reg = await registerAgent(h, user, `${username}-box`);
    const post = <T = Record<string, unknown>>(route: string, json: unknown) => callApi<T>(h, 'POST', route, { token: reg.token, json });
    return {
      ...reg,
      /** One run; with `files`, it uploads and commits them first. */
      async run(finish: { status: 'succeeded' | 'partial' | 'failed'; stats?: RunStats; preCommands?: PreCommandResult[] }, files: Record<string, Buffer> = {}) {
        if (Object.keys(files).length > 0) await upload(h, reg.token, Object.values(files));
        const runId = (await post<{ runId: string }>('/runs', {})).body.runId;
        if (Object.keys(files).length > 0) {
          const changes = await post(`/runs/${runId}/changes`, { upserts: Object.entries(files).map(([p, data]) => fileUpsert(p, data)), deletes: [] });
          expect(changes.status).toBe(200);
        }
        const finished = await post(`/runs/${runId}/finish`, { stats: usual, preCommands: [], ...finish });
        expect(finished.status).toBe(200);
      },
      async alertsOfClient() {
        return h.ctx.database.db.select().from(alerts).where(eq(alerts.clientId, reg.clientId));
      },
      async versions(path: string) {
        return (await callApi<{ versions: FileVersion[] }>(h, 'GET', `/versions?path=${encodeURIComponent(path)}`, { token: reg.token })).body.versions;
      },
    };
  }

  it('a client whose runs start failing gets exactly one open alert, resolved by the next successful run', async () => {
    const agent = await agentFor('failing-alerts');
    await agent.run({ status: 'succeeded' });
    expect(await agent.alertsOfClient()).toEqual([]);

    for (let i = 0; i < 3; i++) await agent.run({ status: 'failed' });
    await runAlertEngine(h.ctx);
    const open = await agent.alertsOfClient();
    expect(open.map((a) => [a.type, a.dedupeKey, a.state, a.severity])).toEqual([['failing', 'failing:run', 'open', 'critical']]);
    const opened = notifier.events.filter((e) => e.kind === 'opened' && e.alert.clientId === agent.clientId);
    expect(opened).toHaveLength(1);
    expect(opened[0]!.alert).toMatchObject({ clientName: 'failing-alerts-box', observed: 'last run failed', reference: 'succeeded' });

    await agent.run({ status: 'succeeded' });
    const after = await agent.alertsOfClient();
    expect(after.map((a) => [a.dedupeKey, a.state])).toEqual([['failing:run', 'resolved']]);
    expect(after[0]!.resolvedAt).not.toBeNull();
    expect(notifier.events.filter((e) => e.kind === 'resolved' && e.alert.clientId === agent.clientId).map((e) => e.alert.id)).toEqual([open[0]!.id]);
  });

  it('a pre-command that fails opens its own alert, naming the command', async () => {
    const agent = await agentFor('precommand-alerts');
    const failed: PreCommandResult = { command: 'pg_dump -f /dumps/db.sql', source: 'server', exitCode: 2, durationMs: 5, timedOut: false, output: 'no such database' };
    await agent.run({ status: 'partial', preCommands: [failed] });
    await agent.run({ status: 'partial', preCommands: [failed] });
    const open = await agent.alertsOfClient();
    expect(open.map((a) => a.dedupeKey).sort()).toEqual(['failing:pre-command:pg_dump -f /dumps/db.sql', 'failing:run']);
    expect(open.find((a) => a.dedupeKey.startsWith('failing:pre-command'))!.observed).toBe('exited with 2');
  });

  it('the periodic pass opens a missed-backup alert once the interval times the tolerance has passed', async () => {
    const agent = await agentFor('missed-alerts');
    await agent.run({ status: 'succeeded' });
    await runAlertEngine(h.ctx);
    expect((await agent.alertsOfClient()).map((a) => a.type)).not.toContain('missed_backup');
    // The client's interval is one hour, the tolerance 2x: three hours on, the backup is missed (and the agent silent).
    const later = new Date(Date.now() + 3 * HOUR);
    await runAlertEngine(h.ctx, { now: later });
    await runAlertEngine(h.ctx, { now: later });
    const keys = (await agent.alertsOfClient()).filter((a) => a.state === 'open').map((a) => a.dedupeKey).sort();
    expect(keys).toEqual(['failing:agent-silent', 'missed_backup']);
  });

  it('a server-wide default threshold reaches a client without its own value, while a client override still wins', async () => {
    const plain = await agentFor('defaults-plain');
    const strict = await agentFor('defaults-strict');
    await plain.run({ status: 'succeeded' });
    await strict.run({ status: 'succeeded' });
    const actor = { userId: null, name: 'test' };
    // Built in: missed after 2 intervals. Server-wide now 4; "strict" keeps 2 as its own value.
    await saveAlertDefaults(h.ctx, { missedBackup: { tolerance: 4 } }, actor);
    await h.ctx.database.db.update(clients).set({ alertSettings: { missedBackup: { tolerance: 2 } } }).where(eq(clients.id, strict.clientId));
    try {
      const missed = async (agent: typeof plain) => (await agent.alertsOfClient()).filter((a) => a.type === 'missed_backup' && a.state === 'open').length;
      const threeHoursOn = new Date(Date.now() + 3 * HOUR);
      await evaluateClientAlerts(h.ctx, plain.clientId, { now: threeHoursOn });
      await evaluateClientAlerts(h.ctx, strict.clientId, { now: threeHoursOn });
      expect(await missed(plain)).toBe(0);
      expect(await missed(strict)).toBe(1);
      await evaluateClientAlerts(h.ctx, plain.clientId, { now: new Date(Date.now() + 5 * HOUR) });
      expect(await missed(plain)).toBe(1);
    } finally {
      await saveAlertDefaults(h.ctx, null, actor);
    }
    expect(await loadAlertDefaultsOverride(h.ctx.database.db)).toBeNull();
  });

  it('a client with an open mass-change alert keeps its old versions through a sweep until it is acknowledged', async () => {
    const agent = await agentFor('mass-change', { retentionVersions: 2 });
    for (let i = 0; i < 6; i++) await agent.run({ status: 'succeeded' }, { '/data/doc.txt': Buffer.from(`good version ${i}`) });
    expect(await agent.versions('/data/doc.txt')).toHaveLength(2);
    expect(await agent.alertsOfClient()).toEqual([]);

    // Ransomware: nearly every file rewritten in one run, then again in the next.
    const encrypted = { ...usual, filesChanged: 9500 };
    await agent.run({ status: 'succeeded', stats: encrypted }, { '/data/doc.txt': Buffer.from('encrypted 1') });
    const [alert] = await agent.alertsOfClient();
    expect(alert).toMatchObject({ type: 'mass_change', state: 'open', observed: '9500 of 10000 files changed' });
    await agent.run({ status: 'succeeded', stats: encrypted }, { '/data/doc.txt': Buffer.from('encrypted 2') });
    await agent.run({ status: 'succeeded' }, { '/data/doc.txt': Buffer.from('encrypted 3') });
    const sweep = await sweepRetention(h.ctx);
    expect(sweep.ran).toBe(true);
    const kept = await agent.versions('/data/doc.txt');
    expect(kept).toHaveLength(5);
    // The condition cleared with the normal last run, but the alert stays open until someone looked.
    await evaluateClientAlerts(h.ctx, agent.clientId);
    expect((await agent.alertsOfClient()).map((a) => a.state)).toEqual(['open']);

    const [admin] = await h.ctx.database.db.select().from(users).limit(1);
    expect(await acknowledgeAlert(h.ctx.database.db, alert!.id, { userId: admin!.id, name: admin!.username })).toBe(true);
    await sweepRetention(h.ctx);
    expect(await agent.versions('/data/doc.txt')).toHaveLength(2);
    await evaluateClientAlerts(h.ctx, agent.clientId);
    expect((await agent.alertsOfClient()).map((a) => a.state)).toEqual(['resolved']);
  });

  it('two passes at once open one alert, not two (the partial unique index)', async () => {
    const agent = await agentFor('racing-alerts');
    await agent.run({ status: 'failed' });
    await h.ctx.database.db.delete(alerts).where(eq(alerts.clientId, agent.clientId));
    await Promise.all([evaluateClientAlerts(h.ctx, agent.clientId), evaluateClientAlerts(h.ctx, agent.clientId), evaluateClientAlerts(h.ctx, agent.clientId)]);
    expect((await agent.alertsOfClient()).map((a) => a.dedupeKey)).toEqual(['failing:run']);
  });

  it('a notifier that breaks its contract and throws does not fail the finish; the alert still opens', async () => {
    const agent = await agentFor('broken-notifier');
    h.ctx.alertNotifier = { notify: async () => Promise.reject(new Error('smtp down')) };
    try {
      await agent.run({ status: 'failed' });
    } finally {
      h.ctx.alertNotifier = notifier;
    }
    expect((await agent.alertsOfClient()).map((a) => [a.dedupeKey, a.state])).toEqual([['failing:run', 'open']]);
  });

  /** Random bytes: they do not compress or deduplicate, so sizes are what the versions say. */
  const dump = (bytes: number) => Buffer.from(Array.from({ length: bytes }, () => Math.floor(Math.random() * 256)));
  const MiB = 1024 * 1024;

  /** The client's watched-folder alerts (a pass at a later `now` opens missed-backup ones too, beside the point here). */
  async function watchedAlerts(clientId: string) {
    const rows = await h.ctx.database.db.select().from(alerts).where(eq(alerts.clientId, clientId)).orderBy(asc(alerts.openedAt));
    return rows.filter((a) => a.type === 'expected_file_missing' || a.type === 'file_shrank');
  }

  async function watch(clientId: string, folders: { path: string; maxAgeHours: number }[]) {
    await h.ctx.database.db.update(clients).set({ alertSettings: { expectedFile: { folders } } }).where(eq(clients.id, clientId));
  }

  it('a watched folder without a new file for longer than its hours opens expected_file_missing; a new version resolves it', async () => {
    const agent = await agentFor('watched-missing');
    await watch(agent.clientId, [{ path: '/dumps', maxAgeHours: 26 }]);
    await agent.run({ status: 'succeeded' }, { '/dumps/app.sql': Buffer.from('day one'), '/dumpsters/other.txt': Buffer.from('x') });
    expect(await watchedAlerts(agent.clientId)).toEqual([]);

    // The dump stored 25 h ago is still fresh enough; 27 h ago, it is missing. /dumpsters is not under /dumps.
    const storedHoursAgo = (hours: number) =>
      h.ctx.database.db.update(fileVersions).set({ validFrom: new Date(Date.now() - hours * HOUR) }).where(sql`${fileVersions.pathId} in (select id from client_paths where client_id = ${agent.clientId})`);
    await storedHoursAgo(25);
    await evaluateClientAlerts(h.ctx, agent.clientId);
    expect(await watchedAlerts(agent.clientId)).toEqual([]);
    await storedHoursAgo(27);
    await evaluateClientAlerts(h.ctx, agent.clientId);
    const open = await watchedAlerts(agent.clientId);
    expect(open.map((a) => [a.type, a.dedupeKey, a.path, a.state, a.severity])).toEqual([['expected_file_missing', 'expected_file_missing:/dumps', '/dumps', 'open', 'warning']]);
    expect(open[0]!.observed).toMatch(/^newest file version 27 h old$/);

    // A changed file elsewhere does not count; a new version under /dumps does (the engine runs after the finish).
    await agent.run({ status: 'succeeded' }, { '/dumpsters/other.txt': Buffer.from('y') });
    expect((await watchedAlerts(agent.clientId)).map((a) => a.state)).toEqual(['open']);
    await agent.run({ status: 'succeeded' }, { '/dumps/app.sql': Buffer.from('day two') });
    expect((await watchedAlerts(agent.clientId)).map((a) => [a.dedupeKey, a.state])).toEqual([['expected_file_missing:/dumps', 'resolved']]);
  });

  it('a dump under a watched folder that shrinks to a tenth opens file_shrank after the run, naming path and sizes; a normal-sized version resolves it', async () => {
    const agent = await agentFor('watched-shrank');
    await watch(agent.clientId, [{ path: '/dumps', maxAgeHours: 26 }]);
    await agent.run({ status: 'succeeded' }, { '/dumps/app.sql': dump(3 * MiB), '/elsewhere/big.bin': dump(3 * MiB) });
    // A file outside the watched folders may shrink as it likes.
    await agent.run({ status: 'succeeded' }, { '/dumps/app.sql': dump(3 * MiB), '/elsewhere/big.bin': dump(100) });
    expect(await watchedAlerts(agent.clientId)).toEqual([]);

    await agent.run({ status: 'succeeded' }, { '/dumps/app.sql': dump(0.3 * MiB) });
    const open = await watchedAlerts(agent.clientId);
    expect(open.map((a) => [a.type, a.dedupeKey, a.path, a.observed, a.reference])).toEqual([
      ['file_shrank', 'file_shrank:/dumps/app.sql', '/dumps/app.sql', '307.2 KiB', 'previous version 3.00 MiB'],
    ]);
    const opened = notifier.events.filter((e) => e.kind === 'opened' && e.alert.clientId === agent.clientId);
    expect(opened.map((e) => e.alert.path)).toEqual(['/dumps/app.sql']);

    // Still truncated on the next night: the same alert stays open; back to its size: resolved.
    await agent.run({ status: 'succeeded' }, { '/dumps/app.sql': dump(0.3 * MiB) });
    expect((await watchedAlerts(agent.clientId)).map((a) => a.state)).toEqual(['open']);
    await runAlertEngine(h.ctx);
    expect((await watchedAlerts(agent.clientId)).map((a) => a.state)).toEqual(['open']);
    await agent.run({ status: 'succeeded' }, { '/dumps/app.sql': dump(3 * MiB) });
    expect((await watchedAlerts(agent.clientId)).map((a) => [a.dedupeKey, a.state])).toEqual([['file_shrank:/dumps/app.sql', 'resolved']]);
  });

  it("a client keeping one version per path: the shrunk dump's alert outlives the prune of its reference, until a new version comes", async () => {
    const agent = await agentFor('watched-shrank-one-version', { retentionVersions: 1 });
    await watch(agent.clientId, [{ path: '/dumps', maxAgeHours: 26 }]);
    await agent.run({ status: 'succeeded' }, { '/dumps/app.sql': dump(3 * MiB) });
    await agent.run({ status: 'succeeded' }, { '/dumps/app.sql': dump(0.3 * MiB) });
    expect((await agent.versions('/dumps/app.sql')).map((v) => v.size)).toEqual([Math.floor(0.3 * MiB)]);
    expect((await watchedAlerts(agent.clientId)).map((a) => [a.dedupeKey, a.state])).toEqual([['file_shrank:/dumps/app.sql', 'open']]);

    // The periodic pass sees one version and nothing to compare; the file is still the truncated one.
    await runAlertEngine(h.ctx);
    expect((await watchedAlerts(agent.clientId)).map((a) => a.state)).toEqual(['open']);
    await agent.run({ status: 'succeeded' }, { '/dumps/app.sql': dump(3 * MiB) });
    expect((await watchedAlerts(agent.clientId)).map((a) => a.state)).toEqual(['resolved']);

    // Shrunk again, then the folder is no longer watched: that releases the alert.
    await agent.run({ status: 'succeeded' }, { '/dumps/app.sql': dump(0.3 * MiB) });
    expect((await watchedAlerts(agent.clientId)).map((a) => a.state)).toEqual(['resolved', 'open']);
    await watch(agent.clientId, [{ path: '/srv', maxAgeHours: 26 }]);
    await evaluateClientAlerts(h.ctx, agent.clientId);
    expect((await watchedAlerts(agent.clientId)).map((a) => a.state)).toEqual(['resolved', 'resolved']);
  });

  it('the periodic pass measures the blob store disk with statfs and opens one server-wide storage_filling alert past the mark', async () => {
    const serverWide = () => h.ctx.database.db.select().from(alerts).where(and(isNull(alerts.clientId), ne(alerts.state, 'resolved')));
    // Marks no real disk reaches first, then marks every disk is past: the same real statfs figure on both sides.
    const never = { warnPercent: 100.1, criticalPercent: 100.1, forecastDays: 0 };
    await evaluateServerAlerts(h.ctx, { storageSettings: never });
    expect(await serverWide()).toEqual([]);

    await runAlertEngine(h.ctx, { storageSettings: { warnPercent: 0.0001, criticalPercent: 100.1, forecastDays: 0 } });
    await runAlertEngine(h.ctx, { storageSettings: { warnPercent: 0.0001, criticalPercent: 100.1, forecastDays: 0 } });
    const open = await serverWide();
    expect(open.map((a) => [a.type, a.dedupeKey, a.severity, a.clientId])).toEqual([['storage_filling', 'storage_filling', 'warning', null]]);
    expect(open[0]!.message).toMatch(/^the blob store disk is filling: .+ of .+ used \(\d+%\)/);
    const event = notifier.events.find((e) => e.kind === 'opened' && e.alert.type === 'storage_filling');
    expect(event?.alert).toMatchObject({ clientId: null, clientName: null, ownerId: null });

    await evaluateServerAlerts(h.ctx, { storageSettings: never });
    expect(await serverWide()).toEqual([]);
  });

  it('forecasts from what runs stored over the last days: growth that fills the disk within 14 days warns below the high-water mark', async () => {
    const agent = await agentFor('storage-growth');
    const facts = await gatherStorageFacts(h.ctx);
    expect(facts).not.toBeNull();
    const { capacityBytes, usedBytes } = facts!;
    // The used share is the one df reports for the blob directory (df rounds up to a whole percent).
    const df = (await run('df', ['-P', path.dirname(h.ctx.blobs.location)])).stdout.trim().split('\n').at(-1)!.split(/\s+/);
    expect(Math.ceil((usedBytes / capacityBytes) * 100)).toBeGreaterThanOrEqual(Number.parseInt(df[4]!, 10) - 1);
    expect(Math.ceil((usedBytes / capacityBytes) * 100)).toBeLessThanOrEqual(Number.parseInt(df[4]!, 10) + 1);
    // Runs that each stored a tenth of what is left free, one a day for two weeks: full in about ten days.
    const perDay = Math.ceil((capacityBytes - usedBytes) / 10);
    const now = Date.now();
    await h.ctx.database.db.insert(backupRuns).values(
      Array.from({ length: 14 }, (_, i) => ({
        clientId: agent.clientId,
        status: 'succeeded' as const,
        startedAt: new Date(now - (i + 1) * 24 * HOUR),
        finishedAt: new Date(now - (i + 1) * 24 * HOUR + 60_000),
        bytesNew: perDay,
      })),
    );
    const growing = await gatherStorageFacts(h.ctx);
    expect(growing!.samples.at(-1)!.value).toBe(growing!.usedBytes);
    expect(growing!.samples[0]!.value).toBeLessThan(growing!.usedBytes - 12 * perDay);

    const marksOutOfReach = { warnPercent: 100.1, criticalPercent: 100.1, forecastDays: 14 };
    await evaluateServerAlerts(h.ctx, { storageSettings: marksOutOfReach });
    const [open] = await h.ctx.database.db.select().from(alerts).where(and(isNull(alerts.clientId), ne(alerts.state, 'resolved')));
    expect(open).toMatchObject({ type: 'storage_filling', severity: 'warning' });
    expect(open!.observed).toMatch(/; full in \d+ days? at the recent growth$/);

    // The same growth with a 5-day horizon is no alarm.
    await evaluateServerAlerts(h.ctx, { storageSettings: { ...marksOutOfReach, forecastDays: 5 } });
    expect(await h.ctx.database.db.select().from(alerts).where(and(isNull(alerts.clientId), ne(alerts.state, 'resolved')))).toEqual([]);
    await h.ctx.database.db.delete(backupRuns).where(eq(backupRuns.clientId, agent.clientId));
  });

  it('an S3 store is measured as the stored chunks against S3_CAPACITY_BYTES, and has no figure without it', async () => {
    const s3 = { bucket: 'unused', endpoint: 'http://127.0.0.1:9', region: 'us-east-1', forcePathStyle: true, accessKeyId: undefined, secretAccessKey: undefined };
    // Only the kind of the store and the database are read: no request reaches the (absent) S3 endpoint.
    const blobs = new S3BlobStore(s3);
    const ctxWith = (capacity: number | undefined) => ({ ...h.ctx, blobs, config: { ...h.ctx.config, s3, alerts: { ...h.ctx.config.alerts, s3CapacityBytes: capacity } } });
    expect(await gatherStorageFacts(ctxWith(undefined))).toBeNull();
    const [stored] = await h.ctx.database.db.select({ total: sql<string>`coalesce(sum(${chunks.size}), 0)` }).from(chunks);
    const facts = await gatherStorageFacts(ctxWith(10 * 1024 ** 3));
    expect(facts).toMatchObject({ store: 's3', capacityBytes: 10 * 1024 ** 3, usedBytes: Number(stored!.total) });
    expect(facts!.usedBytes).toBeGreaterThan(0);
    await blobs.close();
  });
});
