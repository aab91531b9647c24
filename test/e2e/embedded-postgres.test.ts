/**
 * The zero-setup database: real server processes with DATABASE_URL unset,
 * each running its own PostgreSQL under DATA_DIR/pg. Covers the first start
 * (initdb, the password file), a restart, a first start that never got its
 * cluster onto disk, recovery after the server and then
 * also its postmaster were SIGKILLed, and the import of a DATA_DIR written by
 * the release that kept its metadata in PGlite.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { parseDatabaseUrl } from '../../server/src/db/database-url.ts';
import { freePort, REPO_ROOT, startProcess, startServerProcess, type ServerProcess } from '../helpers/processes.ts';

const SECRET_KEY = 'e'.repeat(40);
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function tempDataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-embedded-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

// PGlite, fetched from the npm registry by the first import, is kept here so
// later runs do not download it again (the server checks it all the same).
const PGLITE_CACHE = path.join(REPO_ROOT, 'node_modules/.cache/cairn-pglite-import');

async function start(dataDir: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = await startServerProcess({ DATA_DIR: dataDir, SECRET_KEY, ADMIN_PASSWORD: 'admin-password-1', PGLITE_IMPORT_CACHE_DIR: PGLITE_CACHE, ...env });
  cleanups.push(() => server.stop());
  return server;
}

function postmasterPid(dataDir: string): number | undefined {
  const file = path.join(dataDir, 'pg/postmaster.pid');
  return existsSync(file) ? Number(readFileSync(file, 'utf8').split('\n')[0]) : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  expect(alive(pid), `process ${pid} still running`).toBe(false);
}

/** The server's own database, entered as the server does (socket in DATA_DIR/pg, password from DATA_DIR). */
function embeddedSql(dataDir: string) {
  const password = readFileSync(path.join(dataDir, 'pg-password'), 'utf8').trim();
  const url = `postgres://cairn:${encodeURIComponent(password)}@localhost:5432/cairn?host=${encodeURIComponent(path.join(dataDir, 'pg'))}`;
  return postgres({ ...parseDatabaseUrl(url).options, max: 1, onnotice: () => {} });
}

/** The `sh` processes in the postmaster's process group: the wrapper and its stdin watcher. */
function wrapperShells(postmaster: number): number[] {
  const fields = (pid: string) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    return { comm, group: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) };
  };
  const group = fields(String(postmaster)).group;
  const shells: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const { comm, group: g } = fields(entry);
      if (g === group && comm === 'sh') shells.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return shells;
}

async function readyz(server: ServerProcess): Promise<number> {
  return (await fetch(`${server.url}/readyz`)).status;
}

describe('the embedded PostgreSQL (DATABASE_URL unset)', () => {
  it('initialises on first start with a private password, restarts, and stops with the server', async () => {
    const dataDir = await tempDataDir();
    // What an initdb interrupted by a crash leaves: its staging directory, half full.
    await mkdir(path.join(dataDir, 'pg.initdb/base'), { recursive: true });
    const first = await start(dataDir);
    expect(await readyz(first)).toBe(200);
    expect(first.output()).toContain('created the embedded PostgreSQL cluster');
    expect(first.output()).toContain(`embedded PostgreSQL in ${path.join(dataDir, 'pg')}`);
    expect(existsSync(path.join(dataDir, 'pg.initdb'))).toBe(false);
    expect((await stat(path.join(dataDir, 'pg-password'))).mode & 0o777).toBe(0o600);
    const password = readFileSync(path.join(dataDir, 'pg-password'), 'utf8').trim();
    expect(password.length).toBeGreaterThanOrEqual(32);
    expect(first.output()).not.toContain(password);
    const pid = postmasterPid(dataDir)!;
    expect(alive(pid)).toBe(true);
    expect(await first.stop()).toBe(0);
    expect(alive(pid)).toBe(false);

    const second = await start(dataDir);
    expect(await readyz(second)).toBe(200);
    expect(second.output()).not.toContain('created the embedded PostgreSQL cluster');
    expect(second.output()).not.toContain('INITIAL ADMIN PASSWORD');
  });

  it('makes the cluster of a first start that never reached the disk again, and keeps a synced one', async () => {
    const dataDir = await tempDataDir();
    const first = await start(dataDir);
    expect(await readyz(first)).toBe(200);
    // initdb ran without its sync; the server became ready only after syncing it and removing the marker.
    expect(existsSync(path.join(dataDir, 'pg-unsynced'))).toBe(false);
    const sql = embeddedSql(dataDir);
    // The server's database is initdb's own, renamed: no second copy of template1.
    expect((await sql`select datname from pg_database where not datistemplate order by datname`).map((r) => r.datname)).toEqual(['cairn']);
    await sql`create table marker_test (n int)`;
    await sql.end();
    const oldPassword = readFileSync(path.join(dataDir, 'pg-password'), 'utf8');
    expect(await first.stop()).toBe(0);

    // What a power loss during a first start leaves: the marker, written before initdb.
    await writeFile(path.join(dataDir, 'pg-unsynced'), '');
    const second = await start(dataDir);
    expect(await readyz(second)).toBe(200);
    expect(second.output()).toContain('was never synced to disk; creating it again');
    expect(second.output()).toContain('created the embedded PostgreSQL cluster');
    expect(existsSync(path.join(dataDir, 'pg-unsynced'))).toBe(false);
    expect(readFileSync(path.join(dataDir, 'pg-password'), 'utf8')).not.toBe(oldPassword);
    const check = embeddedSql(dataDir);
    expect(await check`select to_regclass('marker_test') as t`).toEqual([{ t: null }]);
    // Migrated, and its admin made again from ADMIN_PASSWORD.
    expect(await check`select username from users`).toEqual([{ username: 'admin' }]);
    await check.end();
    expect(await second.stop()).toBe(0);

    const third = await start(dataDir);
    expect(await readyz(third)).toBe(200);
    expect(third.output()).not.toContain('created the embedded PostgreSQL cluster');
  });

  it('recovers after the server is SIGKILLed, and after its postmaster is killed with it', async () => {
    const dataDir = await tempDataDir();
    const first = await start(dataDir);
    const sql = embeddedSql(dataDir);
    await sql`create table survivor (n int)`;
    await sql`insert into survivor values (42)`;
    await sql.end();
    const pid = postmasterPid(dataDir)!;
    await first.kill();
    // The postmaster does not outlive its server: the wrapper sees its stdin close.
    await gone(pid);

    const second = await start(dataDir);
    expect(await readyz(second)).toBe(200);
    const secondPid = postmasterPid(dataDir)!;
    await second.kill();
    process.kill(secondPid, 'SIGKILL');
    await gone(secondPid);
    // A postmaster.pid naming a dead process and a cluster that needs crash recovery.
    expect(postmasterPid(dataDir)).toBe(secondPid);

    const third = await start(dataDir);
    expect(await readyz(third)).toBe(200);
    const check = embeddedSql(dataDir);
    expect(await check`select n from survivor`).toEqual([{ n: 42 }]);
    await check.end();
  });

  it('stops a postmaster orphaned by a killed server and its wrapper, then starts', async () => {
    const dataDir = await tempDataDir();
    const first = await start(dataDir);
    const pid = postmasterPid(dataDir)!;
    // The wrapper's shells (its process group, less the postmaster) watch the
    // server's pipe; killing them and the server leaves the postmaster alone.
    // The watcher first (the newer pid): the server closes the pipe when it sees the wrapper die.
    for (const shell of wrapperShells(pid).sort((a, b) => b - a)) process.kill(shell, 'SIGKILL');
    await first.kill();
    expect(alive(pid)).toBe(true);

    const second = await start(dataDir);
    expect(await readyz(second)).toBe(200);
    expect(second.output()).toContain('stopping the embedded PostgreSQL left running by a server that was killed');
    expect(alive(pid)).toBe(false);
  });

  it('imports a DATA_DIR written by the PGlite release, renames the old database aside, and serves its data', async () => {
    const dataDir = await tempDataDir();
    execFileSync('tar', ['-xzf', path.join(REPO_ROOT, 'server/test/fixtures/pglite-data-dir.tar.gz'), '-C', dataDir]);
    const server = await start(dataDir);
    // PGlite is no dependency: it was fetched at the pinned version (now or by an earlier run) and loaded from the cache.
    expect(existsSync(path.join(REPO_ROOT, 'node_modules/@electric-sql/pglite'))).toBe(false);
    expect(JSON.parse(readFileSync(path.join(PGLITE_CACHE, 'pglite-0.5.16/package.json'), 'utf8')).version).toBe('0.5.16');
    expect(server.output()).toMatch(/imported the PGlite database \(\d+ rows\); the old directory is kept at/);
    expect(existsSync(path.join(dataDir, 'db'))).toBe(false);
    expect((await readdir(dataDir)).filter((name) => name.startsWith('db.imported-'))).toHaveLength(1);
    // The fixture's admin (ADMIN_PASSWORD of that release), so no new one is made.
    expect(server.output()).not.toContain('INITIAL ADMIN PASSWORD');

    const sql = embeddedSql(dataDir);
    expect((await sql`select username from users order by username`).map((row) => row.username)).toEqual(['admin', 'fixture-user']);
    expect((await sql`select p.path from file_versions fv join client_paths p on p.id = fv.path_id order by p.path`).map((row) => row.path)).toEqual(['/data/a.txt', '/data/b.txt', '/data/sub/ü.txt']);
    expect((await sql`select count(*)::int as n from clients`)[0]!.n).toBe(1);
    // Sequences continue after the imported rows.
    const [inserted] = await sql<{ id: string }[]>`insert into audit_log (actor_name, action, target_type) values ('test', 'test', 'test') returning id`;
    const [imported] = await sql<{ max: string | null }[]>`select max(id) as max from audit_log where action <> 'test'`;
    expect(Number(imported?.max)).toBeGreaterThan(0);
    expect(Number(inserted?.id)).toBeGreaterThan(Number(imported?.max));
    await sql.end();

    // The imported user can sign in to the agent API with that release's password.
    const register = await fetch(`${server.url}/api/v1/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'fixture-user', password: 'pw-fixture-user-secret', clientName: 'after-import', hostname: 'after-import' }),
    });
    expect(register.status).toBe(200);

    await server.stop();
    const again = await start(dataDir);
    expect(again.output()).not.toContain('PGlite');
  });

  it('refuses to start when PGlite cannot be fetched for a DATA_DIR/db, says what to do, and imports nothing', async () => {
    const dataDir = await tempDataDir();
    execFileSync('tar', ['-xzf', path.join(REPO_ROOT, 'server/test/fixtures/pglite-data-dir.tar.gz'), '-C', dataDir]);
    const oldFiles = execFileSync('find', ['db', '-type', 'f'], { cwd: dataDir, encoding: 'utf8' }).split('\n').sort();
    // A registry that refuses connections (a port nothing listens on), an empty cache.
    const registry = `http://127.0.0.1:${await freePort()}/`;
    const cache = path.join(dataDir, 'empty-cache');
    const proc = startProcess(path.join(REPO_ROOT, 'server/src/main.ts'), [], {
      DATA_DIR: dataDir,
      SECRET_KEY,
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      PGLITE_IMPORT_CACHE_DIR: cache,
      npm_config_registry: registry,
    });
    cleanups.push(() => proc.stop());
    const code = await new Promise<number | null>((resolve) => proc.child.once('exit', (exitCode) => resolve(exitCode)));
    expect(code).toBe(1);
    const lines = proc.output().trim().split('\n');
    const last = lines.at(-1)!;
    expect(last).toMatch(/^Cannot import the earlier release's PGlite database in .*\/db: fetching @electric-sql\/pglite@0\.5\.16 with npm failed \(ECONNREFUSED/);
    expect(last).toContain('set PGLITE_IMPORT_MODULE to an unpacked @electric-sql/pglite@0.5.16 package');
    expect(last).toContain(`or move ${path.join(dataDir, 'db')} aside to start with an empty database`);
    // Nothing imported, nothing served: the old database is as it was, no admin was made, the cache holds nothing half-fetched.
    expect(execFileSync('find', ['db', '-type', 'f'], { cwd: dataDir, encoding: 'utf8' }).split('\n').sort()).toEqual(oldFiles);
    expect((await readdir(dataDir)).filter((name) => name.startsWith('db.imported-'))).toEqual([]);
    expect(proc.output()).not.toContain('INITIAL ADMIN PASSWORD');
    expect(proc.output()).not.toContain('listening');
    expect(await readdir(cache)).toEqual([]);
    expect(postmasterPid(dataDir)).toBeUndefined();

    // Once PGlite can be had, the same DATA_DIR imports as usual (so no user was created meanwhile). Here
    // through the default cache, DATA_DIR/pglite-import, seeded from the shared one so nothing is downloaded
    // again; it has done its job after the import and is removed.
    const defaultCache = path.join(dataDir, 'pglite-import');
    await mkdir(defaultCache);
    execFileSync('cp', ['-a', path.join(PGLITE_CACHE, 'pglite-0.5.16'), defaultCache]);
    const server = await start(dataDir, { PGLITE_IMPORT_CACHE_DIR: '' });
    expect(server.output()).toMatch(/imported the PGlite database \(\d+ rows\)/);
    expect(server.output()).not.toContain('fetching @electric-sql/pglite');
    expect(server.output()).not.toContain('INITIAL ADMIN PASSWORD');
    expect(existsSync(defaultCache)).toBe(false);
  });
});
