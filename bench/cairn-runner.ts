/**
 * Cairn as a user runs it: the real server and the real agent as separate
 * processes on loopback. The server stays up for a dataset's scenarios; each
 * backup run is one agent process in environment mode, started on the same
 * state directory, stopped once it logs the end of its first run.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ListObjectsCommand, S3Client } from '@aws-sdk/client-s3';
import { AGENT_MAIN, HOST_NODE, REPO_ROOT, freePort, nodeRuntime, startProcess, startServerProcess, type NodeRuntime, type ServerProcess } from '../test/helpers/processes.ts';
import { startS3rver, type RunningS3rver } from '../server/test/helpers/s3rver.ts';
import { diskUsage } from './disk-usage.ts';
import postgres from 'postgres';
import { parseDatabaseUrl } from '../server/src/db/database-url.ts';
import { pollPeakPss, processTree, resetTreePeakRss, totalPss, treePeakRss } from './process-memory.ts';
import type { Measurement, ScenarioId, SystemId } from './scenarios.ts';

const USERNAME = 'bench';
const PASSWORD = 'bench-password-1';
const RUN_END = /"msg":"backup run (succeeded|partial|failed)"/;

/** Why the agent cannot be run yet, or null when it can. */
export function agentUnavailable(): string | null {
  return existsSync(AGENT_MAIN) ? null : `the agent has no entry point yet (${path.relative(REPO_ROOT, AGENT_MAIN)} missing)`;
}

/**
 * The node the bench runs the server and the agent under: `--node PATH`, else
 * CAIRN_BENCH_NODE, else the one running the bench (through tsx, as
 * `npm run server`). A binary that strips types itself (Node 22.18 and
 * later) runs them without tsx, as the images do (decision 182).
 */
export function benchNode(option: string | undefined, env: NodeJS.ProcessEnv = process.env): NodeRuntime {
  const chosen = option ?? (env.CAIRN_BENCH_NODE || undefined);
  return chosen === undefined ? HOST_NODE : nodeRuntime(chosen);
}

export interface CairnOptions {
  store: 'disk' | 's3';
  /** The node binary the server and agent run under (see benchNode); this process's, through tsx, when absent. */
  node?: NodeRuntime;
  /** A PostgreSQL database for the metadata (emptied by the caller); the server's embedded PostgreSQL when absent. */
  databaseUrl?: string;
  workDir: string;
  /** Directory for V8 CPU profiles of the agent and server (see cpu-profile-preload.mjs), or undefined. */
  profileDir?: string;
  runTimeoutMs: number;
  /** Directory to save the agent's and server's output (JSON logs) of each run, or undefined. */
  logDir?: string;
}

/** The agent's closing log line: the run's status and stats. */
interface RunEndLine {
  status: string;
  durationMs: number;
  filesScanned: number;
  filesChanged: number;
  filesFailed: number;
  bytesScanned: number;
  bytesUploaded: number;
  error?: string;
}

export class CairnSystem {
  readonly id: SystemId;
  readonly #dataDir: string;
  readonly #stateDir: string;
  #server: ServerProcess | null = null;
  #s3: RunningS3rver | null = null;

  private readonly options: CairnOptions;
  constructor(options: CairnOptions) {
    this.options = options;
    this.id = options.store === 's3' ? 'cairn-s3' : options.databaseUrl ? 'cairn-disk-pg' : 'cairn-disk';
    this.#dataDir = path.join(options.workDir, `${this.id}-data`);
    this.#stateDir = path.join(options.workDir, `${this.id}-agent`);
  }

  /** Under a node that strips types, Node's compile cache as the images set it (decision 182), kept in the work dir. */
  #compileCacheEnv(): Record<string, string> {
    return this.options.node?.stripsTypes ? { NODE_COMPILE_CACHE: path.join(this.options.workDir, 'node-compile-cache') } : {};
  }

  #profileEnv(role: string): Record<string, string> {
    if (this.options.profileDir === undefined) return {};
    const dir = path.join(this.options.profileDir, `${this.id}-${role}`);
    return { NODE_OPTIONS: `--import=${path.join(REPO_ROOT, 'bench/cpu-profile-preload.mjs')}`, CAIRN_CPU_PROFILE_DIR: dir };
  }

  /** Seconds from spawning the server to its first 200 from /readyz, and PSS of it with its database when idle after that. */
  startup: { seconds: number; idlePssBytes: number } | null = null;
  /** The metadata database's size right after start-up, before any backup. */
  #emptyDatabaseBytes: number | undefined;

  async start(): Promise<void> {
    await rm(this.#dataDir, { recursive: true, force: true });
    await rm(this.#stateDir, { recursive: true, force: true });
    await mkdir(this.#dataDir, { recursive: true });
    if (this.options.store === 's3') this.#s3 = await startS3rver({ bucket: 'cairn-bench' });
    const spawned = performance.now();
    this.#server = await startServerProcess({
      DATA_DIR: this.#dataDir,
      ADMIN_USERNAME: USERNAME,
      ADMIN_PASSWORD: PASSWORD,
      LOG_LEVEL: 'info',
      // Background jobs stay out of the measured runs.
      GC_INTERVAL_SECONDS: '86400',
      RETENTION_SWEEP_INTERVAL_SECONDS: '86400',
      ...(this.#s3?.env ?? {}),
      ...(this.options.databaseUrl ? { DATABASE_URL: this.options.databaseUrl } : {}),
      ...this.#profileEnv('server'),
      ...this.#compileCacheEnv(),
    }, this.options.node);
    for (;;) {
      const ready = await fetch(`${this.#server.url}/readyz`).then((r) => r.status === 200, () => false);
      if (ready) break;
      if (performance.now() - spawned > 60_000) throw new Error('the server was not ready within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const seconds = (performance.now() - spawned) / 1000;
    // Idle: after start-up work (first migrations, admin creation) has settled.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    this.startup = { seconds, idlePssBytes: await totalPss(await this.#serverProcesses()) };
    this.#emptyDatabaseBytes = await this.#databaseBytes(false);
  }

  /** One backup run of `source` by a fresh agent process on this system's state directory. */
  async backup(scenario: ScenarioId, source: string): Promise<Measurement> {
    const server = this.#server;
    if (server === null) throw new Error('start() the system first');
    await resetTreePeakRss(server.pid);
    const serverMemory = pollPeakPss(() => this.#serverProcesses());
    const started = performance.now();
    const agent = startProcess(AGENT_MAIN, [], {
      CLIENT_UI_ENABLED: 'false',
      CLIENT_UI_HOST: '127.0.0.1',
      CLIENT_UI_PORT: String(await freePort()),
      SERVER_URL: server.url,
      USERNAME,
      PASSWORD,
      CLIENT_NAME: 'bench',
      MONITORED_PATHS: source,
      AGENT_STATE_DIR: this.#stateDir,
      // Under 2^31 ms: larger values overflow Node's timers (an agent bug, reported), which runs cycles back to back.
      BACKUP_INTERVAL: String(20 * 86_400),
      PING_INTERVAL: '86400',
      LOG_LEVEL: 'info',
      ...this.#profileEnv(`agent-${scenario}`),
      ...this.#compileCacheEnv(),
    }, REPO_ROOT, this.options.node);
    const failed = (error: string): Measurement => ({
      scenario,
      system: this.id,
      ok: false,
      error,
      seconds: (performance.now() - started) / 1000,
      filesScanned: 0,
      bytesScanned: 0,
      bytesUploaded: 0,
      storedBytes: 0,
    });
    let line: RunEndLine;
    let processSeconds: number;
    let agentPeakRss: number | null;
    let serverPeakPss: number | null;
    try {
      await agent.waitForOutput(RUN_END, this.options.runTimeoutMs);
      processSeconds = (performance.now() - started) / 1000;
      agentPeakRss = await treePeakRss(agent.pid);
      serverPeakPss = await serverMemory.stop();
      const raw = agent
        .output()
        .split('\n')
        .find((l) => RUN_END.test(l));
      line = JSON.parse(raw ?? '{}') as RunEndLine;
    } catch (error) {
      await serverMemory.stop();
      await agent.stop();
      return failed(error instanceof Error ? error.message.slice(0, 4000) : String(error));
    }
    const code = await agent.stop();
    if (this.options.logDir !== undefined) {
      await mkdir(this.options.logDir, { recursive: true });
      await writeFile(path.join(this.options.logDir, `${this.id}-${scenario}-agent.log`), agent.output());
      await writeFile(path.join(this.options.logDir, `${this.id}-${scenario}-server.log`), server.output());
    }
    const stored = await this.#storedBytes();
    const databaseBytes = await this.#databaseBytes();
    const measurement: Measurement = {
      scenario,
      system: this.id,
      ok: line.status === 'succeeded',
      seconds: line.durationMs / 1000,
      processSeconds,
      filesScanned: line.filesScanned,
      bytesScanned: line.bytesScanned,
      filesChanged: line.filesChanged,
      bytesUploaded: line.bytesUploaded,
      storedBytes: stored.apparentBytes + databaseBytes,
      ...(stored.allocatedBytes !== undefined && { storedAllocatedBytes: stored.allocatedBytes + databaseBytes }),
      metadataBytes: databaseBytes,
      ...(this.#emptyDatabaseBytes !== undefined && { metadataBaselineBytes: this.#emptyDatabaseBytes }),
      agentPeakRss,
      serverPeakPss,
      status: line.status,
    };
    if (line.status !== 'succeeded') measurement.error = `agent run ${line.status}: ${line.error ?? ''} (exit ${code})`;
    return measurement;
  }

  /** How the bench enters the metadata database: DATABASE_URL's, or the embedded one as the server does (socket and password in DATA_DIR). */
  async #database(): Promise<postgres.Sql> {
    if (this.options.databaseUrl) return postgres({ ...parseDatabaseUrl(this.options.databaseUrl).options, max: 1, onnotice: () => {} });
    const password = (await readFile(path.join(this.#dataDir, 'pg-password'), 'utf8')).trim();
    const pgdata = path.join(this.#dataDir, 'pg');
    return postgres({ host: 'localhost', port: 5432, path: path.join(pgdata, '.s.PGSQL.5432'), database: 'cairn', username: 'cairn', password, max: 1, onnotice: () => {} });
  }

  /** pg_database_size of the metadata database: tables, indexes, TOAST and free space in them. */
  async #databaseBytes(detail = process.env.CAIRN_BENCH_DB_DETAIL === '1'): Promise<number> {
    const sql = await this.#database();
    try {
      const [row] = await sql<{ bytes: string }[]>`select pg_database_size(current_database())::text as bytes`;
      if (detail) {
        // Where the bytes are and which indexes the run used (decision 93's audit).
        const relations = await sql<{ name: string; bytes: string; scans: string | null }[]>`
          select c.relname as name, pg_total_relation_size(c.oid)::text as bytes, s.idx_scan::text as scans
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
          left join pg_stat_user_indexes s on s.indexrelid = c.oid
          where n.nspname = 'public' and c.relkind in ('r', 'i')
          order by pg_total_relation_size(c.oid) desc`;
        for (const r of relations) console.log(`[db] ${r.name.padEnd(40)} ${(Number(r.bytes) / 1e6).toFixed(2).padStart(8)} MB${r.scans === null ? '' : `  ${r.scans} scans`}`);
      }
      return Number(row?.bytes ?? 0);
    } finally {
      await sql.end({ timeout: 1 });
    }
  }

  /**
   * The server's processes with its database's: the server's process tree
   * (the embedded PostgreSQL runs under it), plus, with --postgres, that
   * server's processes working for the bench database, its background
   * processes (checkpointer, WAL writer, ...), which serve it too, and its
   * postmaster. The server must be local (its pids are read from /proc).
   */
  async #serverProcesses(): Promise<number[]> {
    const server = this.#server;
    if (server === null) return [];
    const pids = await processTree(server.pid);
    if (!this.options.databaseUrl) return pids;
    const sql = await this.#database();
    try {
      const rows = await sql<{ pid: number }[]>`
        select pid from pg_stat_activity
        where pid <> pg_backend_pid() and (datname = current_database() or backend_type <> 'client backend')`;
      const backends = rows.map((row) => row.pid);
      // The postmaster is in no pg_stat_activity row: it is every backend's parent.
      const postmaster = await parentPid(backends[0]);
      return [...pids, ...backends, ...(postmaster === undefined ? [] : [postmaster])];
    } finally {
      await sql.end({ timeout: 1 });
    }
  }

  async #storedBytes(): Promise<{ apparentBytes: number; allocatedBytes?: number }> {
    if (this.#s3 === null) return diskUsage(path.join(this.#dataDir, 'blobs'));
    const s3 = this.#s3;
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    let total = 0;
    let marker: string | undefined;
    try {
      // ListObjects (v1): s3rver answers ListObjectsV2 continuation pages with an internal error.
      for (;;) {
        const page = await client.send(new ListObjectsCommand({ Bucket: s3.bucket, Marker: marker }));
        for (const object of page.Contents ?? []) total += object.Size ?? 0;
        const last = page.Contents?.at(-1)?.Key;
        if (!page.IsTruncated || last === undefined) break;
        marker = last;
      }
    } finally {
      client.destroy();
    }
    return { apparentBytes: total };
  }

  /** Server output so far, for failure reports. */
  serverOutput(): string {
    return this.#server?.output() ?? '';
  }

  async stop(): Promise<void> {
    await this.#server?.stop();
    this.#server = null;
    await this.#s3?.close();
    this.#s3 = null;
    await rm(this.#dataDir, { recursive: true, force: true });
    await rm(this.#stateDir, { recursive: true, force: true });
  }
}

/** The parent of a process (from /proc/<pid>/stat), or undefined. */
async function parentPid(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}
