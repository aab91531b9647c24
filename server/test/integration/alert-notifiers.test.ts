/**
 * The email and webhook notifiers against real receivers on loopback: an
 * SMTP server (smtp-server) and a node:http server. What arrives is checked:
 * one message per batch, recipients, subject, each alert's message and
 * values, the HMAC signature, retries after a 500, bounded attempts, and
 * that no secret reaches the log.
 */
import { createHmac } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Database } from '../../src/db/database.ts';
import { users } from '../../src/db/schema.ts';
import { alertRecipientLookup, alertWebhookLookup } from '../../src/services/alert-recipients.service.ts';
import type { AlertEvent, AlertSnapshot } from '../../src/alerts/alert-event.ts';
import { createNotifier } from '../../src/alerts/notifiers/create-notifier.ts';
import { EMAIL_MAX_LISTED } from '../../src/alerts/notifiers/email-notifier.ts';
import type { WebhookBody } from '../../src/alerts/notifiers/webhook-notifier.ts';
import { loadServerConfig } from '../../src/config/server-config.ts';
import { createLogger } from '../../src/logger.ts';
import { startHttpReceiver, startSmtpReceiver, type HttpReceiver, type SmtpReceiver } from '../helpers/notification-receivers.ts';
import { openTestDatabase, testDatabaseKinds } from '../helpers/test-database.ts';

const SMTP_USER = 'cairn-mailer';
const SMTP_PASSWORD = 'smtp-pass-Zq81xKv0';
const WEBHOOK_SECRET = 'webhook-secret-9f3a1c77e0b24d55';
const FAST_RETRY = { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 };

function alert(overrides: Partial<AlertSnapshot> & Pick<AlertSnapshot, 'id'>): AlertSnapshot {
  return {
    type: 'missed_backup',
    severity: 'warning',
    clientId: 'c-1',
    clientName: 'db-1',
    ownerId: 'u-1',
    path: null,
    message: 'no successful backup for 26 h (expected every 1 h, tolerance 2x)',
    observed: '26 h',
    reference: '2 h',
    openedAt: '2026-12-01T10:00:00.000Z',
    resolvedAt: null,
    ...overrides,
  };
}

const EVENTS: AlertEvent[] = [
  { kind: 'opened', alert: alert({ id: 'a-1' }) },
  {
    kind: 'opened',
    alert: alert({
      id: 'a-2',
      type: 'file_shrank',
      severity: 'critical',
      clientName: 'web-2',
      path: '/dumps/app.sql',
      message: 'the new version of /dumps/app.sql is 3% of the one before',
      observed: '12.0 MiB',
      reference: '402.5 MiB',
    }),
  },
  {
    kind: 'resolved',
    alert: alert({
      id: 'a-3',
      type: 'storage_filling',
      clientId: null,
      clientName: null,
      ownerId: null,
      message: 'disk store 91% full, full in about 6 days',
      observed: '91%',
      reference: 'high-water mark 85%',
      resolvedAt: '2026-12-01T12:00:00.000Z',
    }),
  },
];

function captureLog() {
  const lines: string[] = [];
  const log = createLogger('info', 'cairn-server', { write: (line: string) => void lines.push(line) });
  return { log, lines, parsed: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

function verifySignature(request: { headers: Record<string, string | string[] | undefined>; rawBody: string }): boolean {
  const timestamp = String(request.headers['x-cairn-timestamp']);
  const expected = `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(`${timestamp}.${request.rawBody}`).digest('hex')}`;
  return request.headers['x-cairn-signature'] === expected;
}

describe('alert notifiers against real receivers', () => {
  let smtp: SmtpReceiver;
  let http: HttpReceiver;

  beforeAll(async () => {
    smtp = await startSmtpReceiver(SMTP_USER, SMTP_PASSWORD);
    http = await startHttpReceiver();
  });
  afterAll(async () => {
    await smtp.close();
    await http.close();
  });
  afterEach(() => {
    smtp.mails.length = 0;
    http.requests.length = 0;
    http.statuses.length = 0;
  });

  function config(env: Record<string, string>) {
    return loadServerConfig({ PUBLIC_URL: 'https://backup.example.com', ...env });
  }
  const emailEnv = () => ({
    SMTP_URL: `smtp://${SMTP_USER}:${encodeURIComponent(SMTP_PASSWORD)}@127.0.0.1:${smtp.port}`,
    ALERT_EMAIL_FROM: 'Cairn <cairn@example.com>',
    ALERT_EMAIL_TO: 'ops@example.com, lead@example.com',
  });
  const webhookEnv = () => ({ ALERT_WEBHOOK_URL: http.url, ALERT_WEBHOOK_SECRET: WEBHOOK_SECRET });

  it('sends one email per batch to every admin recipient, with each alert, its observed and reference value', async () => {
    const { log, lines } = captureLog();
    const notifier = createNotifier(config(emailEnv()), log, { retry: FAST_RETRY });
    const outcomes = await notifier.deliver(EVENTS);
    await notifier.close();

    expect(outcomes).toEqual([{ channel: 'email', target: `ops@example.com, lead@example.com via 127.0.0.1:${smtp.port}`, ok: true, attempts: 1 }]);
    expect(smtp.mails).toHaveLength(1);
    const mail = smtp.mails[0]!;
    expect(mail.user).toBe(SMTP_USER);
    expect(mail.from).toBe('cairn@example.com');
    expect(mail.to).toEqual(['ops@example.com', 'lead@example.com']);
    expect(mail.headers.get('to')).toBe('ops@example.com, lead@example.com');
    expect(mail.headers.get('subject')).toBe('[Cairn] 3 alerts: 2 opened, 1 resolved (1 critical)');
    for (const { alert: a } of EVENTS) {
      expect(mail.text).toContain(a.message);
      expect(mail.text).toContain(`observed: ${a.observed}; reference: ${a.reference}`);
    }
    // Opened before resolved, critical first.
    expect(mail.text.indexOf('file shrank')).toBeLessThan(mail.text.indexOf('missed backup'));
    expect(mail.text.indexOf('missed backup')).toBeLessThan(mail.text.indexOf('RESOLVED'));
    expect(mail.text).toContain('OPENED  critical  file shrank  on web-2  path /dumps/app.sql');
    expect(mail.text).toContain('RESOLVED  warning  storage filling  on the server');
    expect(mail.text).toContain('All alerts: https://backup.example.com/alerts');
    expect(lines.join('\n')).not.toContain(SMTP_PASSWORD);
  });

  it('names a single alert in the subject', async () => {
    const notifier = createNotifier(config(emailEnv()), captureLog().log, { retry: FAST_RETRY });
    await notifier.deliver([EVENTS[1]!]);
    await notifier.deliver([EVENTS[2]!]);
    await notifier.close();
    expect(smtp.mails.map((mail) => mail.headers.get('subject'))).toEqual([
      '[Cairn] critical alert: file shrank on web-2',
      '[Cairn] resolved: storage filling on the server',
    ]);
  });

  it('caps a broken fleet, reported client by client in one pass, at one email that lists the first alerts and counts the rest', async () => {
    const many: AlertEvent[] = Array.from({ length: EMAIL_MAX_LISTED + 13 }, (_, i) => ({
      kind: 'opened',
      alert: alert({ id: `m-${i}`, clientName: `host-${String(i).padStart(3, '0')}`, message: `host-${String(i).padStart(3, '0')} stopped reporting` }),
    }));
    const notifier = createNotifier(config(emailEnv()), captureLog().log, { retry: FAST_RETRY });
    // The engine hands over each client's events as it evaluates that client.
    for (const event of many) await notifier.notify([event]);
    await notifier.close();

    expect(smtp.mails).toHaveLength(1);
    const text = smtp.mails[0]!.text;
    expect(text.match(/stopped reporting/g)).toHaveLength(EMAIL_MAX_LISTED);
    expect(text).toContain('... and 13 more alerts, not listed here.');
    expect(smtp.mails[0]!.headers.get('subject')).toBe(`[Cairn] ${EMAIL_MAX_LISTED + 13} alerts: ${EMAIL_MAX_LISTED + 13} opened`);
  });

  it('queues: notify resolves before anything is sent, and the queued events go out together once the calls pause', async () => {
    const held = createNotifier(config(emailEnv()), captureLog().log, { retry: FAST_RETRY, coalesce: { quietMs: 60_000, maxWaitMs: 120_000 } });
    await held.notify([EVENTS[0]!]);
    await held.notify([EVENTS[1]!]);
    expect(smtp.mails).toHaveLength(0);
    await held.flush();
    expect(smtp.mails).toHaveLength(1);
    expect(smtp.mails[0]!.headers.get('subject')).toBe('[Cairn] 2 alerts: 2 opened (1 critical)');
    await held.close();

    const quick = createNotifier(config(emailEnv()), captureLog().log, { retry: FAST_RETRY, coalesce: { quietMs: 10, maxWaitMs: 1000 } });
    await quick.notify([EVENTS[2]!]);
    await vi.waitFor(() => expect(smtp.mails).toHaveLength(2), { timeout: 10_000 });
    expect(smtp.mails[1]!.headers.get('subject')).toBe('[Cairn] resolved: storage filling on the server');
    await quick.close();
  });

  it('sends nothing for an empty batch', async () => {
    const notifier = createNotifier(config({ ...emailEnv(), ...webhookEnv() }), captureLog().log, { retry: FAST_RETRY });
    expect(await notifier.deliver([])).toEqual([]);
    await notifier.close();
    expect(smtp.mails).toHaveLength(0);
    expect(http.requests).toHaveLength(0);
  });

  it('reports an SMTP server that refuses the credentials, without retrying and without the password in the log', async () => {
    const { log, lines, parsed } = captureLog();
    const wrong = { ...emailEnv(), SMTP_URL: `smtp://${SMTP_USER}:not-the-password-77@127.0.0.1:${smtp.port}` };
    const notifier = createNotifier(config(wrong), log, { retry: FAST_RETRY });
    const [outcome] = await notifier.deliver(EVENTS);
    await notifier.close();
    expect(outcome).toMatchObject({ channel: 'email', ok: false, attempts: 1 });
    expect(outcome!.error).toMatch(/EAUTH/);
    expect(smtp.mails).toHaveLength(0);
    expect(parsed().some((line) => line.level === 50 && line.msg === 'alert notification not delivered')).toBe(true);
    expect(lines.join('\n')).not.toContain('not-the-password-77');
  });

  it('posts one signed JSON body per batch that the receiver can verify', async () => {
    const { log, lines } = captureLog();
    const notifier = createNotifier(config(webhookEnv()), log, { retry: FAST_RETRY });
    const outcomes = await notifier.deliver(EVENTS);

    expect(outcomes).toEqual([{ channel: 'webhook', target: http.url, ok: true, attempts: 1 }]);
    expect(http.requests).toHaveLength(1);
    const request = http.requests[0]!;
    expect(request.method).toBe('POST');
    expect(request.headers['content-type']).toBe('application/json');
    expect(verifySignature(request)).toBe(true);
    // A body changed on the way, or replayed under a new timestamp, no longer verifies.
    expect(verifySignature({ ...request, rawBody: request.rawBody.replace('26 h', '2 h') })).toBe(false);
    expect(verifySignature({ ...request, headers: { ...request.headers, 'x-cairn-timestamp': String(Number(request.headers['x-cairn-timestamp']) + 600) } })).toBe(false);
    const body = JSON.parse(request.rawBody) as WebhookBody;
    expect(body).toMatchObject({ type: 'cairn.alerts', test: false, server: 'https://backup.example.com', opened: 2, resolved: 1, omitted: 0 });
    expect(body.deliveryId).toBe(request.headers['x-cairn-delivery']);
    expect(body.events.map((event) => event.alert.id)).toEqual(['a-2', 'a-1', 'a-3']);
    expect(body.events[0]).toEqual(EVENTS[1]);
    expect(request.rawBody).not.toContain(WEBHOOK_SECRET);
    expect(lines.join('\n')).not.toContain(WEBHOOK_SECRET);
  });

  it('retries after a 500 with the same delivery id and a fresh signature, and logs no secret', async () => {
    const { log, lines, parsed } = captureLog();
    http.statuses.push(500);
    const notifier = createNotifier(config(webhookEnv()), log, { retry: FAST_RETRY });
    const outcomes = await notifier.deliver(EVENTS);

    expect(outcomes).toEqual([{ channel: 'webhook', target: http.url, ok: true, attempts: 2 }]);
    expect(http.requests).toHaveLength(2);
    expect(http.requests.every(verifySignature)).toBe(true);
    expect(http.requests[1]!.headers['x-cairn-delivery']).toBe(http.requests[0]!.headers['x-cairn-delivery']);
    expect(http.requests[1]!.rawBody).toBe(http.requests[0]!.rawBody);
    expect(parsed().filter((line) => line.msg === 'alert webhook failed, retrying')).toHaveLength(1);
    expect(lines.join('\n')).not.toContain(WEBHOOK_SECRET);
  });

  it('gives up after the bounded attempts, logs at error and still resolves', async () => {
    const { log, lines, parsed } = captureLog();
    http.statuses.push(503, 503, 503, 503, 503);
    const notifier = createNotifier(config(webhookEnv()), log, { retry: FAST_RETRY });
    await expect(notifier.notify(EVENTS)).resolves.toBeUndefined();
    await notifier.flush();

    expect(http.requests).toHaveLength(FAST_RETRY.attempts);
    const failure = parsed().find((line) => line.msg === 'alert notification not delivered');
    expect(failure).toMatchObject({ level: 50, channel: 'webhook', attempts: FAST_RETRY.attempts, error: 'receiver answered HTTP 503' });
    expect(lines.join('\n')).not.toContain(WEBHOOK_SECRET);
  });

  it('does not retry an answer another try cannot change (400)', async () => {
    http.statuses.push(400);
    const notifier = createNotifier(config(webhookEnv()), captureLog().log, { retry: FAST_RETRY });
    const [outcome] = await notifier.deliver(EVENTS);
    expect(outcome).toMatchObject({ ok: false, attempts: 1, error: 'receiver answered HTTP 400' });
    expect(http.requests).toHaveLength(1);
  });

  it('retries a receiver that is not listening, then gives up without rejecting; the URL query never reaches the log', async () => {
    const closed = await startHttpReceiver();
    await closed.close();
    const { log, lines } = captureLog();
    const url = `${closed.url}?token=query-token-5c1d`;
    const notifier = createNotifier(config({ ALERT_WEBHOOK_URL: url, ALERT_WEBHOOK_SECRET: WEBHOOK_SECRET }), log, { retry: FAST_RETRY });
    const [outcome] = await notifier.deliver(EVENTS);
    expect(outcome).toMatchObject({ channel: 'webhook', target: closed.url, ok: false, attempts: FAST_RETRY.attempts });
    expect(outcome!.error).toMatch(/ECONNREFUSED/);
    expect(lines.join('\n')).not.toContain('query-token-5c1d');
  });

  it('fans one batch out to every configured channel, one message each', async () => {
    const notifier = createNotifier(config({ ...emailEnv(), ...webhookEnv() }), captureLog().log, { retry: FAST_RETRY });
    const outcomes = await notifier.deliver(EVENTS);
    await notifier.close();
    expect(outcomes.map((o) => [o.channel, o.ok])).toEqual([
      ['email', true],
      ['webhook', true],
    ]);
    expect(smtp.mails).toHaveLength(1);
    expect(http.requests).toHaveLength(1);
  });

  it('has no channels (and sends nothing) when nothing is configured', async () => {
    const notifier = createNotifier(config({}), captureLog().log);
    expect(notifier.channels).toEqual([]);
    expect(await notifier.deliver(EVENTS)).toEqual([]);
  });
});

describe.each(testDatabaseKinds())('alert emails per owner, addresses read from the database (%s)', (kind) => {
  let smtp: SmtpReceiver;
  let database: Database;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    smtp = await startSmtpReceiver(SMTP_USER, SMTP_PASSWORD);
    database = await openTestDatabase(kind);
    const rows = await database.db
      .insert(users)
      .values([
        { username: 'alice', passwordHash: 'x', alertEmail: 'alice@example.com', alertEmailTypes: ['failing', 'file_shrank'] },
        { username: 'bob', passwordHash: 'x', alertEmail: 'bob@example.com', alertEmailTypes: ['failing', 'missed_backup', 'file_shrank'] },
        { username: 'carol', passwordHash: 'x', alertEmail: 'carol@example.com', alertEmailTypes: ['failing'], disabled: true },
        { username: 'dave', passwordHash: 'x', alertEmail: null, alertEmailTypes: ['failing'] },
      ])
      .returning({ id: users.id, username: users.username });
    for (const row of rows) ids[row.username] = row.id;
  });
  afterAll(async () => {
    await smtp.close();
    await database.close();
  });

  function owned(id: string, owner: string, type: AlertSnapshot['type'], clientName: string): AlertEvent {
    return { kind: 'opened', alert: alert({ id, ownerId: ids[owner]!, type, clientName, message: `${type} on ${clientName}` }) };
  }

  it('sends each owner only their own clients\' alerts of their chosen types, and the admins everything', async () => {
    const events: AlertEvent[] = [
      owned('a-fail', 'alice', 'failing', 'alice-laptop'),
      owned('a-miss', 'alice', 'missed_backup', 'alice-laptop'),
      owned('a-shrank', 'alice', 'file_shrank', 'alice-nas'),
      owned('b-miss', 'bob', 'missed_backup', 'bob-server'),
      owned('c-fail', 'carol', 'failing', 'carol-pc'),
      owned('d-fail', 'dave', 'failing', 'dave-pc'),
      EVENTS[2]!,
    ];
    const config = loadServerConfig({
      PUBLIC_URL: 'https://backup.example.com',
      SMTP_URL: `smtp://${SMTP_USER}:${encodeURIComponent(SMTP_PASSWORD)}@127.0.0.1:${smtp.port}`,
      ALERT_EMAIL_FROM: 'cairn@example.com',
      ALERT_EMAIL_TO: 'ops@example.com',
    });
    const notifier = createNotifier(config, captureLog().log, { retry: FAST_RETRY, recipients: alertRecipientLookup(database.db) });
    const outcomes = await notifier.deliver(events);
    await notifier.close();

    expect(outcomes.map((outcome) => outcome.ok)).toEqual([true]);
    const byRecipient = new Map(smtp.mails.map((mail) => [mail.to.join(','), mail]));
    // One message per recipient: the admins, alice, bob; carol is disabled, dave has no address.
    expect(smtp.mails.map((mail) => mail.to.join(',')).sort()).toEqual(['alice@example.com', 'bob@example.com', 'ops@example.com']);

    const admins = byRecipient.get('ops@example.com')!;
    for (const { alert: a } of events) expect(admins.text).toContain(a.message);

    const aliceMail = byRecipient.get('alice@example.com')!;
    expect(aliceMail.headers.get('subject')).toBe('[Cairn] 2 alerts: 2 opened');
    expect(aliceMail.text).toContain('failing on alice-laptop');
    expect(aliceMail.text).toContain('file_shrank on alice-nas');
    expect(aliceMail.text).not.toContain('missed_backup on alice-laptop');
    expect(aliceMail.text).not.toContain('bob-server');
    expect(aliceMail.text).not.toContain(EVENTS[2]!.alert.message);

    const bobMail = byRecipient.get('bob@example.com')!;
    expect(bobMail.text).toContain('missed_backup on bob-server');
    expect(bobMail.text).not.toContain('alice');
    expect(bobMail.text).not.toContain(EVENTS[2]!.alert.message);
  });

  it('reads the addresses at send time: a changed choice applies to the next pass', async () => {
    smtp.mails.length = 0;
    await database.db.update(users).set({ alertEmailTypes: [] }).where(eq(users.id, ids.alice!));
    const config = loadServerConfig({
      PUBLIC_URL: 'https://backup.example.com',
      SMTP_URL: `smtp://${SMTP_USER}:${encodeURIComponent(SMTP_PASSWORD)}@127.0.0.1:${smtp.port}`,
      ALERT_EMAIL_FROM: 'cairn@example.com',
      ALERT_EMAIL_TO: 'ops@example.com',
    });
    const notifier = createNotifier(config, captureLog().log, { retry: FAST_RETRY, recipients: alertRecipientLookup(database.db) });
    await notifier.deliver([owned('a-fail-2', 'alice', 'failing', 'alice-laptop')]);
    await notifier.close();
    expect(smtp.mails.map((mail) => mail.to.join(','))).toEqual(['ops@example.com']);
  });
});

describe.each(testDatabaseKinds())('alert webhooks per owner, read from the database (%s)', (kind) => {
  const ALICE_SECRET = 'alice-hook-secret-3b9e0d21c4f8';
  const BOB_SECRET = 'bob-hook-secret-77a1f0e92c65';
  let aliceHook: HttpReceiver;
  let bobHook: HttpReceiver;
  let database: Database;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    aliceHook = await startHttpReceiver();
    bobHook = await startHttpReceiver();
    database = await openTestDatabase(kind);
    const rows = await database.db
      .insert(users)
      .values([
        { username: 'alice', passwordHash: 'x', alertWebhookUrl: `${aliceHook.url}?token=alice-query-token`, alertWebhookSecret: ALICE_SECRET, alertWebhookTypes: ['failing', 'file_shrank'] },
        { username: 'bob', passwordHash: 'x', alertWebhookUrl: bobHook.url, alertWebhookSecret: BOB_SECRET, alertWebhookTypes: ['missed_backup'] },
        // Disabled: gets nothing, though the receiver would accept.
        { username: 'carol', passwordHash: 'x', alertWebhookUrl: bobHook.url, alertWebhookSecret: BOB_SECRET, alertWebhookTypes: ['failing'], disabled: true },
        { username: 'dave', passwordHash: 'x' },
      ])
      .returning({ id: users.id, username: users.username });
    for (const row of rows) ids[row.username] = row.id;
  });
  afterAll(async () => {
    await aliceHook.close();
    await bobHook.close();
    await database.close();
  });
  afterEach(() => {
    for (const hook of [aliceHook, bobHook]) {
      hook.requests.length = 0;
      hook.statuses.length = 0;
    }
  });

  function owned(id: string, owner: string, type: AlertSnapshot['type'], clientName: string): AlertEvent {
    return { kind: 'opened', alert: alert({ id, ownerId: ids[owner]!, type, clientName, message: `${type} on ${clientName}` }) };
  }
  function signedWith(secret: string, request: { headers: Record<string, string | string[] | undefined>; rawBody: string }): boolean {
    const timestamp = String(request.headers['x-cairn-timestamp']);
    return request.headers['x-cairn-signature'] === `sha256=${createHmac('sha256', secret).update(`${timestamp}.${request.rawBody}`).digest('hex')}`;
  }
  const events = (): AlertEvent[] => [
    owned('a-fail', 'alice', 'failing', 'alice-laptop'),
    owned('a-miss', 'alice', 'missed_backup', 'alice-laptop'),
    owned('a-shrank', 'alice', 'file_shrank', 'alice-nas'),
    owned('b-miss', 'bob', 'missed_backup', 'bob-server'),
    owned('b-fail', 'bob', 'failing', 'bob-server'),
    owned('c-fail', 'carol', 'failing', 'carol-pc'),
    owned('d-fail', 'dave', 'failing', 'dave-pc'),
    EVENTS[2]!,
  ];

  it("POSTs each owner one digest of only their own clients' alerts of their types, signed with their own secret", async () => {
    const { log, lines } = captureLog();
    // Without any server-wide channel configured: the owners' webhooks stand alone.
    const notifier = createNotifier(loadServerConfig({ PUBLIC_URL: 'https://backup.example.com' }), log, { retry: FAST_RETRY, webhooks: alertWebhookLookup(database.db) });
    const outcomes = await notifier.deliver(events());
    await notifier.close();

    expect(outcomes).toEqual([{ channel: 'owner-webhooks', target: "owners' webhooks", ok: true, attempts: 1 }]);
    expect(aliceHook.requests).toHaveLength(1);
    const toAlice = aliceHook.requests[0]!;
    expect(toAlice.url).toBe('/hooks/cairn?token=alice-query-token');
    expect(signedWith(ALICE_SECRET, toAlice)).toBe(true);
    expect(signedWith(BOB_SECRET, toAlice)).toBe(false);
    const aliceBody = JSON.parse(toAlice.rawBody) as WebhookBody;
    expect(aliceBody).toMatchObject({ type: 'cairn.alerts', test: false, server: 'https://backup.example.com', opened: 2, resolved: 0, omitted: 0 });
    expect(aliceBody.events.map((event) => event.alert.id).sort()).toEqual(['a-fail', 'a-shrank']);

    // bob's receiver: bob's one missed backup only (carol, disabled, shares the URL and gets nothing).
    expect(bobHook.requests).toHaveLength(1);
    const toBob = bobHook.requests[0]!;
    expect(signedWith(BOB_SECRET, toBob)).toBe(true);
    expect((JSON.parse(toBob.rawBody) as WebhookBody).events.map((event) => event.alert.id)).toEqual(['b-miss']);

    const logged = lines.join('\n');
    for (const secret of [ALICE_SECRET, BOB_SECRET, 'alice-query-token']) expect(logged).not.toContain(secret);
    // Even a careless log line of an owner's whole webhook row keeps the secret out (the logger's redaction).
    log.info({ hook: (await alertWebhookLookup(database.db)([ids.alice!]))[0] }, 'an owner webhook, logged whole');
    expect(lines.at(-1)).toContain('"secret":"[redacted]"');
    expect(lines.at(-1)).not.toContain(ALICE_SECRET);
  });

  it("retries an owner's receiver as the server's webhook is retried, and one owner's dead receiver does not hold back another's", async () => {
    aliceHook.statuses.push(503, 200);
    bobHook.statuses.push(500, 500, 500);
    const { log, lines, parsed } = captureLog();
    const notifier = createNotifier(loadServerConfig({ PUBLIC_URL: 'https://backup.example.com' }), log, { retry: FAST_RETRY, webhooks: alertWebhookLookup(database.db) });
    const outcomes = await notifier.deliver(events());
    await notifier.close();

    expect(aliceHook.requests).toHaveLength(2);
    expect(aliceHook.requests.every((request) => signedWith(ALICE_SECRET, request))).toBe(true);
    // The same delivery, retried: one id.
    expect(new Set(aliceHook.requests.map((request) => request.headers['x-cairn-delivery'])).size).toBe(1);
    expect(bobHook.requests).toHaveLength(FAST_RETRY.attempts);
    expect(outcomes).toEqual([{ channel: 'owner-webhooks', target: "owners' webhooks", ok: false, attempts: FAST_RETRY.attempts, error: 'receiver answered HTTP 500' }]);
    const gaveUp = parsed().find((line) => line.msg === "an owner's alert webhook was not delivered");
    expect(gaveUp).toMatchObject({ userId: ids.bob, target: bobHook.url });
    const logged = lines.join('\n');
    for (const secret of [ALICE_SECRET, BOB_SECRET, 'alice-query-token']) expect(logged).not.toContain(secret);
  });

  it('reads the webhooks at send time and leaves the test button to the configured channels', async () => {
    await database.db.update(users).set({ alertWebhookTypes: [] }).where(eq(users.id, ids.alice!));
    const notifier = createNotifier(loadServerConfig({ PUBLIC_URL: 'https://backup.example.com' }), captureLog().log, { retry: FAST_RETRY, webhooks: alertWebhookLookup(database.db) });
    await notifier.deliver(events());
    await notifier.deliver(events(), { test: true });
    await notifier.close();
    expect(aliceHook.requests).toHaveLength(0);
    expect(bobHook.requests).toHaveLength(1);
  });
});
