/**
 * PGlite, obtained only to read an earlier release's DATA_DIR/db (the one
 * import in pglite-import.ts). It is no dependency of the server: one pinned
 * version is fetched from the npm registry on demand, checked against the
 * sha512 pinned here, unpacked into a cache directory and loaded from there
 * with a dynamic import (docs/decisions.md #95). PGLITE_IMPORT_MODULE names
 * an unpacked package instead, for a machine that cannot reach a registry.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { Logger } from 'pino';

export const PGLITE_PACKAGE = '@electric-sql/pglite';
/** The version that wrote DATA_DIR/db in the last release that used PGlite (its package-lock.json). */
export const PGLITE_VERSION = '0.5.16';
/** That version's tarball, as package-lock.json recorded it; anything else fetched is refused. */
export const PGLITE_INTEGRITY = 'sha512-Nj8KcIsJL748W408U2N8q4+9IlONdpRIU8MJypIAAINMJ5nqKyqpX7Mgg/5XKkXiAib3AoZGR6hnJFlrlLBrcg==';

/** The part of PGlite's API the import uses (its own types are not installed). */
export interface PgliteQueries {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: T[]; blob?: Blob }>;
  exec(sql: string): Promise<unknown>;
}
export interface PgliteClient extends PgliteQueries {
  transaction<T>(body: (tx: PgliteQueries) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
export type PgliteConstructor = new (dataDir: string) => PgliteClient;

export interface PgliteSource {
  /** PGLITE_IMPORT_MODULE: an unpacked @electric-sql/pglite package directory; nothing is fetched. */
  moduleDir?: string | undefined;
  /** Where the fetched package is unpacked and kept (PGLITE_IMPORT_CACHE_DIR, else under DATA_DIR). */
  cacheDir: string;
}

/** PGlite could not be obtained; the message says what happened, the caller adds what to do. */
export class PgliteUnavailableError extends Error {
  override name = 'PgliteUnavailableError';
}

const run = promisify(execFile);

/** Loads PGlite's constructor from PGLITE_IMPORT_MODULE, the cache, or a fresh fetch into the cache. */
export async function loadPglite(source: PgliteSource, log: Logger): Promise<{ PGlite: PgliteConstructor; dir: string }> {
  if (source.moduleDir !== undefined) {
    const dir = path.resolve(source.moduleDir);
    const version = packageVersion(dir);
    if (version !== PGLITE_VERSION) {
      log.warn({ dir, version, expected: PGLITE_VERSION }, `PGLITE_IMPORT_MODULE holds ${PGLITE_PACKAGE} ${version}, not the ${PGLITE_VERSION} that the earlier release used; trying it anyway`);
    }
    return { PGlite: await importFrom(dir), dir };
  }
  const dir = path.join(path.resolve(source.cacheDir), `pglite-${PGLITE_VERSION}`);
  if (!existsSync(path.join(dir, 'package.json'))) await fetchInto(dir, log);
  return { PGlite: await importFrom(dir), dir };
}

/** `npm pack` of the pinned version into a staging directory beside `dir`, checked, unpacked, then renamed to `dir`. */
async function fetchInto(dir: string, log: Logger): Promise<void> {
  const parent = path.dirname(dir);
  await mkdir(parent, { recursive: true });
  const staging = await mkdtemp(path.join(parent, '.fetch-'));
  const spec = `${PGLITE_PACKAGE}@${PGLITE_VERSION}`;
  const started = Date.now();
  log.info({ spec, dir }, `fetching ${spec} from the npm registry (once, to import the earlier release's database)`);
  try {
    // npm, not a bare HTTP fetch: the operator's npm configuration (registry
    // mirror, proxy, credentials in .npmrc) applies. Its own cache stays in
    // the staging directory, so nothing is written under HOME.
    try {
      // Short retries: a start-up that waits, npm's defaults add over a minute before saying it is offline.
      const retries = ['--fetch-retries=2', '--fetch-retry-mintimeout=1000', '--fetch-retry-maxtimeout=5000'];
      await run('npm', ['pack', spec, '--pack-destination', staging, '--cache', path.join(staging, 'npm-cache'), ...retries, '--logs-max=0', '--no-update-notifier', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], {
        cwd: staging,
        timeout: 10 * 60_000,
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (error) {
      throw new PgliteUnavailableError(`fetching ${spec} with npm failed (${npmFailure(error)})`, { cause: error });
    }
    const tarball = (await readdir(staging)).find((name) => name.endsWith('.tgz'));
    if (tarball === undefined) throw new PgliteUnavailableError(`npm pack ${spec} wrote no tarball`);
    const integrity = `sha512-${createHash('sha512').update(await readFile(path.join(staging, tarball))).digest('base64')}`;
    if (integrity !== PGLITE_INTEGRITY) {
      throw new PgliteUnavailableError(`the ${spec} tarball from the registry has ${integrity}, not the pinned ${PGLITE_INTEGRITY}; refusing to run it`);
    }
    const unpacked = path.join(staging, 'unpacked');
    await mkdir(unpacked);
    try {
      await run('tar', ['-xzf', path.join(staging, tarball), '-C', unpacked, '--no-same-owner'], { timeout: 5 * 60_000 });
    } catch (error) {
      throw new PgliteUnavailableError(`unpacking ${tarball} failed (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`, { cause: error });
    }
    try {
      await rename(path.join(unpacked, 'package'), dir);
    } catch (error) {
      // Another process unpacked the same checked tarball meanwhile.
      if (!existsSync(path.join(dir, 'package.json'))) throw error;
    }
    log.info({ spec, dir, ms: Date.now() - started }, `fetched ${spec} (integrity checked)`);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** The gist of a failed `npm pack`: npm's error code and its first error line, or why npm did not run. */
function npmFailure(error: unknown): string {
  const { code, stderr } = error as { code?: unknown; stderr?: unknown };
  if (code === 'ENOENT') return 'npm is not on PATH';
  const lines = String(stderr ?? '')
    .split('\n')
    .map((line) => line.replace(/^npm (error|ERR!)\s*/, '').trim())
    .filter((line) => line !== '');
  const npmCode = lines.find((line) => /^code \S+$/.test(line))?.slice(5);
  const detail = lines.find((line) => !/^(code|errno|syscall) /.test(line) && !line.startsWith('A complete log'));
  return [npmCode, detail].filter((part) => part !== undefined).join(': ').slice(0, 300) || (error instanceof Error ? error.message.split('\n')[0]! : String(error));
}

function packageVersion(dir: string): string {
  let manifest: { name?: unknown; version?: unknown };
  try {
    manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as typeof manifest;
  } catch {
    throw new PgliteUnavailableError(`${dir} holds no readable package.json`);
  }
  if (manifest.name !== PGLITE_PACKAGE) throw new PgliteUnavailableError(`${dir} holds ${String(manifest.name)}, not ${PGLITE_PACKAGE}`);
  return String(manifest.version);
}

/** Imports the package in `dir` by its ESM entry point (exports["."].import), as a bare specifier would. */
async function importFrom(dir: string): Promise<PgliteConstructor> {
  packageVersion(dir);
  const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { exports?: unknown; module?: unknown; main?: unknown };
  const root = (manifest.exports as Record<string, unknown> | undefined)?.['.'];
  const esm = (root as { import?: unknown } | undefined)?.import;
  const entry = typeof esm === 'string' ? esm : typeof (esm as { default?: unknown } | undefined)?.default === 'string' ? (esm as { default: string }).default : typeof manifest.module === 'string' ? manifest.module : 'index.js';
  let loaded: { PGlite?: unknown };
  try {
    loaded = (await import(pathToFileURL(path.join(dir, entry)).href)) as { PGlite?: unknown };
  } catch (error) {
    throw new PgliteUnavailableError(`loading ${PGLITE_PACKAGE} from ${dir} failed (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`, { cause: error });
  }
  if (typeof loaded.PGlite !== 'function') throw new PgliteUnavailableError(`${path.join(dir, entry)} exports no PGlite class`);
  return loaded.PGlite as PgliteConstructor;
}
