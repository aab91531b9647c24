/**
 * Restore jobs end to end (issue 13): a real server and two real agents of
 * one owner. Client A backs up a pg_dump of a database on the local
 * PostgreSQL; a restore job made on the dashboard restores A's dump onto
 * client B and loads it there into a scratch database with a post-restore
 * command. A scheduled restore whose command fails raises a restore_failed
 * alert; an agent with ALLOW_REMOTE_COMMANDS=false restores the files but
 * refuses the command; a job queued for an agent that is not running is
 * cancelled before it starts.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, DashboardSession, envModeAgentEnv, readAgentState, startAgent, waitForRuns } from '../helpers/agent-e2e.ts';
import { startServerProcess, type ManagedProcess, type ServerProcess } from '../helpers/processes.ts';

const PG_BASE = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const stamp = `${process.pid}_${Date.now()}`;
const SOURCE_DB = `cairn_restore_src_${stamp}`;
const SCRATCH_DB = `cairn_restore_dst_${stamp}`;

function dbUrl(name: string): string {
  const url = new URL(PG_BASE);
  url.pathname = `/${name}`;
  return url.toString();
}

interface JobStatus {
  status: string;
  progress: { filesDone: number; filesTotal: number } | null;
}

describe('restore jobs from the dashboard, carried out by real agents', () => {
  let base: string;
  let server: ServerProcess;
  let agentA: ManagedProcess;
  let agentB: ManagedProcess;
  let clientA: string;
  let clientB: string;
  let dumpDirA: string;
  let session: DashboardSession;
  const admin = postgres(PG_BASE, { max: 1, onnotice: () => {} });

  async function waitForJob(jobId: string, done: (s: JobStatus) => boolean = (s) => !['queued', 'running'].includes(s.status)): Promise<JobStatus> {
    const deadline = Date.now() + 90_000;
    for (;;) {
      const answer = await session.get(`/restore-jobs/${jobId}/status.json`);
      const status = JSON.parse(answer.body) as JobStatus;
      if (done(status)) return status;
      if (Date.now() > deadline) throw new Error(`job ${jobId} still ${status.status}\nA:\n${agentA.output().slice(-3000)}\nB:\n${agentB.output().slice(-3000)}`);
      await sleep(200);
    }
  }

  /** The client's unresolved alerts page, once `ready` holds for it. */
  async function alertsPageWhen(clientId: string, ready: (page: string) => boolean): Promise<string> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const page = (await session.get(`/alerts?client=${clientId}`)).body;
      if (ready(page)) return page;
      if (Date.now() > deadline) throw new Error(`the alerts page never got there:\n${page.slice(0, 3000)}`);
      await sleep(200);
    }
  }

  /** Submits the client's restore form; returns the job id the redirect names. */
  async function restoreVia(sourceClientId: string, fields: Record<string, string>): Promise<string> {
    await session.get(`/clients/${sourceClientId}/restores`);
    const answer = await session.post(`/clients/${sourceClientId}/restores`, {
      when: 'now',
      asOf: '',
      overwrite: '',
      postCommand: '',
      postCommandTimeout: '2m',
      scheduleKind: 'cron',
      interval: '1d',
      cron: '0 4 * * *',
      timeZone: 'UTC',
      ...fields,
    });
    expect(answer.status, answer.body.slice(0, 3000)).toBe(303);
    const jobId = /^\/restore-jobs\/([0-9a-f-]{36})/.exec(answer.location ?? '')?.[1];
    expect(jobId).toBeDefined();
    return jobId!;
  }

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-restore-jobs-'));
    await admin.unsafe(`create database ${SOURCE_DB}`);
    await admin.unsafe(`create database ${SCRATCH_DB}`);
    const source = postgres(dbUrl(SOURCE_DB), { max: 1, onnotice: () => {} });
    await source.unsafe(`create table orders (id int primary key, item text not null); insert into orders select g, 'item ' || g from generate_series(1, 250) g;`);
    await source.end();
    dumpDirA = path.join(base, 'a', 'dumps');
    await mkdir(dumpDirA, { recursive: true });
    execFileSync('pg_dump', ['--no-owner', '--no-privileges', '-f', path.join(dumpDirA, 'app.sql'), dbUrl(SOURCE_DB)]);
    await mkdir(path.join(base, 'b', 'data'), { recursive: true });

    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD, GC_INTERVAL_SECONDS: '3600', VERIFY_INTERVAL_SECONDS: '0' });
    // Heartbeats an hour apart: whatever arrives within the test came by the live channel.
    agentA = startAgent(envModeAgentEnv(server.url, path.join(base, 'state-a'), [path.join(base, 'a')]));
    agentB = startAgent(envModeAgentEnv(server.url, path.join(base, 'state-b'), [path.join(base, 'b', 'data')]));
    await Promise.all([waitForRuns(agentA, 1), waitForRuns(agentB, 1)]);
    clientA = (await readAgentState(path.join(base, 'state-a'))).clientId;
    clientB = (await readAgentState(path.join(base, 'state-b'))).clientId;
    session = new DashboardSession(server.url);
    await session.login();
  }, 180_000);

  afterAll(async () => {
    await agentA?.stop();
    await agentB?.stop();
    await server?.stop();
    await admin.unsafe(`drop database if exists ${SOURCE_DB}`).catch(() => undefined);
    await admin.unsafe(`drop database if exists ${SCRATCH_DB}`).catch(() => undefined);
    await admin.end();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it("restores A's pg_dump onto B and loads it into a scratch database with the post-restore command", async () => {
    const dumpPath = path.join(dumpDirA, 'app.sql');
    const target = path.join(base, 'b', 'restored');
    const restoredDump = path.join(target, dumpPath);
    const jobId = await restoreVia(clientA, {
      targetClientId: clientB,
      paths: dumpPath,
      targetDir: target,
      postCommand: `psql -v ON_ERROR_STOP=1 -q -d '${dbUrl(SCRATCH_DB)}' -f '${restoredDump}'`,
    });
    const final = await waitForJob(jobId);
    expect(final.status, agentB.output().slice(-3000)).toBe('succeeded');

    expect(await readFile(restoredDump)).toEqual(await readFile(dumpPath));
    const scratch = postgres(dbUrl(SCRATCH_DB), { max: 1 });
    try {
      const [row] = await scratch<{ count: string; last: string }[]>`select count(*)::text as count, max(item) filter (where id = 250) as last from orders`;
      expect(row).toEqual({ count: '250', last: 'item 250' });
    } finally {
      await scratch.end();
    }
    // The job page shows the outcome, the command's exit code; the jobs list of both clients names it.
    const page = (await session.get(`/restore-jobs/${jobId}`)).body;
    expect(page).toMatch(/id="command-exit-code">0</);
    expect(page).toContain('1 files');
    for (const client of [clientA, clientB]) expect((await session.get(`/clients/${client}/restores`)).body).toContain(`data-job-id="${jobId}"`);
    // B's agent did it, through the live channel (its heartbeat is an hour away).
    expect(agentB.output()).toMatch(/"msg":"restore job finished"/);
    expect(agentA.output()).not.toMatch(/"msg":"restore job started"/);
    const audit = (await session.get(`/audit?action=restore`)).body;
    expect(audit).toContain('restore.job.create');
  });

  it('a scheduled restore whose command fails raises a restore_failed alert, and a later success resolves it', async () => {
    const target = path.join(base, 'b', 'scheduled');
    await session.get(`/clients/${clientA}/restores`);
    const created = await session.post(`/clients/${clientA}/restores`, {
      when: 'schedule',
      asOf: '',
      targetClientId: clientB,
      paths: dumpDirA,
      targetDir: target,
      overwrite: 'on',
      postCommand: `test -f '${path.join(target, dumpDirA, 'go')}'`,
      postCommandTimeout: '1m',
      scheduleKind: 'cron',
      interval: '1d',
      cron: '0 4 * * *',
      timeZone: 'Europe/Berlin',
    });
    expect(created.status, created.body.slice(0, 3000)).toBe(303);
    const restores = (await session.get(`/clients/${clientA}/restores`)).body;
    const scheduleId = /data-schedule-id="([0-9a-f-]{36})"/.exec(restores)?.[1];
    expect(scheduleId).toBeDefined();
    expect(restores).toContain('0 4 * * *');

    const run = await session.post(`/restore-schedules/${scheduleId}/run`, {});
    expect(run.status).toBe(303);
    const failedJob = /^\/restore-jobs\/([0-9a-f-]{36})/.exec(run.location ?? '')![1]!;
    expect((await waitForJob(failedJob)).status).toBe('failed');
    // The job's status is written before its finish request evaluates the alerts: wait for the alert, not the status.
    const failure = /scheduled restore of .*dumps.* ended failed: the post-restore command exited with 1/;
    expect(await alertsPageWhen(clientB, (page) => failure.test(page))).toMatch(failure);

    // The marker the command looks for is backed up on A, so the next scheduled restore brings it and succeeds.
    await import('node:fs/promises').then((fs) => fs.writeFile(path.join(dumpDirA, 'go'), 'go'));
    await session.requestRun(clientA);
    await waitForRuns(agentA, 2);
    await session.get(`/clients/${clientA}/restores`);
    const again = await session.post(`/restore-schedules/${scheduleId}/run`, {});
    const okJob = /^\/restore-jobs\/([0-9a-f-]{36})/.exec(again.location ?? '')![1]!;
    expect((await waitForJob(okJob)).status).toBe('succeeded');
    // Resolved: gone from the unresolved alerts, listed among the resolved ones.
    expect(await alertsPageWhen(clientB, (page) => !failure.test(page))).not.toMatch(failure);
    expect((await session.get(`/alerts?client=${clientB}&state=resolved`)).body).toMatch(failure);
  });

  it('an agent with ALLOW_REMOTE_COMMANDS=false restores the files and refuses the command', async () => {
    const stateC = path.join(base, 'state-c');
    await mkdir(path.join(base, 'c'), { recursive: true });
    const agentC = startAgent(envModeAgentEnv(server.url, stateC, [path.join(base, 'c')], { ALLOW_REMOTE_COMMANDS: 'false' }));
    try {
      await waitForRuns(agentC, 1);
      const clientC = (await readAgentState(stateC)).clientId;
      const target = path.join(base, 'c-restored');
      const jobId = await restoreVia(clientA, { targetClientId: clientC, paths: path.join(dumpDirA, 'app.sql'), targetDir: target, postCommand: 'touch /tmp/should-not-exist' });
      expect((await waitForJob(jobId)).status).toBe('failed');
      const page = (await session.get(`/restore-jobs/${jobId}`)).body;
      expect(page).toContain('refused: ALLOW_REMOTE_COMMANDS=false on this agent');
      expect(await readFile(path.join(target, dumpDirA, 'app.sql'))).toEqual(await readFile(path.join(dumpDirA, 'app.sql')));
    } finally {
      await agentC.stop();
    }
  });

  it('cancels a job queued for an agent that is not running; the agent never starts it', async () => {
    const stateD = path.join(base, 'state-d');
    await mkdir(path.join(base, 'd'), { recursive: true });
    const agentD = startAgent(envModeAgentEnv(server.url, stateD, [path.join(base, 'd')]));
    await waitForRuns(agentD, 1);
    await agentD.stop();
    const clientD = (await readAgentState(stateD)).clientId;
    const jobId = await restoreVia(clientA, { targetClientId: clientD, paths: '/', targetDir: path.join(base, 'd-restored') });
    expect((await waitForJob(jobId, () => true)).status).toBe('queued');
    const page = await session.get(`/restore-jobs/${jobId}`);
    expect(page.body).toContain('Cancel job');
    const cancel = await session.post(`/restore-jobs/${jobId}/cancel`, {});
    expect(cancel.status).toBe(303);
    expect((await waitForJob(jobId, () => true)).status).toBe('cancelled');
    // Cancelling again is a conflict, not a success.
    await session.get(`/restore-jobs/${jobId}`);
    expect((await session.post(`/restore-jobs/${jobId}/cancel`, {})).status).toBe(409);
    const again = startAgent(envModeAgentEnv(server.url, stateD, [path.join(base, 'd')]));
    try {
      await waitForRuns(again, 1);
      expect(again.output()).not.toMatch(/restore job started/);
    } finally {
      await again.stop();
    }
  });
});
