/**
 * How the PGlite import obtains PGlite (pglite-loader.ts): fetched with npm
 * at the pinned version into a cache, from PGLITE_IMPORT_MODULE instead, and
 * refused when the registry serves a tarball other than the pinned one.
 * Real npm, a real registry (the npm registry for the fetch; a local HTTP
 * one for the mismatch).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/config/server-config.ts';
import { loadPglite, PGLITE_INTEGRITY, PGLITE_VERSION, PgliteUnavailableError } from '../../src/db/pglite-loader.ts';
import { REPO_ROOT } from '../../../test/helpers/processes.ts';

const log = pino({ level: 'silent' });
// Shared with the import's e2e test: fetched once, kept across runs.
const CACHE = path.join(REPO_ROOT, 'node_modules/.cache/cairn-pglite-import');
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-pglite-loader-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('loadPglite', () => {
  it('fetches the pinned version into the cache (or finds it there) and loads its PGlite class', async () => {
    const { PGlite, dir } = await loadPglite({ cacheDir: CACHE }, log);
    expect(dir).toBe(path.join(CACHE, `pglite-${PGLITE_VERSION}`));
    expect(typeof PGlite).toBe('function');
    expect(JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'))).toMatchObject({ name: '@electric-sql/pglite', version: PGLITE_VERSION });
    // No staging directory is left beside it.
    expect((await readdir(CACHE)).filter((name) => name.startsWith('.fetch-'))).toEqual([]);
  });

  it('loads PGLITE_IMPORT_MODULE without fetching, and the config refuses a directory that is not PGlite', async () => {
    const unpacked = path.join(CACHE, `pglite-${PGLITE_VERSION}`);
    if (!existsSync(unpacked)) await loadPglite({ cacheDir: CACHE }, log);
    const emptyCache = await tempDir();
    const config = loadServerConfig({ PGLITE_IMPORT_MODULE: unpacked, PGLITE_IMPORT_CACHE_DIR: emptyCache });
    expect(config.pgliteImport).toEqual({ moduleDir: unpacked, cacheDir: emptyCache });
    const { PGlite, dir } = await loadPglite({ moduleDir: config.pgliteImport.moduleDir, cacheDir: emptyCache }, log);
    expect(dir).toBe(unpacked);
    expect(typeof PGlite).toBe('function');
    expect(await readdir(emptyCache)).toEqual([]);

    expect(() => loadServerConfig({ PGLITE_IMPORT_MODULE: emptyCache })).toThrow(
      `PGLITE_IMPORT_MODULE must be the directory of an unpacked @electric-sql/pglite package (the one holding its package.json), got "${emptyCache}"`,
    );
  });

  it('refuses a tarball from the registry that is not the pinned one, and keeps nothing of it', async () => {
    // A package that claims to be @electric-sql/pglite 0.5.16 but is not it.
    const work = await tempDir();
    await mkdir(path.join(work, 'package'));
    await writeFile(path.join(work, 'package/package.json'), JSON.stringify({ name: '@electric-sql/pglite', version: PGLITE_VERSION, type: 'module', main: 'index.js' }));
    await writeFile(path.join(work, 'package/index.js'), 'export class PGlite {}\n');
    execFileSync('tar', ['-czf', 'fake.tgz', 'package'], { cwd: work });
    const tarball = readFileSync(path.join(work, 'fake.tgz'));
    const integrity = `sha512-${createHash('sha512').update(tarball).digest('base64')}`;
    expect(integrity).not.toBe(PGLITE_INTEGRITY);

    const registry = createServer((request, response) => {
      const base = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;
      if (request.url === '/fake.tgz') {
        response.writeHead(200, { 'content-type': 'application/octet-stream' }).end(tarball);
      } else if (decodeURIComponent(request.url ?? '') === '/@electric-sql/pglite') {
        // The registry's own metadata agrees with the tarball, so npm accepts it; only the pin tells.
        const version = { name: '@electric-sql/pglite', version: PGLITE_VERSION, dist: { tarball: `${base}/fake.tgz`, integrity } };
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: '@electric-sql/pglite', 'dist-tags': { latest: PGLITE_VERSION }, versions: { [PGLITE_VERSION]: version } }));
      } else {
        response.writeHead(404).end();
      }
    });
    registry.listen(0, '127.0.0.1');
    await once(registry, 'listening');
    cleanups.push(() => new Promise((resolve) => registry.close(resolve)));
    const previous = process.env.npm_config_registry;
    process.env.npm_config_registry = `http://127.0.0.1:${(registry.address() as AddressInfo).port}/`;
    cleanups.push(async () => {
      if (previous === undefined) delete process.env.npm_config_registry;
      else process.env.npm_config_registry = previous;
    });

    const cache = path.join(work, 'cache');
    const failure = await loadPglite({ cacheDir: cache }, log).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(PgliteUnavailableError);
    expect((failure as Error).message).toBe(`the @electric-sql/pglite@${PGLITE_VERSION} tarball from the registry has ${integrity}, not the pinned ${PGLITE_INTEGRITY}; refusing to run it`);
    expect(await readdir(cache)).toEqual([]);
  });
});
