/**
 * The dashboard's "send test notification" button: admins only, CSRF like
 * every form, audited, and it reports what the real SMTP server and webhook
 * receiver on loopback actually got.
 */
import { createHmac } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookBody } from '../../src/alerts/notifiers/webhook-notifier.ts';
import { auditLog } from '../../src/db/schema.ts';
import { startHttpReceiver, startSmtpReceiver, type HttpReceiver, type SmtpReceiver } from '../helpers/notification-receivers.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from './dashboard-harness.ts';

const ADMIN = { username: 'root', password: 'root-password-1' };
const ALICE = { username: 'alice', password: 'alice-password-1' };
const SMTP_PASSWORD = 'smtp-pass-Route42x';
const WEBHOOK_SECRET = 'route-webhook-secret-7d2e9a';

describe.each(testDatabaseKinds())('test notification button (%s)', (kind) => {
  let smtp: SmtpReceiver;
  let hook: HttpReceiver;
  let h: DashboardHarness;
  let admin: Browser;
  let alice: Browser;

  beforeAll(async () => {
    smtp = await startSmtpReceiver('mailer', SMTP_PASSWORD);
    hook = await startHttpReceiver();
    h = await startDashboardHarness(
      kind,
      {
        SMTP_URL: `smtp://mailer:${SMTP_PASSWORD}@127.0.0.1:${smtp.port}`,
        ALERT_EMAIL_FROM: 'cairn@example.com',
        ALERT_EMAIL_TO: 'ops@example.com',
        ALERT_WEBHOOK_URL: `${hook.url}?key=query-key-31f`,
        ALERT_WEBHOOK_SECRET: WEBHOOK_SECRET,
      },
      { captureLog: true },
    );
    await addUser(h.ctx, ADMIN.username, ADMIN.password, true);
    await addUser(h.ctx, ALICE.username, ALICE.password);
    admin = new Browser(h.url);
    alice = new Browser(h.url);
    expect((await admin.login(ADMIN.username, ADMIN.password)).status).toBe(303);
    expect((await alice.login(ALICE.username, ALICE.password)).status).toBe(303);
  });
  afterAll(async () => {
    await h.close();
    await smtp.close();
    await hook.close();
  });
  afterEach(() => {
    smtp.mails.length = 0;
    hook.requests.length = 0;
    hook.statuses.length = 0;
  });

  it('shows admins where notifications go, without any secret', async () => {
    const page = await admin.get('/settings/notifications');
    expect(page.status).toBe(200);
    expect(page.body).toContain('to ops@example.com, from cairn@example.com, via 127.0.0.1:');
    expect(page.body).toContain(`<code>${hook.url}</code>`);
    for (const secret of [SMTP_PASSWORD, WEBHOOK_SECRET, 'query-key-31f']) expect(page.body).not.toContain(secret);
  });

  it('is refused to users who are not admins, and sends nothing', async () => {
    expect((await alice.get('/settings/notifications')).status).toBe(403);
    expect((await alice.post('/settings/notifications/test', {})).status).toBe(403);
    expect(smtp.mails).toHaveLength(0);
    expect(hook.requests).toHaveLength(0);
  });

  it('needs the form\u2019s CSRF token', async () => {
    await admin.get('/settings/notifications');
    expect((await admin.post('/settings/notifications/test', {}, { withCsrf: false })).status).toBe(403);
    expect(smtp.mails).toHaveLength(0);
    expect(hook.requests).toHaveLength(0);
  });

  it('sends a test through every channel, shows each outcome and records it in the audit log', async () => {
    await admin.get('/settings/notifications');
    const page = await admin.post('/settings/notifications/test', {});
    expect(page.status).toBe(200);
    expect(page.body.match(/badge ok">delivered/g)).toHaveLength(2);

    expect(smtp.mails).toHaveLength(1);
    expect(smtp.mails[0]!.to).toEqual(['ops@example.com']);
    expect(smtp.mails[0]!.headers.get('subject')).toBe('[Cairn] Test notification');
    expect(smtp.mails[0]!.text).toContain('Test notification sent by root from the dashboard');

    expect(hook.requests).toHaveLength(1);
    const request = hook.requests[0]!;
    expect(request.url).toBe('/hooks/cairn?key=query-key-31f');
    const timestamp = String(request.headers['x-cairn-timestamp']);
    const expected = `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(`${timestamp}.${request.rawBody}`).digest('hex')}`;
    expect(request.headers['x-cairn-signature']).toBe(expected);
    expect((JSON.parse(request.rawBody) as WebhookBody).test).toBe(true);

    const audit = await h.ctx.database.db.select().from(auditLog).where(eq(auditLog.action, 'notification.test'));
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actorName: 'root', targetType: 'server' });
    expect(JSON.stringify(audit[0]!.details)).toContain('"ok":true');
  });

  it('shows a channel that failed, after one attempt, and logs no secret', async () => {
    hook.statuses.push(500);
    await admin.get('/settings/notifications');
    const page = await admin.post('/settings/notifications/test', {});
    expect(page.status).toBe(502);
    expect(page.body).toContain('badge ok">delivered');
    expect(page.body).toContain('badge bad">failed</span> receiver answered HTTP 500');
    expect(hook.requests).toHaveLength(1);
    const log = JSON.stringify(h.logLines());
    for (const secret of [SMTP_PASSWORD, WEBHOOK_SECRET, 'query-key-31f']) expect(log).not.toContain(secret);
  });
});

describe('test notification button without channels', () => {
  let h: DashboardHarness;
  beforeAll(async () => {
    h = await startDashboardHarness('embedded');
    await addUser(h.ctx, ADMIN.username, ADMIN.password, true);
  });
  afterAll(async () => h.close());

  it('says nothing is configured', async () => {
    const admin = new Browser(h.url);
    await admin.login(ADMIN.username, ADMIN.password);
    expect((await admin.get('/settings/notifications')).body).toContain('off (SMTP_URL is not set)');
    const page = await admin.post('/settings/notifications/test', {});
    expect(page.status).toBe(409);
    expect(page.body).toContain('No notification channel is configured');
  });
});
