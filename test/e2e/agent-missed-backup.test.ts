/**
 * A missed backup end to end: a real agent process backs up to a real server
 * process, then is stopped; with a one-minute interval and tolerance 1 (set
 * in the dashboard) the server's periodic alert pass opens a missed-backup
 * alert, shown on the dashboard, emailed to the admins (a real SMTP server on
 * loopback) and POSTed to the client owner's own webhook (a real HTTP
 * receiver), signed with that owner's secret. The agent started again backs
 * up at once, and the alert resolves, by webhook too.
 */
import { createHmac } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookBody } from '../../server/src/alerts/notifiers/webhook-notifier.ts';
import { ADMIN_PASSWORD, DashboardSession, envModeAgentEnv, readAgentState, runAgentOnce, startAgent, waitForRuns } from '../helpers/agent-e2e.ts';
import { startHttpReceiver, startSmtpReceiver, type HttpReceiver, type ReceivedRequest, type SmtpReceiver } from '../../server/test/helpers/notification-receivers.ts';
import { startServerProcess, type ServerProcess } from '../helpers/processes.ts';

const HOOK_SECRET = 'owner-hook-secret-8c1d2e3f4a5b6c7d';

/** Polls until `find` returns something; the alert pass runs every 10 s and the notifier waits for a quiet moment. */
async function waitFor<T>(find: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 150_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what}: nothing in time`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

function signed(request: ReceivedRequest): boolean {
  const timestamp = String(request.headers['x-cairn-timestamp']);
  return request.headers['x-cairn-signature'] === `sha256=${createHmac('sha256', HOOK_SECRET).update(`${timestamp}.${request.rawBody}`).digest('hex')}`;
}

describe('a missed backup from a real agent', () => {
  let base: string;
  let server: ServerProcess;
  let smtp: SmtpReceiver;
  let hook: HttpReceiver;

  beforeAll(async () => {
    smtp = await startSmtpReceiver('cairn-alerts', 'smtp-secret');
    hook = await startHttpReceiver();
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-missed-'));
    server = await startServerProcess({
      DATA_DIR: path.join(base, 'server'),
      ADMIN_PASSWORD,
      // The shortest periodic pass there is, so a missed backup shows within seconds of its deadline.
      ALERTS_INTERVAL_SECONDS: '10',
      SMTP_URL: `smtp://cairn-alerts:smtp-secret@127.0.0.1:${smtp.port}`,
      ALERT_EMAIL_FROM: 'cairn@example.test',
      ALERT_EMAIL_TO: 'ops@example.test',
    });
  });
  afterAll(async () => {
    await server?.stop();
    await smtp?.close();
    await hook?.close();
    await rm(base, { recursive: true, force: true });
  });

  it('opens a missed-backup alert once the stopped agent is a backup interval late, and resolves it when the agent is back', async () => {
    const tree = path.join(base, 'tree');
    await mkdir(tree);
    await writeFile(path.join(tree, 'notes.txt'), 'notes');
    const stateDir = path.join(base, 'agent-state');
    const env = envModeAgentEnv(server.url, stateDir, [tree]);
    expect((await runAgentOnce(env)).report.status).toBe('succeeded');
    const { clientId } = await readAgentState(stateDir);

    const dashboard = new DashboardSession(server.url);
    await dashboard.login();
    // The client's owner (the admin the agent registered as) wants missed backups on their own webhook.
    await dashboard.saveAlertWebhook(await dashboard.ownUserId(), hook.url, HOOK_SECRET, ['missed_backup']);
    await dashboard.configureClient(clientId, { monitoredPaths: tree, backupInterval: '60' });
    await dashboard.saveAlertSettings(clientId, { 'missedBackup.tolerance': '1' });

    // The agent runs as a service, backs up, and is stopped: backups stop.
    const agent = startAgent(env);
    expect((await waitForRuns(agent, 1)).status).toBe('succeeded');
    await agent.stop();
    expect(await dashboard.alertsPage(`?client=${clientId}&type=missed_backup`)).not.toContain('no successful backup for');

    const page = await waitFor(async () => {
      const html = await dashboard.alertsPage(`?client=${clientId}&type=missed_backup`);
      return html.includes('no successful backup for') ? html : undefined;
    }, 'missed-backup alert on the dashboard');
    expect(page).toContain('tolerance 1x');
    const opened = await waitFor(
      () => hook.requests.find((request) => (JSON.parse(request.rawBody) as WebhookBody).events.some((e) => e.kind === 'opened' && e.alert.type === 'missed_backup')),
      'opened event at the owner webhook',
    );
    expect(signed(opened)).toBe(true);
    const openedEvent = (JSON.parse(opened.rawBody) as WebhookBody).events.find((e) => e.alert.type === 'missed_backup')!;
    expect(openedEvent.alert.clientId).toBe(clientId);
    expect(openedEvent.alert.observed).toMatch(/^no successful backup for /);
    const mail = await waitFor(() => smtp.mails.find((m) => m.text.includes('no successful backup for')), 'missed-backup email');
    expect(mail.to).toEqual(['ops@example.test']);

    // The agent is back: it backs up at once, and the finished run's pass resolves the alert.
    const back = startAgent(env);
    try {
      expect((await waitForRuns(back, 1)).status).toBe('succeeded');
      const resolvedPage = await waitFor(async () => {
        const html = await dashboard.alertsPage(`?client=${clientId}&type=missed_backup&state=resolved`);
        return html.includes('no successful backup for') ? html : undefined;
      }, 'resolved missed-backup alert');
      expect(resolvedPage).toContain('no successful backup for');
      const resolved = await waitFor(
        () => hook.requests.find((request) => (JSON.parse(request.rawBody) as WebhookBody).events.some((e) => e.kind === 'resolved' && e.alert.id === openedEvent.alert.id)),
        'resolved event at the owner webhook',
      );
      expect(signed(resolved)).toBe(true);
    } finally {
      await back.stop();
    }
    expect(server.output()).not.toContain(HOOK_SECRET);
    expect(server.output()).not.toContain('smtp-secret');
  });
});
