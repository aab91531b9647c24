/**
 * A real server for dashboard tests (a fresh database of the given kind, a
 * disk blob store in a temp dir, listening on a free loopback port) and a
 * small cookie-keeping browser stand-in that reads CSRF tokens from forms.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildApp, type App } from '../../src/app.ts';
import type { AppContext } from '../../src/app-context.ts';
import { createBlobStore, createExportStore, createReplicaStore } from '../../src/blob/create-blob-store.ts';
import { loadServerConfig } from '../../src/config/server-config.ts';
import { createLogger } from '../../src/logger.ts';
import { createUser, SYSTEM_ACTOR } from '../../src/services/users.service.ts';
import { openTestDatabase, type DatabaseKind } from '../helpers/test-database.ts';

export const TEST_SECRET_KEY = 'dashboard-test-secret-key-0123456789abcdef';

export interface DashboardHarness {
  ctx: AppContext;
  app: App;
  url: string;
  /** Every line the server logged, parsed; empty unless started with `captureLog`. */
  logLines(): Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startDashboardHarness(
  kind: DatabaseKind,
  env: Record<string, string> = {},
  options: { captureLog?: boolean } = {},
): Promise<DashboardHarness> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-dashboard-'));
  const config = loadServerConfig({ DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', SECRET_KEY: TEST_SECRET_KEY, ...env });
  const logged: string[] = [];
  const log = options.captureLog ? createLogger('info', 'cairn-server', { write: (line: string) => void logged.push(line) }) : createLogger('silent');
  const database = await openTestDatabase(kind);
  const blobs = await createBlobStore(config, log);
  const replica = await createReplicaStore(config, log);
  const exports = await createExportStore(config, log);
  const ctx: AppContext = { config, database, blobs, log, ...(replica ? { replica } : {}), ...(exports ? { exports } : {}) };
  const app = await buildApp(ctx);
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    ctx,
    app,
    url,
    logLines: () => logged.map((line) => JSON.parse(line) as Record<string, unknown>),
    async close() {
      await app.close();
      await blobs.close();
      await replica?.close();
      await exports?.close();
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function addUser(ctx: AppContext, username: string, password: string, isAdmin = false) {
  return createUser(ctx, { username, password, isAdmin }, SYSTEM_ACTOR);
}

/** A user added (password `<username>-password-1`) and signed in with a browser of their own. */
export async function signedInUser(h: DashboardHarness, username: string, isAdmin = false): Promise<{ id: string; browser: Browser }> {
  const password = `${username}-password-1`;
  const { id } = await addUser(h.ctx, username, password, isAdmin);
  const browser = new Browser(h.url);
  await browser.login(username, password);
  return { id, browser };
}

export interface PageResponse {
  status: number;
  location: string | null;
  body: string;
  headers: Headers;
}

/** A browser stand-in: keeps cookies, never follows redirects, and fills in the CSRF token of the last page. */
export class Browser {
  readonly cookies = new Map<string, string>();
  csrf = '';

  readonly baseUrl: string;
  constructor(baseUrl: string) {
    this.baseUrl = baseUrl;
  }

  cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  private remember(response: Response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const index = pair!.indexOf('=');
      const name = pair!.slice(0, index);
      const value = pair!.slice(index + 1);
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async get(url: string): Promise<PageResponse> {
    const response = await fetch(this.baseUrl + url, { redirect: 'manual', headers: { cookie: this.cookieHeader() } });
    this.remember(response);
    const body = await response.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(body);
    if (token) this.csrf = token[1]!;
    return { status: response.status, location: response.headers.get('location'), body, headers: response.headers };
  }

  /** Posts a form; `_csrf` is the last page's token unless `fields` sets it (or `withCsrf` is false). */
  async post(
    url: string,
    fields: Record<string, string> | [string, string][],
    options: { withCsrf?: boolean; headers?: Record<string, string> } = {},
  ): Promise<PageResponse> {
    // Pairs, for a field sent more than once (checkboxes).
    const pairs = Array.isArray(fields) ? fields : Object.entries(fields);
    const form = new URLSearchParams(options.withCsrf === false || pairs.some(([name]) => name === '_csrf') ? pairs : [['_csrf', this.csrf], ...pairs]);
    const response = await fetch(this.baseUrl + url, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded', ...options.headers },
      body: form,
    });
    this.remember(response);
    const body = await response.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(body);
    if (token) this.csrf = token[1]!;
    return { status: response.status, location: response.headers.get('location'), body, headers: response.headers };
  }

  async login(username: string, password: string, headers: Record<string, string> = {}): Promise<PageResponse> {
    await this.get('/login');
    return this.post('/login', { username, password, next: '/' }, { headers });
  }
}
