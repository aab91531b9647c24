import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowsOf } from '../../src/db/database.ts';
import { clients, users } from '../../src/db/schema.ts';
import { NO_RESTORE_POINTS } from '../../src/services/retention-rules.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { TestAgent } from './agent-fixture.ts';
import { signedInUser, startDashboardHarness, type Browser, type DashboardHarness } from './dashboard-harness.ts';

describe.each(testDatabaseKinds())('retention rules on the dashboard (%s)', (kind) => {
  let h: DashboardHarness;
  let admin: Browser;
  let owner: { id: string; browser: Browser };
  let agent: TestAgent;

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    admin = (await signedInUser(h, 'root', true)).browser;
    owner = await signedInUser(h, 'erin');
    agent = await TestAgent.register(h.url, 'erin', 'erin-password-1', 'db-box');
    for (let i = 1; i <= 4; i++) await agent.backup([{ path: '/dumps/db.sql', content: `dump ${i}` }, { path: '/etc/app.conf', content: `conf ${i}` }]);
  });
  afterAll(() => h?.close());

  const userRules = async (id: string) => (await h.ctx.database.db.select({ r: users.retentionRules }).from(users).where(eq(users.id, id)))[0]!.r;
  const clientRow = async () => (await h.ctx.database.db.select().from(clients).where(eq(clients.id, agent.clientId)))[0]!;

  it("refuses a bad folder rule on the user's page with 400 naming the field and the rule, and saves nothing", async () => {
    await admin.get(`/users/${owner.id}`);
    const bad = await admin.post(`/users/${owner.id}/policy`, { retentionVersions: '30', retentionDays: '', folderRules: '/dumps 3.x', keepDaily: 'seven', action: 'save' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('line 1: &quot;3.x&quot; is not count.min_age');
    expect(bad.body).toMatch(/name="keepDaily"[^>]*value="seven"/);
    expect(bad.body).toContain('empty or a whole number from 0 to 10000');
    expect(bad.body).toContain('/dumps 3.x</textarea>'); // what was typed stays
    expect(await userRules(owner.id)).toEqual({ folders: [], restorePoints: NO_RESTORE_POINTS });
  });

  it("previews the user's rules (pruned now, kept with their expiry, restore points), then saves them", async () => {
    await admin.get(`/users/${owner.id}`);
    const form = { retentionVersions: '1', retentionDays: '', folderRules: '/dumps 2.0', keepLast: '1', action: 'preview' };
    const preview = await admin.post(`/users/${owner.id}/policy`, form);
    expect(preview.status).toBe(200);
    // /etc/app.conf: 3 old versions pruned; /dumps/db.sql: 2 kept by the folder rule (current and one more), 2 pruned.
    expect(preview.body).toMatch(/<strong>5<\/strong> old versions[^<]*would be pruned now; <strong>1<\/strong> old version stays/);
    expect(preview.body).toContain('Restore points kept');
    expect(preview.body).toMatch(/<td class="small">last<\/td>/);
    expect(preview.body).toContain('no fixed date');
    expect(await userRules(owner.id)).toEqual({ folders: [], restorePoints: NO_RESTORE_POINTS }); // a preview saves nothing

    const saved = await admin.post(`/users/${owner.id}/policy`, { ...form, retentionVersions: '30', action: 'save' });
    expect(saved.status).toBe(303);
    expect(await userRules(owner.id)).toEqual({ folders: [{ folder: '/dumps', rules: [{ count: 2, minAgeDays: 0 }] }], restorePoints: { ...NO_RESTORE_POINTS, last: 1 } });
    expect((await admin.get(`/users/${owner.id}`)).body).toContain('/dumps 2.0</textarea>');
  });

  it("overrides on the client's page: a preview first, then save, and a bad rule is a 400", async () => {
    const page = `/clients/${agent.clientId}`;
    expect((await owner.browser.get(page)).body).toContain('/dumps 2.0</textarea>'); // the owner's rules, shown as the start
    const bad = await owner.browser.post(`${page}/retention`, { rulesOverride: 'on', folderRules: 'dumps 3.1', action: 'save' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('line 1: start with an absolute folder path');

    const form = { retentionOverride: 'on', retentionVersions: '2', retentionDays: '30', rulesOverride: 'on', folderRules: '', keepLast: '', action: 'preview' };
    const preview = await owner.browser.post(`${page}/retention`, form);
    expect(preview.status).toBe(200);
    expect(preview.body).toContain('Preview: keep 2 versions and 30 days');
    // Each path keeps its newest old version until 30 days after it was replaced: a fixed expiry date.
    expect(preview.body).toMatch(/<strong>4<\/strong> old versions[^<]*would be pruned now; <strong>2<\/strong> old versions stay/);
    expect(preview.body).not.toContain('no fixed date');
    expect((await clientRow()).retentionRules).toBeNull();

    const saved = await owner.browser.post(`${page}/retention`, { ...form, action: 'save' });
    expect(saved.status).toBe(303);
    const row = await clientRow();
    expect(row.retentionVersions).toBe(2);
    expect(row.retentionDays).toBe(30);
    expect(row.retentionRules).toEqual({ folders: [], restorePoints: NO_RESTORE_POINTS });
  });

  it('lists the kept restore points in the file browser and says how many files a tree between them lost', async () => {
    await h.ctx.database.db
      .update(clients)
      .set({ retentionVersions: 1, retentionRules: { folders: [], restorePoints: { ...NO_RESTORE_POINTS, last: 1 } } })
      .where(eq(clients.id, agent.clientId));
    const runsBefore = rowsOf<{ finished_at: string }>(
      await h.ctx.database.db.execute(sql`select finished_at from backup_runs where client_id = ${agent.clientId} order by finished_at`),
    );
    const secondRun = new Date(runsBefore[1]!.finished_at);
    await agent.backup([{ path: '/dumps/db.sql', content: 'dump 5' }, { path: '/etc/app.conf', content: 'conf 5' }]);

    const files = await owner.browser.get(`/clients/${agent.clientId}/files`);
    expect(files.body).toContain('or pick a kept restore point (1)');
    const restorePoint = /class="chip" title="kept as last" href="([^"]+)"/.exec(files.body)![1]!.replace(/&amp;/g, '&');
    const atPoint = await owner.browser.get(restorePoint);
    expect(atPoint.body).toContain('a kept restore point: every version in it is kept');
    expect(atPoint.body).not.toContain('may be incomplete');

    const earlier = await owner.browser.get(`/clients/${agent.clientId}/files?asOf=${encodeURIComponent(secondRun.toISOString())}`);
    expect(earlier.status).toBe(200);
    expect(earlier.body).toContain("the tree may be incomplete: <strong>2</strong> files' versions from then were pruned.");
    const folder = await owner.browser.get(`/clients/${agent.clientId}/files?path=%2Fdumps&asOf=${encodeURIComponent(secondRun.toISOString())}`);
    expect(folder.body).toContain("the tree may be incomplete: <strong>1</strong> file's version from then was pruned in this folder.");
  });
});
