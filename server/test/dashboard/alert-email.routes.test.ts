import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { and, eq } from 'drizzle-orm';
import { auditLog, users } from '../../src/db/schema.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

describe.each(testDatabaseKinds())('alert email on the user page (%s)', (kind) => {
  let h: DashboardHarness;
  let admin: Browser;
  let alice: Browser;
  let aliceId: string;
  let bobId: string;

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    await addUser(h.ctx, 'root', 'root-password-1', true);
    aliceId = (await addUser(h.ctx, 'alice', 'alice-password-1')).id;
    bobId = (await addUser(h.ctx, 'bob', 'bob-password-1')).id;
    admin = new Browser(h.url);
    alice = new Browser(h.url);
    await admin.login('root', 'root-password-1');
    await alice.login('alice', 'alice-password-1');
  });
  afterAll(() => h?.close());

  async function stored(id: string) {
    const [row] = await h.ctx.database.db.select({ email: users.alertEmail, types: users.alertEmailTypes }).from(users).where(eq(users.id, id));
    return row;
  }

  it('lets a user set their own address and types, audited, and shows them again', async () => {
    const page = await alice.get(`/users/${aliceId}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('Alert email');
    // The admin-only forms stay hidden from a user on their own page.
    expect(page.body).not.toContain('Reset password');
    expect(page.body).not.toContain('value="storage_filling"');
    const saved = await alice.post(`/users/${aliceId}/alert-email`, [
      ['alertEmail', ' alice@example.com '],
      ['alertEmailTypes', 'failing'],
      ['alertEmailTypes', 'file_shrank'],
    ]);
    expect(saved.status).toBe(303);
    expect(await stored(aliceId)).toEqual({ email: 'alice@example.com', types: ['failing', 'file_shrank'] });
    const [audit] = await h.ctx.database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.action, 'user.alert_email.update'), eq(auditLog.targetId, aliceId)));
    expect(audit?.actorName).toBe('alice');
    expect(audit?.details).toEqual({ email: 'alice@example.com', types: ['failing', 'file_shrank'] });
    const again = await alice.get(`/users/${aliceId}`);
    expect(again.body).toContain('value="alice@example.com"');
    expect(again.body).toMatch(/value="failing" checked/);
    expect(again.body).not.toMatch(/value="missed_backup" checked/);
  });

  it('answers an invalid address or type with a 400 naming the field, and keeps what was stored', async () => {
    await alice.get(`/users/${aliceId}`);
    const bad = await alice.post(`/users/${aliceId}/alert-email`, [['alertEmail', 'alice@example.com, eve@evil.example'], ['alertEmailTypes', 'failing']]);
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('one address such as name@example.com');
    expect(bad.body).toContain('value="alice@example.com, eve@evil.example"');
    await alice.get(`/users/${aliceId}`);
    const badType = await alice.post(`/users/${aliceId}/alert-email`, [['alertEmail', 'a@example.com'], ['alertEmailTypes', 'storage_filling']]);
    expect(badType.status).toBe(400);
    expect(badType.body).toContain('unknown alert type: storage_filling');
    expect(await stored(aliceId)).toEqual({ email: 'alice@example.com', types: ['failing', 'file_shrank'] });
  });

  it("refuses another user's page and form to a user, a forged form to anyone; an admin edits anyone's", async () => {
    expect((await alice.get(`/users/${bobId}`)).status).toBe(403);
    await alice.get(`/users/${aliceId}`);
    expect((await alice.post(`/users/${bobId}/alert-email`, [['alertEmail', 'alice@example.com'], ['alertEmailTypes', 'failing']])).status).toBe(403);
    expect((await alice.post(`/users/${aliceId}/alert-email`, { _csrf: 'forged', alertEmail: 'x@example.com' })).status).toBe(403);
    await admin.get(`/users/${bobId}`);
    expect((await admin.post(`/users/${bobId}/alert-email`, { alertEmail: 'bob@example.com', alertEmailTypes: 'missed_backup' })).status).toBe(303);
    expect(await stored(bobId)).toEqual({ email: 'bob@example.com', types: ['missed_backup'] });
    // Clearing the address (and every box) stops the emails.
    await admin.get(`/users/${bobId}`);
    expect((await admin.post(`/users/${bobId}/alert-email`, { alertEmail: '' })).status).toBe(303);
    expect(await stored(bobId)).toEqual({ email: null, types: [] });
  });
});
