import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { API_PREFIX, sha256Hex, type RegisterResponse } from '@cairn/shared';
import { buildApp, type App } from '../../src/app.ts';
import type { AppContext } from '../../src/app-context.ts';
import { DiskBlobStore } from '../../src/blob/disk-blob-store.ts';
import { loadServerConfig, type ServerConfig } from '../../src/config/server-config.ts';
import { createLogger } from '../../src/logger.ts';
import { createUser, SYSTEM_ACTOR } from '../../src/services/users.service.ts';
import { openTestDatabase, type DatabaseKind } from './test-database.ts';

/**
 * A real server for agent-API tests: a fresh database of the given kind, a
 * DiskBlobStore in a temp dir, and the app listening on a free loopback port.
 */
export interface Harness {
  ctx: AppContext;
  app: App;
  /** http://127.0.0.1:<port> */
  url: string;
  dataDir: string;
  blobs: DiskBlobStore;
  close(): Promise<void>;
}

export async function startHarness(
  kind: DatabaseKind,
  env: Record<string, string> = {},
  options: { blobDir?: string } = {},
): Promise<Harness> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-core-'));
  const config: ServerConfig = loadServerConfig({
    DATA_DIR: dataDir,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    SECRET_KEY: 'x'.repeat(40),
    ...env,
  });
  const database = await openTestDatabase(kind);
  const blobs = new DiskBlobStore(options.blobDir ?? path.join(dataDir, 'blobs'));
  const log = createLogger('silent');
  const ctx: AppContext = { config, database, blobs, log };
  const app = await buildApp(ctx);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return {
    ctx,
    app,
    url: `http://127.0.0.1:${address.port}`,
    dataDir,
    blobs,
    async close() {
      await app.close();
      await blobs.close();
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface HttpResult<T = unknown> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | undefined>;
}

/** One JSON (or empty) request to the agent API; never throws for an HTTP status. */
export async function callApi<T = Record<string, unknown>>(
  harness: Harness,
  method: 'GET' | 'POST',
  route: string,
  options: { token?: string; json?: unknown; body?: Buffer | AsyncIterable<Uint8Array>; headers?: Record<string, string> } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | Buffer | Readable | undefined =
    options.body === undefined || Buffer.isBuffer(options.body) ? options.body : Readable.from(options.body);
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  const response = await request(`${harness.url}${API_PREFIX}${route}`, { method, headers, body });
  const text = await response.body.text();
  let parsed: unknown = text;
  if ((response.headers['content-type'] ?? '').toString().includes('json') && text !== '') parsed = JSON.parse(text);
  return { status: response.statusCode, body: parsed as T, headers: response.headers };
}

/** Downloads a content's bytes. */
export async function download(harness: Harness, token: string, sha256: string): Promise<{ status: number; bytes: Buffer; contentLength: string | undefined }> {
  const response = await request(`${harness.url}${API_PREFIX}/contents/${sha256}`, { headers: { authorization: `Bearer ${token}` } });
  const bytes = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, bytes, contentLength: response.headers['content-length']?.toString() };
}

export interface Part {
  name: string;
  data: Buffer;
  /** The part's filename (default: its name); an agent puts its similar-content hint there (decision 171). */
  filename?: string;
}

/** A multipart/form-data body with one file part per item. */
export function multipartBody(parts: readonly Part[]): { boundary: string; body: Buffer } {
  const boundary = `----cairn-${randomUUID()}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"; filename="${part.filename ?? part.name}"\r\n` +
          'Content-Type: application/octet-stream\r\n\r\n',
      ),
      part.data,
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { boundary, body: Buffer.concat(chunks) };
}

/** Uploads the given byte strings, each under its own hash unless `name` overrides it. */
export async function upload<T = { results: { sha256: string; size: number; status: string }[] }>(
  harness: Harness,
  token: string,
  parts: readonly (Buffer | Part)[],
  query = '',
): Promise<HttpResult<T>> {
  const { boundary, body } = multipartBody(parts.map((p) => (Buffer.isBuffer(p) ? { name: sha256Hex(p), data: p } : p)));
  return callApi<T>(harness, 'POST', `/contents${query}`, {
    token,
    body,
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  });
}

/** A user created through the service, with a password good enough for the checks. */
export async function addUser(harness: Harness, username: string, options: { retentionVersions?: number; retentionDays?: number | null } = {}) {
  const password = `pw-${username}-secret`;
  const user = await createUser(harness.ctx, { username, password, ...options }, SYSTEM_ACTOR);
  return { ...user, password };
}

/** Registers an agent over HTTP and returns its id and token. */
export async function registerAgent(harness: Harness, user: { username: string; password: string }, clientName: string): Promise<RegisterResponse> {
  const result = await callApi<RegisterResponse>(harness, 'POST', '/register', {
    json: { username: user.username, password: user.password, clientName, hostname: `${clientName}.test` },
  });
  if (result.status !== 200) throw new Error(`register failed: ${result.status} ${JSON.stringify(result.body)}`);
  return result.body;
}

export function fileUpsert(filePath: string, data: Buffer | null, extra: { mtimeMs?: number; mode?: number } = {}) {
  return {
    path: filePath,
    kind: 'file' as const,
    sha256: data === null ? null : sha256Hex(data),
    size: data?.length ?? 0,
    mtimeMs: extra.mtimeMs ?? 1_700_000_000_000,
    mode: extra.mode ?? 0o100644,
  };
}
