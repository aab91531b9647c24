/**
 * The `cairn` CLI (issue 14) as a real process against a real server: login
 * with a password read from stdin saves a token in a 0600 file, account and
 * clients read the admin API, files lists a tree as of a time, file url and
 * folder url print temporary download URLs that work without a session,
 * file get downloads, users, runs, rules and file versions read the admin
 * API, restore makes a restore job and --wait follows it to its outcome,
 * alerts lists and acknowledges, verify lists and starts
 * runs (administrators), logout revokes the token and deletes the file, and
 * errors are clear with a non-zero exit.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { and, eq } from 'drizzle-orm';
import { alerts, auditLog } from '../../server/src/db/schema.ts';
import { listRuns } from '../../server/src/services/backup-repository.ts';
import { TestAgent } from '../../server/test/dashboard/agent-fixture.ts';
import { addUser, startDashboardHarness, type DashboardHarness } from '../../server/test/dashboard/dashboard-harness.ts';
import { REPO_ROOT } from '../helpers/processes.ts';

/** The client's agent, played over the agent API where a test needs one. */
const cliAgent: { agent: TestAgent } = { agent: undefined as unknown as TestAgent };

/** The installed bin, which finds tsx itself, so it runs from any folder. */
const CLI = path.join(REPO_ROOT, 'client/bin/cairn.js');

describe('cairn CLI', () => {
  let h: DashboardHarness;
  let dir: string;
  let configFile: string;
  let firstRunAt: string;
  let aliceId: string;
  let clientId: string;

  /** Runs `cairn args...` to its end, with `stdin` piped in. */
  function cairn(args: string[], stdin = '', cwd = REPO_ROOT): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        cwd,
        env: { PATH: process.env.PATH ?? '', HOME: dir, CAIRN_CLI_CONFIG: configFile },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(stdin);
    });
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-cli-'));
    configFile = path.join(dir, 'config', 'cli.json');
    h = await startDashboardHarness('embedded');
    aliceId = (await addUser(h.ctx, 'alice', 'alice-password-1')).id;
    const agent = await TestAgent.register(h.url, 'alice', 'alice-password-1', 'alice-laptop');
    cliAgent.agent = agent;
    clientId = agent.clientId;
    await agent.backup([{ path: '/home/alice/notes.txt', content: 'first notes' }]);
    firstRunAt = (await listRuns(h.ctx.database.db, agent.clientId))[0]!.finishedAt!;
    await new Promise((resolve) => setTimeout(resolve, 20));
    await agent.backup([
      { path: '/home/alice/notes.txt', content: 'second notes' },
      { path: '/home/alice/docs/plan.md', content: '# plan' },
    ]);
  });

  afterAll(async () => {
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses commands before login, and a wrong password', async () => {
    const before = await cairn(['clients']);
    expect(before.code).toBe(2);
    expect(before.stderr).toContain('not signed in: run cairn login first');
    const wrong = await cairn(['login', '--server', h.url, '--username', 'alice'], 'wrong-password\n');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('invalid username or password');
  });

  it('logs in with a password from stdin and saves a token in a 0600 file', async () => {
    const result = await cairn(['login', '--server', h.url + '/', '--username', 'alice'], 'alice-password-1\n');
    expect(result.stderr).toContain('Token "cairn CLI (');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Signed in to ${h.url} as alice`);
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(await readFile(configFile, 'utf8')) as { server: string; token: string; username: string };
    expect(saved).toMatchObject({ server: h.url, username: 'alice' });
    expect(saved.token).toMatch(/^cairn_pat_/);
    expect(await readFile(configFile, 'utf8')).not.toContain('alice-password-1');
  });

  it('shows the account and the clients with their last run', async () => {
    const account = await cairn(['account']);
    expect(account.code).toBe(0);
    expect(account.stdout).toContain(`alice on ${h.url}`);
    expect(account.stdout).toContain('clients: alice-laptop');
    const clients = await cairn(['clients']);
    expect(clients.code).toBe(0);
    expect(clients.stdout).toMatch(/^alice-laptop\t[0-9a-f-]{36}\tlast run succeeded /);
    const asJson = JSON.parse((await cairn(['clients', '--json'])).stdout) as { clients: { name: string; lastRun: { status: string } }[] };
    expect(asJson.clients[0]).toMatchObject({ name: 'alice-laptop', lastRun: { status: 'succeeded' } });
  });

  it('lists files now and as of an earlier time', async () => {
    const now = await cairn(['files', 'alice-laptop', '/home/alice']);
    expect(now.code).toBe(0);
    expect(now.stdout).toContain('/home/alice/docs/plan.md');
    expect(now.stdout).toContain('/home/alice/notes.txt');
    const then = JSON.parse((await cairn(['files', 'alice-laptop', '--as-of', firstRunAt, '--json'])).stdout) as { files: { path: string }[] };
    expect(then.files.map((f) => f.path)).toEqual(['/home/alice/notes.txt']);
    const unknown = await cairn(['files', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no client "nope"; yours: alice-laptop');
  });

  it('prints temporary download URLs that work without a session', async () => {
    const file = await cairn(['file', 'url', 'alice-laptop', '/home/alice/notes.txt', '--as-of', firstRunAt, '--expires', '10m']);
    expect(file.code).toBe(0);
    const url = file.stdout.trim();
    expect(url).toMatch(new RegExp(`^${h.url}/api/v1/download/cairn_dl_`));
    expect(file.stderr).toContain('valid until');
    expect(await (await fetch(url)).text()).toBe('first notes');

    const folder = await cairn(['folder', 'url', 'alice-laptop', '/home/alice/docs']);
    expect(folder.code).toBe(0);
    const archive = gunzipSync(Buffer.from(await (await fetch(folder.stdout.trim())).arrayBuffer())).toString('latin1');
    expect(archive).toContain('# plan');

    const tooLong = await cairn(['file', 'url', 'alice-laptop', '/home/alice/notes.txt', '--expires', '8d']);
    expect(tooLong.code).toBe(1);
    expect(tooLong.stderr).toContain('expiresInSeconds: from 1 second to 7 days');
    const unreadable = await cairn(['file', 'url', 'alice-laptop', '/home/alice/notes.txt', '--expires', 'soon']);
    expect(unreadable.code).toBe(2);
    expect(unreadable.stderr).toContain('--expires: not a duration');
  });

  it('downloads a file with file get, refusing to overwrite', async () => {
    const got = await cairn(['file', 'get', 'alice-laptop', '/home/alice/notes.txt'], '', dir);
    expect(got.code).toBe(0);
    expect(await readFile(path.join(dir, 'notes.txt'), 'utf8')).toBe('second notes');
    const again = await cairn(['file', 'get', 'alice-laptop', '/home/alice/notes.txt'], '', dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('not overwriting an existing file');
  });

  it('lists users, runs, the retention in force and a file\'s versions', async () => {
    const users = await cairn(['users']);
    expect(users.code).toBe(0);
    expect(users.stdout).toMatch(/^alice\t[0-9a-f-]{36}\tuser\tkeeps \d+ versions/);
    const runs = await cairn(['runs', 'alice-laptop', '--limit', '5']);
    expect(runs.code).toBe(0);
    expect(runs.stdout.trim().split('\n')).toHaveLength(2);
    expect(runs.stdout).toMatch(/succeeded/);
    expect((await cairn(['runs', 'alice-laptop', '--limit', 'lots'])).code).toBe(2);
    const rules = await cairn(['rules', 'alice-laptop']);
    expect(rules.code).toBe(0);
    expect(rules.stdout).toMatch(/each file: the last \d+ versions.*\(owner's policy\)/);
    const versions = await cairn(['file', 'versions', 'alice-laptop', '/home/alice/notes.txt', '--json']);
    const listed = JSON.parse(versions.stdout) as { versions: { size: number; validTo: string | null }[] };
    expect(listed.versions.map((v) => [v.size, v.validTo === null])).toEqual([[12, true], [11, false]]);
  });

  it('makes a restore job and follows it with --wait to the agent\'s outcome, exit 0 on success', async () => {
    const { agent } = cliAgent;
    const waiting = cairn(['restore', 'alice-laptop', '/home/alice/docs', '--into', '/srv/restored', '--then', 'ls', '--wait']);
    // Play the target agent over the real agent API: claim the job, report progress, finish it.
    let claimed: { jobId: string; paths: string[]; targetDir: string; postCommand: string | null } | null = null;
    for (let i = 0; i < 200 && claimed === null; i++) {
      const answer = await fetch(`${h.url}/api/v1/restore-jobs/claim`, { method: 'POST', headers: { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' }, body: '{}' });
      if (answer.status === 200) claimed = (await answer.json()) as typeof claimed;
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(claimed).toMatchObject({ paths: ['/home/alice/docs'], targetDir: '/srv/restored', postCommand: 'ls' });
    const command = { command: 'ls', source: 'server', exitCode: 0, durationMs: 3, timedOut: false, output: 'plan.md' };
    const finish = await fetch(`${h.url}/api/v1/restore-jobs/${claimed!.jobId}/finish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'succeeded', filesRestored: 1, bytesRestored: 6, filesFailed: 0, failures: [], command, error: null }),
    });
    expect(finish.status).toBe(200);
    const done = await waiting;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain(`Restore job ${claimed!.jobId} succeeded`);
    expect(done.stdout).toContain('command ls: exit code 0');
    const listed = await cairn(['restores', 'alice-laptop']);
    expect(listed.stdout).toContain(`${claimed!.jobId}\tsucceeded\talice-laptop → alice-laptop\t/home/alice/docs`);
    // A finished job cannot be cancelled; a bad path is the server's 400, exit 1; no --into is a usage error.
    expect((await cairn(['restore', 'cancel', claimed!.jobId])).code).toBe(1);
    const bad = await cairn(['restore', 'alice-laptop', 'relative', '--into', '/srv/x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('paths: not an absolute path');
    expect((await cairn(['restore', 'alice-laptop', '/home'])).code).toBe(2);
  });

  it('logs in with an existing token too', async () => {
    const saved = JSON.parse(await readFile(configFile, 'utf8')) as { token: string };
    const bad = await cairn(['login', '--server', h.url, '--token', 'cairn_pat_nope']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown, expired or revoked token');
    const good = await cairn(['login', '--server', h.url, '--token', saved.token]);
    expect(good.code).toBe(0);
    expect(good.stdout).toContain('as alice');
  });

  it('logs out: revokes the saved token on the server and deletes the file', async () => {
    const saved = JSON.parse(await readFile(configFile, 'utf8')) as { token: string };
    const me = () => fetch(`${h.url}/api/v1/admin/me`, { headers: { authorization: `Bearer ${saved.token}` } });
    expect((await me()).status).toBe(200);
    const out = await cairn(['logout']);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`Signed out of ${h.url}: token revoked on the server; removed ${configFile}`);
    await expect(stat(configFile)).rejects.toThrow(/ENOENT/);
    expect((await me()).status).toBe(401);
    const revoked = await h.ctx.database.db.select().from(auditLog).where(and(eq(auditLog.action, 'user.api-token.revoke'), eq(auditLog.targetId, aliceId)));
    expect(revoked.map((r) => r.actorName)).toEqual([expect.stringMatching(/^alice \(API token "cairn CLI \(/)]);
    const after = await cairn(['clients']);
    expect(after.code).toBe(2);
    expect(after.stderr).toContain('not signed in');
    const again = await cairn(['logout']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('Not signed in');
  });

  it('logs out with exit code 0 when the server already refuses the token, and keeps the file when it cannot ask', async () => {
    expect((await cairn(['login', '--server', h.url, '--username', 'alice'], 'alice-password-1\n')).code).toBe(0);
    const saved = JSON.parse(await readFile(configFile, 'utf8')) as { token: string };
    // Revoked elsewhere first (here: by itself, as a script would).
    expect((await fetch(`${h.url}/api/v1/admin/me/token`, { method: 'DELETE', headers: { authorization: `Bearer ${saved.token}` } })).status).toBe(200);
    const out = await cairn(['logout']);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('the server already refused the token (revoked or expired)');
    await expect(stat(configFile)).rejects.toThrow(/ENOENT/);

    await mkdir(path.dirname(configFile), { recursive: true });
    await writeFile(configFile, JSON.stringify({ server: 'http://127.0.0.1:9', token: saved.token, username: 'alice' }), { mode: 0o600 });
    const unreachable = await cairn(['logout']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('cannot reach http://127.0.0.1:9');
    expect(unreachable.stderr).toContain('the token is still valid and still saved in');
    expect((await stat(configFile)).isFile()).toBe(true);
    await rm(configFile);
  });

  it('lists and acknowledges alerts, and lists and starts verify runs as an administrator', async () => {
    const [alert] = await h.ctx.database.db
      .insert(alerts)
      .values({ clientId, type: 'mass_change', severity: 'critical', dedupeKey: 'mass_change', observed: '90%', reference: '2%', message: '90% of the files changed' })
      .returning();
    expect((await cairn(['login', '--server', h.url, '--username', 'alice'], 'alice-password-1\n')).code).toBe(0);
    const listed = await cairn(['alerts']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toBe(`${alert!.id}\topen\tcritical\tmass_change\talice-laptop\t${listed.stdout.split('\t')[5]}\t90% of the files changed\n`);
    const forClient = JSON.parse((await cairn(['alerts', '--client', 'alice-laptop', '--json'])).stdout) as { alerts: { id: string; state: string }[] };
    expect(forClient.alerts).toEqual([expect.objectContaining({ id: alert!.id, state: 'open' })]);
    const acked = await cairn(['alerts', 'ack', alert!.id]);
    expect(acked.code).toBe(0);
    expect(acked.stdout).toContain(`Alert ${alert!.id} acknowledged.`);
    const twice = await cairn(['alerts', 'ack', alert!.id]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('cairn: this alert is already acknowledged');
    expect((await cairn(['alerts', '--state', 'acknowledged'])).stdout).toContain(`${alert!.id}\tacknowledged`);
    const badState = await cairn(['alerts', '--state', 'sideways']);
    expect(badState.code).toBe(1);
    expect(badState.stderr).toContain('state');
    expect((await cairn(['alerts', 'ack'])).code).toBe(2);

    const notAdmin = await cairn(['verify']);
    expect(notAdmin.code).toBe(1);
    expect(notAdmin.stderr).toContain('only administrators can read verify runs');
    await addUser(h.ctx, 'root', 'root-password-1', true);
    expect((await cairn(['login', '--server', h.url, '--username', 'root'], 'root-password-1\n')).code).toBe(0);
    const none = await cairn(['verify']);
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('No verify runs yet.\nNothing is damaged.\n');
    const started = await cairn(['verify', 'start']);
    expect(started.code).toBe(0);
    expect(started.stdout).toContain('Verify run started');
    const report = JSON.parse((await cairn(['verify', '--json'])).stdout) as { runs: { trigger: string; status: string }[]; damaged: unknown[] };
    expect(report.runs).toHaveLength(1);
    expect(report.runs[0]).toMatchObject({ trigger: expect.any(String), status: expect.stringMatching(/^(running|succeeded)$/) });
    expect(report.damaged).toEqual([]);
    expect((await cairn(['logout'])).code).toBe(0);
  });
});
