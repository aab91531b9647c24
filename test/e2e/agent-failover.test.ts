/**
 * An agent given two server replicas (SERVER_URL with two URLs; both on one
 * PostgreSQL and one S3 store) whose first replica is killed with SIGKILL in
 * the middle of a run: the agent moves on to the second and the same run
 * goes on there and succeeds (decision 152): one run row, not a second one,
 * and the tree restores byte for byte from the second replica.
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
import { ADMIN_PASSWORD, AGENT_MAIN, crash, envModeAgentEnv, readAgentState, startAgent, waitForRuns } from '../helpers/agent-e2e.ts';
import { startProcess, startServerProcess, type ManagedProcess, type ServerProcess } from '../helpers/processes.ts';

const databaseUrl = process.env.TEST_DATABASE_URL;

describe.skipIf(!databaseUrl)('agent failover: the first of two replicas killed mid-run', () => {
  let base: string;
  let tree: string;
  let stateDir: string;
  let s3: RunningS3rver;
  let scratch: Awaited<ReturnType<typeof createScratchPostgres>>;
  let sql: postgres.Sql;
  let first: ServerProcess;
  let second: ServerProcess;
  let agent: ManagedProcess | undefined;
  const files = new Map<string, Buffer>();

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-failover-'));
    tree = path.join(base, 'tree');
    stateDir = path.join(base, 'agent-state');
    await mkdir(path.join(tree, 'many'), { recursive: true });
    // Enough to take a while: 40 files of 1.5 MiB and 400 small ones.
    for (let i = 0; i < 40; i++) files.set(`big-${i}.bin`, randomBytes(1536 * 1024 + i));
    for (let i = 0; i < 400; i++) files.set(`many/small-${i}.txt`, randomBytes(2000 + i));
    for (const [name, bytes] of files) await writeFile(path.join(tree, name), bytes);
    s3 = await startS3rver();
    scratch = await createScratchPostgres('postgres');
    sql = postgres({ ...parseDatabaseUrl(scratch!.url).options, max: 1, onnotice: () => {} });
    const env = { DATABASE_URL: scratch!.url, ...s3.env, ADMIN_PASSWORD, SECRET_KEY: 'agent-failover-test-secret-key-0123456789' };
    first = await startServerProcess({ ...env, DATA_DIR: path.join(base, 'first') });
    second = await startServerProcess({ ...env, DATA_DIR: path.join(base, 'second') });
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    await Promise.all([first?.stop(), second?.stop()]);
    await sql?.end();
    await scratch?.drop();
    await s3?.close();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('goes on with the same run on the second replica and finishes it', async () => {
    agent = startAgent(envModeAgentEnv(`${first.url},${second.url}`, stateDir, [tree]));
    // The run has started (its row exists) and has uploaded part of the tree, but not all of it.
    await (async () => {
      for (let i = 0; i < 3000; i++) {
        const [row] = await sql<{ n: number }[]>`
          select count(*)::int as n from backup_runs r where r.status = 'running'
            and exists (select 1 from chunks)`;
        if (row!.n > 0) return;
        if (agent!.child.exitCode !== null) throw new Error(`agent exited:\n${agent!.output()}`);
        await sleep(20);
      }
      throw new Error(`the run never got going:\n${agent!.output().slice(-4000)}`);
    })();
    await crash(first);

    const report = await waitForRuns(agent, 1, 180_000);
    expect(report, agent.output().slice(-4000)).toMatchObject({ status: 'succeeded', filesFailed: 0, filesChanged: files.size });
    expect(agent.output()).toContain(`server ${first.url} did not answer; going on with ${second.url}`);
    // Resumed, not started over: the one run the agent started is the one that succeeded.
    const runs = await sql<{ id: string; status: string }[]>`select id, status from backup_runs`;
    expect(runs).toEqual([{ id: report.runId, status: 'succeeded' }]);
    expect((await readAgentState(stateDir)).serverUrl).toBe(`${first.url},${second.url}`);
    await agent.stop();
    agent = undefined;

    // The restore reads the same list and finds the first replica still gone.
    const target = path.join(base, 'restored');
    const restore = startProcess(AGENT_MAIN, ['restore', '--target', target, '--state', stateDir], {});
    const code = await new Promise<number | null>((resolve) => restore.child.once('exit', resolve));
    expect(code, restore.output()).toBe(0);
    for (const [name, bytes] of files) expect((await readFile(path.join(target, tree, name))).equals(bytes), name).toBe(true);
  }, 300_000);
});
