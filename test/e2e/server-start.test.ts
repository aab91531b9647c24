/**
 * The server process starting against a real PostgreSQL: several replicas at
 * once on an empty database, DATABASE_URL in libpq's forms (a Unix socket
 * directory in `?host=`, `sslmode`), and a malformed DATABASE_URL refused in
 * one line. Real processes started as `npm run server` starts them.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createScratchPostgres } from '../../server/test/helpers/test-database.ts';
import { REPO_ROOT, startProcess, startServerProcess, type ServerProcess } from '../helpers/processes.ts';

const SOCKET_DIR = '/var/run/postgresql';
const hasPostgres = Boolean(process.env.TEST_DATABASE_URL || process.env.DATABASE_URL);
const hasSocket = existsSync(path.join(SOCKET_DIR, '.s.PGSQL.5432'));
const SECRET_KEY = 'server-start-test-secret-key-0123456789abcdef';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-server-start-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function scratchDatabase(): Promise<{ url: string; name: string }> {
  const scratch = await createScratchPostgres();
  if (!scratch) throw new Error('needs TEST_DATABASE_URL');
  cleanups.push(() => scratch.drop());
  return { url: scratch.url, name: new URL(scratch.url).pathname.slice(1) };
}

async function startServer(env: Record<string, string>): Promise<ServerProcess> {
  const server = await startServerProcess({ SECRET_KEY, ADMIN_PASSWORD: 'admin-password-1', ...env });
  cleanups.push(() => server.stop());
  return server;
}

async function readyz(server: ServerProcess): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${server.url}/readyz`);
  return { status: response.status, body: await response.json() };
}

describe.skipIf(!hasPostgres)('server replicas on an empty PostgreSQL database', () => {
  // The race is between processes creating the same tables at the same moment,
  // so one round can pass by luck; several rounds make a lost race near certain.
  const ROUNDS = 5;
  const REPLICAS = 4;

  it(`all ${REPLICAS} replicas started at once come up, in each of ${ROUNDS} rounds`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const { url } = await scratchDatabase();
      const dataDir = await tempDir();
      const started = await Promise.allSettled(
        Array.from({ length: REPLICAS }, () => startServer({ DATABASE_URL: url, DATA_DIR: dataDir })),
      );
      const failures = started.flatMap((result) => (result.status === 'rejected' ? [String(result.reason)] : []));
      expect(failures, `round ${round + 1}`).toEqual([]);
      for (const result of started) {
        if (result.status === 'fulfilled') expect(await readyz(result.value)).toMatchObject({ status: 200, body: { status: 'ready' } });
      }
      // Exactly one of them created the initial admin.
      const outputs = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value.output()] : []));
      expect(outputs.filter((output) => output.includes('initial-admin-created'))).toHaveLength(1);
      while (cleanups.length > 0) await cleanups.pop()!();
    }
  });
});

describe.skipIf(!hasPostgres)('DATABASE_URL forms', () => {
  it.skipIf(!hasSocket)('connects through the Unix socket directory given in ?host=', async () => {
    const { name } = await scratchDatabase();
    const server = await startServer({ DATABASE_URL: `postgres://postgres@localhost/${name}?host=${SOCKET_DIR}`, DATA_DIR: await tempDir() });
    expect(await readyz(server)).toMatchObject({ status: 200 });
    expect(server.output()).toContain(`metadata in postgres://postgres@localhost:5432/${name}?host=${SOCKET_DIR}`);
  });

  it.skipIf(!hasSocket)('connects through a socket directory spelled percent-encoded as the host', async () => {
    const { name } = await scratchDatabase();
    const server = await startServer({ DATABASE_URL: `postgresql://postgres@${encodeURIComponent(SOCKET_DIR)}/${name}`, DATA_DIR: await tempDir() });
    expect(await readyz(server)).toMatchObject({ status: 200 });
  });

  it('accepts sslmode=disable', async () => {
    const { url } = await scratchDatabase();
    const withSslmode = new URL(url);
    withSslmode.searchParams.set('sslmode', 'disable');
    const server = await startServer({ DATABASE_URL: withSslmode.toString(), DATA_DIR: await tempDir() });
    expect(await readyz(server)).toMatchObject({ status: 200 });
  });

  it.each([
    ['an unparseable URL', 'postgres://postgres@%zz/cairn', /^Invalid configuration: DATABASE_URL /],
    ['a port out of range', 'postgres://postgres@localhost:99999/cairn', /^Invalid configuration: DATABASE_URL /],
    ['an unknown sslmode', 'postgres://postgres@localhost/cairn?sslmode=sometimes', /sslmode/],
    ['an unsupported parameter', 'postgres://postgres@localhost/cairn?hots=/var/run/postgresql', /hots/],
  ])('refuses %s with one clear line and exit 1', async (_name, databaseUrl, pattern) => {
    const proc = startProcess(path.join(REPO_ROOT, 'server/src/main.ts'), [], { DATABASE_URL: databaseUrl, DATA_DIR: await tempDir(), PORT: '0' });
    cleanups.push(() => proc.stop());
    const code = await new Promise<number | null>((resolve) => proc.child.once('exit', (exitCode) => resolve(exitCode)));
    const lines = proc.output().trim().split('\n');
    expect(code).toBe(1);
    expect(lines, proc.output()).toHaveLength(1);
    expect(lines[0]).toMatch(pattern);
    expect(proc.output()).not.toMatch(/\n\s+at /);
  });

  it.each([
    ['a database that does not exist', (base: URL) => Object.assign(new URL(base), { pathname: '/cairn_no_such_database' }), /does not exist/],
    ['a port nobody listens on', (base: URL) => Object.assign(new URL(base), { port: '1' }), /ECONNREFUSED/],
  ])('names %s in one line and exits 1', async (_name, urlFor, pattern) => {
    const base = new URL((process.env.TEST_DATABASE_URL || process.env.DATABASE_URL)!);
    const databaseUrl = urlFor(base).toString();
    const proc = startProcess(path.join(REPO_ROOT, 'server/src/main.ts'), [], { DATABASE_URL: databaseUrl, DATA_DIR: await tempDir(), PORT: '0' });
    cleanups.push(() => proc.stop());
    const code = await new Promise<number | null>((resolve) => proc.child.once('exit', (exitCode) => resolve(exitCode)));
    const lines = proc.output().trim().split('\n');
    expect(code).toBe(1);
    expect(lines, proc.output()).toHaveLength(1);
    expect(lines[0]).toMatch(/^Cannot use the PostgreSQL database at postgres:\/\//);
    expect(lines[0]).toMatch(pattern);
  });
});
