/**
 * Three server replicas (real server processes) on one PostgreSQL and one
 * S3 store (s3rver), an agent backing up through each. A verify run of
 * every pack is started; the replica running it, found in the servers
 * table, is killed with SIGKILL mid-run. Another replica takes the run over
 * and finishes it (decision 151), the Servers page of a survivor shows the
 * dead one as lost with the job it was running, and every agent's tree
 * restores byte for byte through a survivor.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDatabaseUrl } from '../../server/src/db/database-url.ts';
import { startS3rver, type RunningS3rver } from '../../server/test/helpers/s3rver.ts';
import { createScratchPostgres } from '../../server/test/helpers/test-database.ts';
import { ADMIN_PASSWORD, AGENT_MAIN, crash, DashboardSession, envModeAgentEnv, readAgentState, runAgentOnce } from '../helpers/agent-e2e.ts';
import { startProcess, startServerProcess, type ServerProcess } from '../helpers/processes.ts';

const databaseUrl = process.env.TEST_DATABASE_URL;
const AGENTS = 3;
const FILES_PER_AGENT = 4;
/** Incompressible, so each agent's tree fills several 8 MiB packs and a full verify run reads about 100 MB. */
const FILE_BYTES = 8 * 1024 * 1024 + 12_345;

/** The one number a `select count(*)::int as n` answers. */
async function count(query: Promise<{ n: number }[]>): Promise<number> {
  return (await query)[0]!.n;
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await check();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await sleep(20);
  }
}

describe.skipIf(!databaseUrl)('three replicas: the one running verify is killed mid-run, another finishes it', () => {
  let base: string;
  let s3: RunningS3rver;
  let scratch: Awaited<ReturnType<typeof createScratchPostgres>>;
  let sql: postgres.Sql;
  const replicas: ServerProcess[] = [];
  const trees: { dir: string; stateDir: string; files: Map<string, Buffer> }[] = [];

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-takeover-'));
    s3 = await startS3rver();
    scratch = await createScratchPostgres('postgres');
    sql = postgres({ ...parseDatabaseUrl(scratch!.url).options, max: 2, onnotice: () => {} });
    const env = {
      DATABASE_URL: scratch!.url,
      ...s3.env,
      ADMIN_PASSWORD,
      SECRET_KEY: 'cluster-takeover-test-secret-key-0123456789',
      // Scheduled runs read one pack each (their share of a 30-day pass), so the next replica's takes over within seconds.
      VERIFY_INTERVAL_SECONDS: '3',
      CLUSTER_HEARTBEAT_SECONDS: '1',
      CLUSTER_LOST_AFTER_SECONDS: '3',
    };
    // Started together: they race for the migrations on the empty database (the advisory lock lets them take turns).
    replicas.push(...(await Promise.all([0, 1, 2].map((i) => startServerProcess({ ...env, DATA_DIR: path.join(base, `server-${i}`) })))));
    for (let i = 0; i < AGENTS; i++) {
      const dir = path.join(base, `tree-${i}`);
      await mkdir(path.join(dir, 'sub'), { recursive: true });
      const files = new Map<string, Buffer>();
      for (let f = 0; f < FILES_PER_AGENT; f++) files.set(f % 2 === 0 ? `file-${f}.bin` : `sub/file-${f}.bin`, randomBytes(FILE_BYTES));
      files.set('small.txt', Buffer.from(`agent ${i}\n`));
      for (const [name, bytes] of files) await writeFile(path.join(dir, name), bytes);
      const stateDir = path.join(base, `agent-${i}`);
      trees.push({ dir, stateDir, files });
    }
    // One agent per replica, all at once.
    const runs = await Promise.all(trees.map((t, i) => runAgentOnce(envModeAgentEnv(replicas[i]!.url, t.stateDir, [t.dir]))));
    for (const { report } of runs) expect(report).toMatchObject({ status: 'succeeded', filesFailed: 0 });
  }, 300_000);

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await sql?.end();
    await scratch?.drop();
    await s3?.close();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('takes the run over on another replica, shows the dead one as lost, and loses nothing', async () => {
    const packs = await count(sql`select count(*)::int as n from packs where retired_at is null`);
    expect(packs).toBeGreaterThanOrEqual(9);

    // "Verify now" on the first replica; a scheduled run of another may hold the lock for a moment.
    const admin = new DashboardSession(replicas[0]!.url);
    await admin.login();
    const manual = await until('a verify run of every pack running', async () => {
      const [running] = await sql<{ id: number; server_id: string; started_at: Date }[]>`
        select id, server_id, started_at from verify_runs where trigger = 'manual' and status = 'running'`;
      if (running) return running;
      await admin.startVerify();
      await sleep(200);
      return undefined;
    });
    // The replica running it, as the servers table names it.
    const [holder] = await sql<{ id: string; pid: number; running_jobs: string[] }[]>`select id, pid, running_jobs from servers where id = ${manual.server_id}`;
    expect(holder?.running_jobs).toContain('verify');
    const victim = replicas.find((r) => r.pid === holder!.pid)!;
    expect(victim).toBeDefined();
    await crash(victim);

    // Mid-run: some packs of its plan were not read when it died.
    const read = await count(sql`select count(*)::int as n from packs where verified_at >= ${manual.started_at}`);
    expect(read).toBeLessThan(packs);

    const survivors = replicas.filter((r) => r !== victim);
    const takeover = await until('another replica finishing the interrupted run', async () => {
      const [interrupted] = await sql<{ status: string; error: string | null }[]>`select status, error from verify_runs where id = ${manual.id}`;
      if (interrupted?.status !== 'interrupted') return undefined;
      const runId = Number(/run #(\d+) went on/.exec(interrupted.error ?? '')?.[1]);
      const [next] = await sql<{ status: string; server_id: string; packs_planned: number; packs_checked: number; damaged_chunks: number }[]>`
        select status, server_id, packs_planned, packs_checked, damaged_chunks from verify_runs where id = ${runId}`;
      return next?.status === 'succeeded' ? next : undefined;
    });
    expect(takeover.server_id).not.toBe(holder!.id);
    expect(survivors.map((r) => r.pid)).toContain((await sql<{ pid: number }[]>`select pid from servers where id = ${takeover.server_id}`)[0]!.pid);
    expect(takeover.packs_planned).toBeGreaterThanOrEqual(packs - read);
    expect(takeover.packs_checked).toBe(takeover.packs_planned);
    expect(takeover.damaged_chunks).toBe(0);
    // Every pack was read since the interrupted run started: by it or by the run that took over.
    const unread = await count(sql`
      select count(*)::int as n from packs where retired_at is null and (verified_at is null or verified_at < ${manual.started_at})`);
    expect(unread).toBe(0);

    // The Servers page of a survivor: the dead replica lost, with the job it was running; the others running.
    const watcher = new DashboardSession(survivors[0]!.url);
    await watcher.login();
    const row = (page: string, id: string) => page.slice(page.indexOf(`data-server-id="${id}"`), page.indexOf('</tr>', page.indexOf(`data-server-id="${id}"`)));
    const page = await until('the killed replica shown as lost', async () => {
      const html = await watcher.page('/servers');
      return row(html, holder!.id).includes('data-server-state="lost"') ? html : undefined;
    });
    expect(row(page, holder!.id)).toContain('data-running-jobs="verify"');
    const running = await count(sql`select count(*)::int as n from servers where stopped_at is null and heartbeat_at > now() - interval '3 seconds'`);
    expect(running).toBe(2);

    // Nothing lost: each agent's tree restores byte for byte through a survivor.
    for (const [i, tree] of trees.entries()) {
      const { token } = await readAgentState(tree.stateDir);
      const target = path.join(base, `restored-${i}`);
      const proc = startProcess(AGENT_MAIN, ['restore', '--target', target, '--server', survivors[i % 2]!.url, '--token', token], {});
      const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
      expect(code, proc.output()).toBe(0);
      for (const [name, bytes] of tree.files) expect((await readFile(path.join(target, tree.dir, name))).equals(bytes), name).toBe(true);
    }
  }, 300_000);
});
