/**
 * Alerts from a real agent: the server and the agent run as separate
 * processes, the agent's pre-command is set in the dashboard, and the alert
 * is read where a person reads it, on the dashboard's alerts page.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VersionsResponse } from '@cairn/shared';
import { ADMIN_PASSWORD, agentApiGet, DashboardSession, envModeAgentEnv, readAgentState, runAgentOnce } from '../helpers/agent-e2e.ts';
import { startSmtpReceiver, type SmtpReceiver } from '../../server/test/helpers/notification-receivers.ts';
import { startServerProcess, type ServerProcess } from '../helpers/processes.ts';

/** Polls until `find` returns something (the email goes out after the notifier's quiet period). */
async function waitFor<T>(find: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('nothing arrived in time');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('alerts from a real agent', () => {
  let base: string;
  let server: ServerProcess;
  let dashboard: DashboardSession;
  let env: Record<string, string>;
  let clientId: string;
  let smtp: SmtpReceiver;

  beforeAll(async () => {
    // A real SMTP server on loopback receives the alert emails the server process sends.
    smtp = await startSmtpReceiver('cairn-alerts', 'smtp-secret');
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-alerts-'));
    const tree = path.join(base, 'tree');
    await mkdir(tree);
    await writeFile(path.join(tree, 'data.txt'), 'data');
    // One version per path: without the mass-change hold, every run prunes all older versions.
    server = await startServerProcess({
      DATA_DIR: path.join(base, 'server'),
      ADMIN_PASSWORD,
      DEFAULT_RETENTION_VERSIONS: '1',
      SMTP_URL: `smtp://cairn-alerts:smtp-secret@127.0.0.1:${smtp.port}`,
      ALERT_EMAIL_FROM: 'cairn@example.test',
      ALERT_EMAIL_TO: 'ops@example.test',
    });
    env = envModeAgentEnv(server.url, path.join(base, 'agent-state'), [tree]);
    expect((await runAgentOnce(env)).report.status).toBe('succeeded');
    clientId = (await readAgentState(path.join(base, 'agent-state'))).clientId;
    dashboard = new DashboardSession(server.url);
    await dashboard.login();
  });

  afterAll(async () => {
    await server?.stop();
    await smtp?.close();
    await rm(base, { recursive: true, force: true });
  });

  it('a pre-command that starts failing opens an alert on the dashboard, and a working one resolves it', async () => {
    expect(await dashboard.alertsPage()).toContain('No unresolved alerts.');
    await dashboard.configureClient(clientId, { preCommands: "echo 'pg_dump: connection refused' >&2; exit 7" });
    expect((await runAgentOnce(env)).report.status).toBe('partial');

    const open = await dashboard.alertsPage(`?client=${clientId}`);
    expect(open).toContain('pre-command `echo &#39;pg_dump: connection refused&#39; &gt;&amp;2; exit 7` exited with 7');
    expect(open).toMatch(/<td class="observed" data-label="Observed">exited with 7<\/td>\s*<td class="reference muted" data-label="Reference">exit code 0<\/td>/);
    expect(await dashboard.clientPage(clientId)).toContain('Open alerts');
    // The same alert arrives by email (the notifier sends a pass's events as one digest a few seconds later).
    const mail = await waitFor(() => smtp.mails.find((m) => m.text.includes('exited with 7')));
    expect(mail.to).toEqual(['ops@example.test']);
    expect(mail.user).toBe('cairn-alerts');
    expect(mail.text).toContain('exit code 0');
    expect(server.output()).not.toContain('smtp-secret');

    await dashboard.configureClient(clientId, { preCommands: 'true' });
    expect((await runAgentOnce(env)).report.status).toBe('succeeded');
    expect(await dashboard.alertsPage()).toContain('No unresolved alerts.');
    expect(await dashboard.alertsPage('?state=resolved')).toContain('exited with 7');
  });

  it('a run that rewrites nearly every file opens a mass-change alert, and the old versions survive until it is acknowledged', async () => {
    const tree = path.join(base, 'victim');
    const stateDir = path.join(base, 'victim-state');
    await mkdir(tree);
    const names = Array.from({ length: 300 }, (_, i) => path.join(tree, `doc-${String(i).padStart(3, '0')}.txt`));
    for (const name of names) await writeFile(name, `the good text of ${path.basename(name)}\n`);
    const victim = envModeAgentEnv(server.url, stateDir, [tree]);
    // History: a first full run, then five runs that each change one file.
    for (let run = 0; run < 6; run++) {
      if (run > 0) await writeFile(path.join(tree, 'diary.txt'), `entry ${run}\n`);
      expect((await runAgentOnce(victim)).report.status).toBe('succeeded');
    }
    const { token, clientId: victimId } = await readAgentState(stateDir);
    const versionsOf = async (file: string) =>
      (await agentApiGet<VersionsResponse>(server.url, token, `/versions?path=${encodeURIComponent(file)}`)).versions.length;
    expect(await versionsOf(names[0]!)).toBe(1);

    for (const name of names) await writeFile(name, `encrypted ${Math.random()}\n`);
    expect((await runAgentOnce(victim)).report.status).toBe('succeeded');
    const page = await dashboard.alertsPage(`?client=${victimId}&type=mass_change`);
    expect(page).toContain('Mass change');
    expect(page).toMatch(/30\d of \d+ files changed/);
    // Encrypted again, and the client's runs go on: still nothing is pruned.
    for (const name of names) await writeFile(name, `encrypted twice ${Math.random()}\n`);
    expect((await runAgentOnce(victim)).report.status).toBe('succeeded');
    expect(await versionsOf(names[0]!)).toBe(3);

    const alertId = /action="\/alerts\/([0-9a-f-]{36})\/acknowledge"/.exec(page)![1]!;
    await dashboard.acknowledgeAlert(alertId);
    expect((await runAgentOnce(victim)).report.status).toBe('succeeded');
    expect(await versionsOf(names[0]!)).toBe(1);
  });

  it('a watched /dumps folder whose dump shrinks to a tenth opens a file_shrank alert naming the path and both sizes', async () => {
    const tree = path.join(base, 'db-host');
    const dumps = path.join(tree, 'dumps');
    const stateDir = path.join(base, 'db-host-state');
    await mkdir(dumps, { recursive: true });
    const dumpFile = path.join(dumps, 'app.sql');
    // Random bytes: compression cannot hide the size, and each night's dump is a new version.
    await writeFile(dumpFile, randomBytes(4 * 1024 * 1024));
    const agent = envModeAgentEnv(server.url, stateDir, [tree]);
    expect((await runAgentOnce(agent)).report.status).toBe('succeeded');
    const { clientId: hostId } = await readAgentState(stateDir);
    await dashboard.saveAlertSettings(hostId, { 'expectedFile.folders': `${dumps} 26` });
    expect(await dashboard.clientPage(hostId)).toContain(`>${dumps} 26</textarea>`);

    await writeFile(dumpFile, randomBytes(4 * 1024 * 1024));
    expect((await runAgentOnce(agent)).report.status).toBe('succeeded');
    expect(await dashboard.alertsPage(`?client=${hostId}&type=file_shrank&state=all`)).toContain('No alerts');

    await writeFile(dumpFile, randomBytes(410 * 1024));
    expect((await runAgentOnce(agent)).report.status).toBe('succeeded');
    // Open, though this server keeps one version per path and the run's prune removed the 4 MiB reference.
    const page = await dashboard.alertsPage(`?client=${hostId}&type=file_shrank`);
    expect(page).toContain(`${dumpFile} shrank to 410.0 KiB from 4.00 MiB (10%)`);
    expect(page).toContain('previous version 4.00 MiB');
  });
});
