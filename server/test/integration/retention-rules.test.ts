import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import type { FilesPage, FileVersion } from '@cairn/shared';
import { rowsOf } from '../../src/db/database.ts';
import { updateClientSettings } from '../../src/services/clients.service.ts';
import { NO_RESTORE_POINTS, type StoredRetentionRules } from '../../src/services/retention-rules.ts';
import { previewClientPrune, prunedPathsAsOf, pruneClientVersions } from '../../src/services/retention.service.ts';
import { setUserRetention, SYSTEM_ACTOR } from '../../src/services/users.service.ts';
import { addUser, callApi, fileUpsert, registerAgent, startHarness, upload, type Harness } from '../helpers/agent-api-harness.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const stats = { filesScanned: 1, filesChanged: 1, filesDeleted: 0, filesFailed: 0, bytesScanned: 1, bytesUploaded: 1 };

describe.each(testDatabaseKinds())('retention rules through the server (%s)', (kind) => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(kind);
  });
  afterAll(() => h?.close());

  async function agentFor(username: string, retention: { retentionVersions?: number; retentionDays?: number | null } = {}) {
    const user = await addUser(h, username, retention);
    const reg = await registerAgent(h, user, `${username}-box`);
    const post = <T = Record<string, unknown>>(route: string, json: unknown) => callApi<T>(h, 'POST', route, { token: reg.token, json });
    const db = h.ctx.database.db;
    return {
      ...reg,
      user,
      /** One run that uploads and commits `files`, then finishes (which prunes). Returns the run's finish time. */
      async backup(files: Record<string, Buffer>): Promise<Date> {
        await upload(h, reg.token, Object.values(files));
        const run = (await post<{ runId: string }>('/runs', {})).body.runId;
        expect((await post(`/runs/${run}/changes`, { upserts: Object.entries(files).map(([p, data]) => fileUpsert(p, data)), deletes: [] })).status).toBe(200);
        expect((await post(`/runs/${run}/finish`, { status: 'succeeded', stats, preCommands: [] })).status).toBe(200);
        const [row] = rowsOf<{ finished_at: string }>(await db.execute(sql`select finished_at from backup_runs where id = ${run}`));
        return new Date(row!.finished_at);
      },
      /**
       * Moves everything this client has (runs, versions) `ms` into the past: how a test gets backups an hour or a
       * day apart on the server's own clock without waiting for it.
       */
      async age(ms: number): Promise<void> {
        const shift = `${ms} milliseconds`;
        await db.execute(sql`update backup_runs set started_at = started_at - ${shift}::interval, finished_at = finished_at - ${shift}::interval
                             where client_id = ${reg.clientId}`);
        await db.execute(sql`update file_versions set valid_from = valid_from - ${shift}::interval, valid_to = valid_to - ${shift}::interval
                             where path_id in (select id from client_paths where client_id = ${reg.clientId})`);
        await db.execute(sql`update pruned_version_spans set valid_from = valid_from - ${shift}::interval, valid_to = valid_to - ${shift}::interval
                             where client_id = ${reg.clientId}`);
      },
      async finishTimes(): Promise<Date[]> {
        const rows = rowsOf<{ finished_at: string }>(await db.execute(sql`select finished_at from backup_runs where client_id = ${reg.clientId} order by finished_at desc`));
        return rows.map((r) => new Date(r.finished_at));
      },
      async treeAsOf(at: Date): Promise<string[]> {
        const page = await callApi<FilesPage>(h, 'GET', `/files?asOf=${encodeURIComponent(at.toISOString())}`, { token: reg.token });
        return page.body.files.map((f) => f.path);
      },
      async versions(path: string): Promise<FileVersion[]> {
        return (await callApi<{ versions: FileVersion[] }>(h, 'GET', `/versions?path=${encodeURIComponent(path)}`, { token: reg.token })).body.versions;
      },
      setRules(rules: StoredRetentionRules | null, override?: { versions: number | null; days: number | null }) {
        return updateClientSettings(h.ctx, reg.clientId, { retentionRules: rules, ...(override && { retention: override }) }, SYSTEM_ACTOR);
      },
    };
  }

  it('keeps whole restore points: with a 3-version override and hourly restore points, the tree as of hours earlier has every file', async () => {
    const agent = await agentFor('hourly-keeper');
    await agent.setRules({ folders: [], restorePoints: { ...NO_RESTORE_POINTS, hourly: 24 } }, { versions: 3, days: null });
    for (let i = 1; i <= 6; i++) {
      await agent.backup({ '/busy/one': Buffer.from(`one ${i}`), '/busy/two': Buffer.from(`two ${i}`), '/steady': Buffer.from('steady') });
      await agent.age(HOUR_MS);
    }
    const finishes = await agent.finishTimes();
    expect(finishes).toHaveLength(6);
    // The first backup, five hours ago, is an hourly restore point: its tree is whole although /busy/* changed 5 times since.
    for (const at of finishes) expect(await agent.treeAsOf(at)).toEqual(['/busy/one', '/busy/two', '/steady']);
    expect(await agent.versions('/busy/one')).toHaveLength(6);
    expect(await prunedPathsAsOf(h.ctx.database.db, agent.clientId, finishes[5]!)).toBe(0);
  });

  it('without restore points the 3-version override prunes the older trees, and the pruned files are counted', async () => {
    const agent = await agentFor('count-only');
    await agent.setRules(null, { versions: 3, days: null });
    for (let i = 1; i <= 6; i++) {
      await agent.backup({ '/busy/one': Buffer.from(`one ${i}`), '/busy/two': Buffer.from(`two ${i}`), '/steady': Buffer.from('steady') });
      await agent.age(HOUR_MS);
    }
    const finishes = await agent.finishTimes();
    expect(await agent.treeAsOf(finishes[2]!)).toEqual(['/busy/one', '/busy/two', '/steady']);
    expect(await agent.treeAsOf(finishes[3]!)).toEqual(['/steady']);
    expect(await prunedPathsAsOf(h.ctx.database.db, agent.clientId, finishes[3]!)).toBe(2);
    expect(await prunedPathsAsOf(h.ctx.database.db, agent.clientId, finishes[2]!)).toBe(0);
  });

  it('keeps the last N runs and, in a rule change, prunes what no rule keeps any more', async () => {
    const agent = await agentFor('last-keeper', { retentionVersions: 1 });
    await setUserRetention(h.ctx, agent.user.id, { versions: 1, days: null, rules: { folders: [], restorePoints: { ...NO_RESTORE_POINTS, last: 4 } } }, SYSTEM_ACTOR);
    for (let i = 1; i <= 6; i++) await agent.backup({ '/f': Buffer.from(`f ${i}`) });
    // The owner's rules apply (no client override): the versions visible at the last 4 runs stay.
    expect((await agent.versions('/f')).map((v) => v.validTo === null)).toEqual([true, false, false, false]);
    await setUserRetention(h.ctx, agent.user.id, { versions: 1, days: null, rules: { folders: [], restorePoints: { ...NO_RESTORE_POINTS, last: 2 } } }, SYSTEM_ACTOR);
    expect(await pruneClientVersions(h.ctx, agent.clientId)).toEqual({ pruned: 2, held: false });
    expect(await agent.versions('/f')).toHaveLength(2);
  });

  it('applies folder rules count.min_age to each path under the folder, and nothing else', async () => {
    const agent = await agentFor('folder-keeper', { retentionVersions: 100 });
    for (let day = 20; day >= 0; day--) {
      await agent.backup({ '/dumps/db.sql': Buffer.from(`dump of day -${day}`), '/home/notes': Buffer.from(`notes of day -${day}`) });
      if (day > 0) await agent.age(DAY_MS);
    }
    await agent.setRules({ folders: [{ folder: '/dumps', rules: [{ count: 3, minAgeDays: 1 }, { count: 2, minAgeDays: 15 }] }], restorePoints: NO_RESTORE_POINTS }, { versions: 1, days: null });
    const preview = await previewClientPrune(h.ctx, agent.clientId);
    expect(preview.total).toBe(20 + 17);
    expect(preview.kept.map((k) => [k.path, k.reasons])).toEqual([
      ['/dumps/db.sql', ['folder']],
      ['/dumps/db.sql', ['folder']],
      ['/dumps/db.sql', ['folder']],
    ]);
    expect(await agent.versions('/dumps/db.sql')).toHaveLength(21);

    expect(await pruneClientVersions(h.ctx, agent.clientId)).toEqual({ pruned: 37, held: false });
    const ages = (await agent.versions('/dumps/db.sql')).map((v) => Math.round((Date.now() - new Date(v.validFrom).getTime()) / DAY_MS));
    expect(ages).toEqual([0, 1, 2, 15]);
    expect(await agent.versions('/home/notes')).toHaveLength(1);
    // Five days ago both files had a version that is gone now.
    const fiveDaysAgo = new Date(Date.now() - 5 * DAY_MS);
    expect(await prunedPathsAsOf(h.ctx.database.db, agent.clientId, fiveDaysAgo)).toBe(2);
    expect(await prunedPathsAsOf(h.ctx.database.db, agent.clientId, fiveDaysAgo, '/dumps')).toBe(1);
    expect(await prunedPathsAsOf(h.ctx.database.db, agent.clientId, fiveDaysAgo, '/dump')).toBe(0);
  });

  it('simulates before saving: what would be pruned, what stays and until when, which runs are restore points', async () => {
    const agent = await agentFor('simulated', { retentionVersions: 10, retentionDays: 30 });
    for (let i = 1; i <= 3; i++) {
      await agent.backup({ '/s': Buffer.from(`s ${i}`) });
      await agent.age(DAY_MS);
    }
    const rules = { base: { versions: 2, days: 30 }, folders: [], restorePoints: { ...NO_RESTORE_POINTS, daily: 1 } };
    const preview = await previewClientPrune(h.ctx, agent.clientId, { rules });
    // Three versions: the current one (kept), the next by the base policy until 30 days after it was replaced, the
    // oldest by nothing. The newest run is the one daily restore point.
    expect(preview.total).toBe(1);
    expect(preview.kept).toHaveLength(1);
    const kept = preview.kept[0]!;
    expect(kept.reasons).toEqual(['base']);
    expect(new Date(kept.expiresAt!).getTime()).toBe(new Date(kept.validTo!).getTime() + 30 * DAY_MS);
    expect(preview.restorePoints.map((p) => p.keptBy)).toEqual([['daily']]);
    expect(preview.restorePoints[0]!.finishedAt.getTime()).toBe((await agent.finishTimes())[0]!.getTime());
    expect(await agent.versions('/s')).toHaveLength(3);
  });
});
