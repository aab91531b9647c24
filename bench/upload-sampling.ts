/**
 * `DATABASE_URL=postgres://... npx tsx bench/upload-sampling.ts [rounds]`:
 * what the compression sample of new parts (decision 120) costs the upload
 * path. A real server (buildApp, disk blob store in a temp dir, a scratch
 * database on DATABASE_URL's server) takes multipart uploads of new bytes
 * over loopback HTTP, alternately without a run (no sampling, the code path
 * as before) and with `?runId=` (each new part's first 16 KiB deflated).
 * Prints the median MB/s and CPU ms per MB of each over `rounds` (default 5)
 * per workload, without -> with sampling.
 * Not a test: a figure for the report and docs/server.md.
 */
import { createCipheriv, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { request } from 'undici';
import { API_PREFIX, sha256Hex, type RegisterResponse } from '../shared/src/index.ts';
import { buildApp } from '../server/src/app.ts';
import type { AppContext } from '../server/src/app-context.ts';
import { DiskBlobStore } from '../server/src/blob/disk-blob-store.ts';
import { loadServerConfig } from '../server/src/config/server-config.ts';
import { openDatabase } from '../server/src/db/database.ts';
import { createLogger } from '../server/src/logger.ts';
import { createUser, SYSTEM_ACTOR } from '../server/src/services/users.service.ts';

const baseUrl = process.env.DATABASE_URL ?? process.env.TEST_DATABASE_URL;
if (!baseUrl) throw new Error('set DATABASE_URL to a PostgreSQL server the bench may create a scratch database on');
const rounds = Number(process.argv[2] ?? 5);
const KiB = 1024;

/** Fresh bytes every call, so every part is new to the server. */
let counter = 0;
function textPart(bytes: number): Buffer {
  const seed = `${randomUUID()}-${counter++}`;
  let s = '';
  for (let i = 0; s.length < bytes; i++) s += `${seed},${i},customer-${(i * 7919) % 1000},order placed,${(i * 31) % 997}.${i % 100} EUR\n`;
  return Buffer.from(s.slice(0, bytes));
}
function randomPart(bytes: number): Buffer {
  return createCipheriv('aes-256-ctr', randomBytes(32), randomBytes(16)).update(Buffer.alloc(bytes));
}

const workloads = [
  { name: '1000 x 8 KiB text', parts: 1000, make: () => textPart(8 * KiB) },
  { name: '1000 x 64 KiB text', parts: 1000, make: () => textPart(64 * KiB) },
  { name: '1000 x 64 KiB random', parts: 1000, make: () => randomPart(64 * KiB) },
  { name: '16 x 8 MiB random', parts: 16, make: () => randomPart(8192 * KiB) },
];

const name = `cairn_bench_${randomBytes(6).toString('hex')}`;
const admin = postgres(baseUrl, { max: 1, onnotice: () => {} });
await admin.unsafe(`create database ${name}`);
const url = new URL(baseUrl);
url.pathname = `/${name}`;
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-bench-sampling-'));
const database = await openDatabase({ databaseUrl: url.toString() });
const blobs = new DiskBlobStore(path.join(dataDir, 'blobs'));
const config = loadServerConfig({ DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SECRET_KEY: 'x'.repeat(40) });
const ctx: AppContext = { config, database, blobs, log: createLogger('silent') };
const app = await buildApp(ctx);
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
if (address === null || typeof address === 'string') throw new Error('no TCP address');
const server = `http://127.0.0.1:${address.port}${API_PREFIX}`;

async function call<T>(method: 'POST', route: string, token: string | undefined, body: Buffer | string, contentType: string): Promise<T> {
  const headers: Record<string, string> = { 'content-type': contentType };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await request(`${server}${route}`, { method, headers, body });
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`${route}: ${response.statusCode} ${text}`);
  return JSON.parse(text) as T;
}

try {
  await createUser(ctx, { username: 'bench', password: 'bench-password-1' }, SYSTEM_ACTOR);
  const reg = await call<RegisterResponse>('POST', '/register', undefined, JSON.stringify({ username: 'bench', password: 'bench-password-1', clientName: 'bench', hostname: 'bench' }), 'application/json');
  console.log(`node ${process.version}, ${os.cpus().length} cores; median of ${rounds} rounds; MB/s of new bytes over loopback HTTP into the disk store`);
  for (const workload of workloads) {
    const seconds: Record<'off' | 'on', number[]> = { off: [], on: [] };
    const cpu: Record<'off' | 'on', number[]> = { off: [], on: [] };
    let bytes = 0;
    for (let round = 0; round < rounds; round++) {
      // Alternating which goes first, so neither always follows the other's writeback.
      for (const mode of round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        const parts = Array.from({ length: workload.parts }, workload.make);
        bytes = parts.reduce((sum, p) => sum + p.length, 0);
        const boundary = `----bench-${randomUUID()}`;
        const pieces: Buffer[] = [];
        for (const p of parts) pieces.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${sha256Hex(p)}"; filename="x"\r\nContent-Type: application/octet-stream\r\n\r\n`), p, Buffer.from('\r\n'));
        pieces.push(Buffer.from(`--${boundary}--\r\n`));
        const body = Buffer.concat(pieces);
        const query = mode === 'on' ? `?runId=${(await call<{ runId: string }>('POST', '/runs', reg.token, '{}', 'application/json')).runId}` : '';
        const started = performance.now();
        const cpuBefore = process.cpuUsage();
        await call('POST', `/contents${query}`, reg.token, body, `multipart/form-data; boundary=${boundary}`);
        const used = process.cpuUsage(cpuBefore);
        seconds[mode].push((performance.now() - started) / 1000);
        cpu[mode].push((used.user + used.system) / 1e6);
      }
    }
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
    const rate = (mode: 'off' | 'on') => bytes / 1e6 / median(seconds[mode]);
    // CPU seconds (every thread of this process: server, thread pool and the uploading client alike) per MB: steadier than wall time on a busy machine.
    const cpuPerMB = (mode: 'off' | 'on') => (median(cpu[mode]) / (bytes / 1e6)) * 1000;
    const change = (a: number, b: number) => `${b >= a ? '+' : ''}${((b / a - 1) * 100).toFixed(1)}%`;
    console.log(
      `${workload.name}: ${rate('off').toFixed(1)} -> ${rate('on').toFixed(1)} MB/s (${change(rate('off'), rate('on'))}); ` +
        `CPU ${cpuPerMB('off').toFixed(2)} -> ${cpuPerMB('on').toFixed(2)} ms/MB (${change(cpuPerMB('off'), cpuPerMB('on'))})`,
    );
  }
} finally {
  await app.close();
  await blobs.close();
  await database.close();
  await admin.unsafe(`drop database ${name} with (force)`);
  await admin.end();
  await rm(dataDir, { recursive: true, force: true });
}
