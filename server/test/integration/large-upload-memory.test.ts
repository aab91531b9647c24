import { spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { API_PREFIX, type RegisterResponse, type UploadResponse } from '@cairn/shared';
import { createScratchPostgres, testDatabaseKinds } from '../helpers/test-database.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const MiB = 1024 * 1024;
const FILE_BYTES = 1024 * MiB;
const CHUNK_BYTES = MiB;

/** Deterministic pseudo-random bytes (AES-CTR keystream), produced on the fly: the same seed gives the same stream. */
async function* pseudoRandomBytes(total: number, seed: string): AsyncGenerator<Buffer> {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(CHUNK_BYTES);
  for (let sent = 0; sent < total; sent += CHUNK_BYTES) {
    yield cipher.update(zeros.subarray(0, Math.min(CHUNK_BYTES, total - sent)));
  }
}

async function sha256OfStream(source: AsyncIterable<Buffer>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of source) hash.update(chunk);
  return hash.digest('hex');
}

async function memoryOf(pid: number): Promise<{ rssKiB: number; hwmKiB: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
}

/** The server as its own process (node + tsx, as `npm start` runs it), so its memory can be measured alone. */
async function startServerProcess(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/main.ts'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { url?: string };
        if (entry.url) resolve(entry.url);
      } catch {
        // not a JSON log line
      }
    });
  });
  return { child, url };
}

describe.each(testDatabaseKinds())('a 1 GiB upload to a server process (%s)', (kind) => {
  let dataDir: string;
  let server: { child: ChildProcess; url: string };
  let scratch: Awaited<ReturnType<typeof createScratchPostgres>>;
  let token: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-large-'));
    scratch = kind === 'postgres' ? await createScratchPostgres() : undefined;
    server = await startServerProcess({
      DATA_DIR: dataDir,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ADMIN_USERNAME: 'admin',
      ADMIN_PASSWORD: 'large-upload-password',
      SECRET_KEY: 'k'.repeat(40),
      ...(scratch && { DATABASE_URL: scratch.url }),
    });
    const response = await request(`${server.url}${API_PREFIX}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: 'large-upload-password', clientName: 'big', hostname: 'big' }),
    });
    expect(response.statusCode).toBe(200);
    token = ((await response.body.json()) as RegisterResponse).token;
  });

  afterAll(async () => {
    if (server?.child.exitCode === null) {
      const exited = new Promise((resolve) => server.child.once('exit', resolve));
      server.child.kill('SIGTERM');
      await exited;
    }
    await scratch?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function packFiles(dir: string): Promise<number[]> {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return Promise.all(entries.filter((e) => e.isFile()).map(async (e) => (await stat(path.join(e.parentPath, e.name))).size));
  }

  async function uploadStream(sha256: string, bytes: AsyncIterable<Buffer>) {
    const boundary = `----cairn-${randomUUID()}`;
    async function* body(): AsyncGenerator<Buffer> {
      yield Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${sha256}"; filename="${sha256}"\r\n` +
          'Content-Type: application/octet-stream\r\n\r\n',
      );
      yield* bytes;
      yield Buffer.from(`\r\n--${boundary}--\r\n`);
    }
    const response = await request(`${server.url}${API_PREFIX}/contents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: Readable.from(body()),
    });
    return { status: response.statusCode, body: (await response.body.json()) as UploadResponse };
  }

  it('streams through the server with flat memory and is stored intact', async () => {
    const pid = server.child.pid!;
    // Warm up the upload path (module loading, JIT, first allocations) before the baseline.
    const warm = Buffer.from('warm-up');
    const warmHash = createHash('sha256').update(warm).digest('hex');
    expect((await uploadStream(warmHash, (async function* () { yield warm; })())).status).toBe(200);

    const sha256 = await sha256OfStream(pseudoRandomBytes(FILE_BYTES, `seed-${kind}`));
    // Reset the process's peak-RSS counter (Linux clear_refs "5"), so VmHWM below is the peak during the upload.
    const startup = await memoryOf(pid);
    await writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => undefined);
    const before = await memoryOf(pid);
    const started = process.hrtime.bigint();
    const result = await uploadStream(sha256, pseudoRandomBytes(FILE_BYTES, `seed-${kind}`));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const after = await memoryOf(pid);

    expect(result.status).toBe(200);
    expect(result.body.results).toEqual([{ sha256, size: FILE_BYTES, status: 'stored' }]);
    // Cut into chunks and packed (random bytes are stored raw): the packs hold every byte, in objects of at most 8 MiB.
    const stored = await packFiles(path.join(dataDir, 'blobs', 'packs'));
    expect(stored.reduce((sum, size) => sum + size, 0)).toBeGreaterThan(FILE_BYTES);
    expect(Math.max(...stored)).toBeLessThanOrEqual(8 * MiB);

    const growthMiB = (after.hwmKiB - before.rssKiB) / 1024;
    console.info(
      `[1 GiB upload, ${kind}] server peak RSS at start-up ${(startup.hwmKiB / 1024).toFixed(0)} MiB; RSS before ${(before.rssKiB / 1024).toFixed(0)} MiB, peak during ${(after.hwmKiB / 1024).toFixed(0)} MiB, ` +
        `growth ${growthMiB.toFixed(0)} MiB; ${(FILE_BYTES / MiB / seconds).toFixed(0)} MiB/s over loopback`,
    );
    expect(growthMiB).toBeLessThan(200);
  });
});
