/**
 * The replica registry (decision 149): every server process has a row in
 * `servers`, refreshed by a heartbeat, naming the periodic jobs whose
 * advisory lock it holds right now, and marked stopped at a clean shutdown.
 * Ages and "lost" are computed on the database's clock, so replicas whose
 * clocks disagree still agree on what they show.
 */
import os from 'node:os';
import { sql } from 'drizzle-orm';
import packageJson from '../../package.json' with { type: 'json' };
import type { AppContext } from '../app-context.ts';
import { LOCK_KEYS, lockManagerFor, type JobLockKey } from '../db/advisory-locks.ts';
import { rowsOf } from '../db/database.ts';
import { servers } from '../db/schema.ts';

export const SERVER_VERSION: string = packageJson.version;

/** The name each job lock is shown under (the periodic jobs of periodic-jobs.ts; verify also on demand). */
export const JOB_NAMES: Record<JobLockKey, string> = {
  [LOCK_KEYS.retentionSweep]: 'retention',
  [LOCK_KEYS.gcRun]: 'gc',
  [LOCK_KEYS.verifyRun]: 'verify',
  [LOCK_KEYS.v1Migration]: 'v1-to-packs',
  [LOCK_KEYS.alertEngine]: 'alerts',
  [LOCK_KEYS.replication]: 'replication',
  [LOCK_KEYS.metadataExport]: 'metadata-export',
};

/** Stopped and lost rows are deleted once their last heartbeat is this old. */
export const FORGET_AFTER_HOURS = 24;

export interface ServerRegistration {
  readonly id: string;
  /** Stops the heartbeat and marks the row stopped (a clean shutdown); call after the jobs stopped. */
  stop(): Promise<void>;
}

/**
 * Registers this process as `ctx.serverId` and keeps its row current: a
 * heartbeat every CLUSTER_HEARTBEAT_SECONDS, and a write at once whenever a
 * job lock is taken or let go, so the page never lags a job by a heartbeat.
 * A failed write is logged and the next one tries again; a row pruned while
 * this replica was cut off is inserted again.
 */
export async function registerServer(ctx: AppContext & { serverId: string }, listenUrl: string): Promise<ServerRegistration> {
  const db = ctx.database.db;
  const id = ctx.serverId;
  const held = new Map<string, number>();
  const runningJobs = () => [...held.keys()].sort();
  const upsert = () =>
    db
      .insert(servers)
      .values({ id, host: os.hostname(), pid: process.pid, version: SERVER_VERSION, listenUrl, runningJobs: runningJobs() })
      .onConflictDoUpdate({ target: servers.id, set: { heartbeatAt: sql`now()`, runningJobs: runningJobs(), stoppedAt: null } });
  await upsert();
  ctx.log.info({ serverId: id, host: os.hostname(), pid: process.pid }, 'registered in the servers table');

  // One write at a time, in order; a write asked for while one runs follows it.
  let chain: Promise<void> = Promise.resolve();
  const write = (what: string) => {
    chain = chain
      .then(() => upsert())
      .then(
        () => undefined,
        (error: unknown) => ctx.log.warn({ err: error, serverId: id }, `could not write this replica's ${what}; the next heartbeat tries again`),
      );
    return chain;
  };
  const unwatch = lockManagerFor(ctx.database).watchJobLocks((key, isHeld) => {
    const name = JOB_NAMES[key];
    const count = (held.get(name) ?? 0) + (isHeld ? 1 : -1);
    if (count > 0) held.set(name, count);
    else held.delete(name);
    void write('running jobs');
  });
  const beat = async () => {
    await write('heartbeat');
    await db
      .execute(sql`delete from servers where heartbeat_at < now() - make_interval(hours => ${FORGET_AFTER_HOURS})`)
      .catch((error: unknown) => ctx.log.warn({ err: error }, 'could not prune old servers rows'));
  };
  const timer = setInterval(() => void beat(), ctx.config.cluster.heartbeatSeconds * 1000);
  timer.unref();

  return {
    id,
    async stop() {
      clearInterval(timer);
      unwatch();
      await chain;
      await db
        .update(servers)
        .set({ stoppedAt: sql`now()`, heartbeatAt: sql`now()`, runningJobs: [] })
        .where(sql`${servers.id} = ${id}`)
        .catch((error: unknown) => ctx.log.warn({ err: error, serverId: id }, 'could not mark this replica stopped'));
    },
  };
}

export type ServerState = 'running' | 'lost' | 'stopped';

export interface ServerRow {
  id: string;
  host: string;
  pid: number;
  version: string;
  listenUrl: string;
  startedAt: Date;
  heartbeatAt: Date;
  stoppedAt: Date | null;
  /** Seconds since the last heartbeat, on the database's clock. */
  heartbeatAgeSeconds: number;
  state: ServerState;
  /** The jobs it runs now; for a lost replica, what it was running when it went silent. */
  runningJobs: string[];
  /** The process answering this request. */
  isThisServer: boolean;
}

/** Every registered replica: running ones first, then by start, newest first. */
export async function listServers(ctx: AppContext): Promise<ServerRow[]> {
  const lostAfter = ctx.config.cluster.lostAfterSeconds;
  const rows = rowsOf<{
    id: string;
    host: string;
    pid: number;
    version: string;
    listen_url: string;
    started_at: Date | string;
    heartbeat_at: Date | string;
    stopped_at: Date | string | null;
    running_jobs: string[];
    age: number | string;
    state: ServerState;
  }>(
    await ctx.database.db.execute(sql`
      select id, host, pid, version, listen_url, started_at, heartbeat_at, stopped_at, running_jobs,
        extract(epoch from now() - heartbeat_at)::float8 as age,
        case when stopped_at is not null then 'stopped'
             when heartbeat_at < now() - make_interval(secs => ${lostAfter}) then 'lost'
             else 'running' end as state
      from servers
      order by (stopped_at is null and heartbeat_at >= now() - make_interval(secs => ${lostAfter})) desc, started_at desc, id`),
  );
  return rows.map((row) => ({
    id: row.id,
    host: row.host,
    pid: Number(row.pid),
    version: row.version,
    listenUrl: row.listen_url,
    startedAt: new Date(row.started_at),
    heartbeatAt: new Date(row.heartbeat_at),
    stoppedAt: row.stopped_at === null ? null : new Date(row.stopped_at),
    heartbeatAgeSeconds: Math.max(0, Number(row.age)),
    state: row.state,
    runningJobs: row.state === 'stopped' ? [] : row.running_jobs,
    isThisServer: row.id === ctx.serverId,
  }));
}
