import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { and, eq } from 'drizzle-orm';
import { auditLog, users } from '../../src/db/schema.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { addUser, Browser, signedInUser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const SECRET = 'alice-hook-secret-5d2c81e0f9ab';

describe.each(testDatabaseKinds())('alert webhook on the user page (%s)', (kind) => {
  let h: DashboardHarness;
  let admin: Browser;
  let alice: Browser;
  let aliceId: string;
  let bobId: string;

  beforeAll(async () => {
    h = await startDashboardHarness(kind);
    ({ browser: admin } = await signedInUser(h, 'root', true));
    ({ id: aliceId, browser: alice } = await signedInUser(h, 'alice'));
    bobId = (await addUser(h.ctx, 'bob', 'bob-password-1')).id;
  });
  afterAll(() => h?.close());

  async function stored(id: string) {
    const [row] = await h.ctx.database.db
      .select({ url: users.alertWebhookUrl, secret: users.alertWebhookSecret, types: users.alertWebhookTypes })
      .from(users)
      .where(eq(users.id, id));
    return row;
  }

  it('lets a user set their own URL, secret and types, audited without the secret, and never shows the secret back', async () => {
    const page = await alice.get(`/users/${aliceId}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('Alert webhook');
    const saved = await alice.post(`/users/${aliceId}/alert-webhook`, [
      ['alertWebhookUrl', ' https://hooks.example.com/cairn?token=q-token-1 '],
      ['alertWebhookSecret', SECRET],
      ['alertWebhookTypes', 'failing'],
      ['alertWebhookTypes', 'mass_change'],
    ]);
    expect(saved.status).toBe(303);
    expect(await stored(aliceId)).toEqual({ url: 'https://hooks.example.com/cairn?token=q-token-1', secret: SECRET, types: ['failing', 'mass_change'] });
    const [audit] = await h.ctx.database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.action, 'user.alert_webhook.update'), eq(auditLog.targetId, aliceId)));
    expect(audit?.actorName).toBe('alice');
    expect(audit?.details).toEqual({ url: 'https://hooks.example.com/cairn', secretChanged: true, types: ['failing', 'mass_change'] });
    const again = await alice.get(`/users/${aliceId}`);
    expect(again.body).toContain('value="https://hooks.example.com/cairn?token=q-token-1"');
    expect(again.body).toMatch(/name="alertWebhookTypes" value="failing" checked/);
    expect(again.body).not.toMatch(/name="alertWebhookTypes" value="missed_backup" checked/);
    expect(again.body).toContain('set, ends in …f9ab; empty: keep it');
    expect(again.body).not.toContain(SECRET);
    expect(again.body).not.toContain(SECRET.slice(0, 16));
    // The admin's view of her page and the audit page do not show it either.
    expect((await admin.get(`/users/${aliceId}`)).body).not.toContain(SECRET);
    expect((await admin.get('/audit')).body).not.toContain(SECRET);
  });

  it('keeps the stored secret when the field is left empty, and drops it with the URL', async () => {
    await alice.get(`/users/${aliceId}`);
    expect((await alice.post(`/users/${aliceId}/alert-webhook`, [['alertWebhookUrl', 'https://hooks.example.com/other'], ['alertWebhookTypes', 'failing']])).status).toBe(303);
    expect(await stored(aliceId)).toEqual({ url: 'https://hooks.example.com/other', secret: SECRET, types: ['failing'] });
    await alice.get(`/users/${aliceId}`);
    expect((await alice.post(`/users/${aliceId}/alert-webhook`, [['alertWebhookUrl', ''], ['alertWebhookTypes', 'failing']])).status).toBe(303);
    expect(await stored(aliceId)).toEqual({ url: null, secret: null, types: ['failing'] });
    // With no secret stored any more, a URL needs one again.
    await alice.get(`/users/${aliceId}`);
    const missing = await alice.post(`/users/${aliceId}/alert-webhook`, [['alertWebhookUrl', 'https://hooks.example.com/cairn']]);
    expect(missing.status).toBe(400);
    expect(missing.body).toContain('required with a webhook URL: at least 16 characters');
  });

  it('answers a bad URL, a short secret or an unknown type with a 400 naming the field, never echoing the secret', async () => {
    await alice.get(`/users/${aliceId}`);
    const bad = await alice.post(`/users/${aliceId}/alert-webhook`, [['alertWebhookUrl', 'ftp://files.example.com/x'], ['alertWebhookSecret', 'short-secret'], ['alertWebhookTypes', 'storage_filling']]);
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('empty (no webhook) or an http(s) URL of at most 2048 characters');
    expect(bad.body).toContain('16 to 256 visible ASCII characters, no spaces');
    expect(bad.body).toContain('unknown alert type: storage_filling');
    expect(bad.body).toContain('value="ftp://files.example.com/x"');
    expect(bad.body).not.toContain('short-secret');
    expect(await stored(aliceId)).toEqual({ url: null, secret: null, types: ['failing'] });
  });

  it("refuses another user's form to a user and a forged form to anyone; an admin sets anyone's", async () => {
    await alice.get(`/users/${aliceId}`);
    expect((await alice.post(`/users/${bobId}/alert-webhook`, [['alertWebhookUrl', 'https://evil.example.com/'], ['alertWebhookSecret', SECRET]])).status).toBe(403);
    expect((await alice.post(`/users/${aliceId}/alert-webhook`, { _csrf: 'forged', alertWebhookUrl: 'https://x.example.com/', alertWebhookSecret: SECRET })).status).toBe(403);
    expect(await stored(bobId)).toEqual({ url: null, secret: null, types: [] });
    await admin.get(`/users/${bobId}`);
    expect((await admin.post(`/users/${bobId}/alert-webhook`, { alertWebhookUrl: 'http://10.0.0.5:9000/hook', alertWebhookSecret: SECRET, alertWebhookTypes: 'missed_backup' })).status).toBe(303);
    expect(await stored(bobId)).toEqual({ url: 'http://10.0.0.5:9000/hook', secret: SECRET, types: ['missed_backup'] });
  });
});
