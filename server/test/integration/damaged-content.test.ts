/**
 * Every byte the server sends (agent download, dashboard download, folder
 * archive) is checked against its hash on the way out. With an object damaged
 * or removed behind the server's back, on the disk store and on S3 (s3rver),
 * no response completes as if it were good: before the headers it is a 500
 * naming the damage; after them the transfer is cut off, so the client sees
 * an error. Each time the server logs an error naming client, path and hash.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { and, eq, sql } from 'drizzle-orm';
import tar from 'tar-stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_PREFIX, sha256Hex } from '@cairn/shared';
import { DiskBlobStore } from '../../src/blob/disk-blob-store.ts';
import { S3BlobStore } from '../../src/blob/s3-blob-store.ts';
import { chunks, clientPaths, contents, fileVersions } from '../../src/db/schema.ts';
import { TestAgent } from '../dashboard/agent-fixture.ts';
import { addUser, Browser, startDashboardHarness, type DashboardHarness } from '../dashboard/dashboard-harness.ts';
import { startS3rver, type RunningS3rver } from '../helpers/s3rver.ts';
import { locate } from '../helpers/stored-bytes.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

const USER = { username: 'carol', password: 'carol-password-1' };
const DAMAGE_MESSAGE = /stored content is damaged or missing/;

/** How a test damages the store behind the server's back. */
interface StoreKind {
  name: 'disk' | 's3';
  env(): Record<string, string>;
  /** Flips the stored byte that holds byte `offset` of the content (its chunks are stored raw: random or tiny bytes). */
  flipByte(h: DashboardHarness, sha256: string, offset: number): Promise<void>;
  /** Deletes the object (the pack) that holds the content's first chunk. */
  remove(h: DashboardHarness, sha256: string): Promise<void>;
}

let s3: RunningS3rver | undefined;
let s3Admin: S3Client | undefined;

const disk: StoreKind = {
  name: 'disk',
  env: () => ({}),
  async flipByte(h, sha256, offset) {
    const { key, at } = await locate(h.ctx.database.db, sha256, offset);
    const file = (h.ctx.blobs as DiskBlobStore).pathOf(key);
    const bytes = await readFile(file);
    bytes[at] = bytes[at]! ^ 0xff;
    await writeFile(file, bytes);
  },
  async remove(h, sha256) {
    await h.ctx.blobs.delete((await locate(h.ctx.database.db, sha256, 0)).key);
  },
};

const s3Store: StoreKind = {
  name: 's3',
  env: () => s3!.env,
  async flipByte(h, sha256, offset) {
    const { key, at } = await locate(h.ctx.database.db, sha256, offset);
    const Key = (h.ctx.blobs as S3BlobStore).objectKeyOf(key);
    const object = await s3Admin!.send(new GetObjectCommand({ Bucket: s3!.bucket, Key }));
    const bytes = Buffer.from(await object.Body!.transformToByteArray());
    bytes[at] = bytes[at]! ^ 0xff;
    await s3Admin!.send(new PutObjectCommand({ Bucket: s3!.bucket, Key, Body: bytes }));
  },
  async remove(h, sha256) {
    const { key } = await locate(h.ctx.database.db, sha256, 0);
    await s3Admin!.send(new DeleteObjectCommand({ Bucket: s3!.bucket, Key: (h.ctx.blobs as S3BlobStore).objectKeyOf(key) }));
  },
};

interface Outcome {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: Buffer;
  /** Set when the body did not arrive whole: the connection broke before its end. */
  bodyError?: Error;
}

/** One GET over real HTTP, reading the body to its end or to the error that cut it off. */
async function get(url: string, headers: Record<string, string>): Promise<Outcome> {
  const response = await request(url, { headers });
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of response.body) chunks.push(chunk as Buffer);
    return { status: response.statusCode, headers: response.headers, bytes: Buffer.concat(chunks) };
  } catch (error) {
    return { status: response.statusCode, headers: response.headers, bytes: Buffer.concat(chunks), bodyError: error as Error };
  }
}

/** A transfer that never completed as if good: a 5xx naming the damage before the headers, or a body cut off. */
function expectNotServedAsGood(outcome: Outcome, size: number): void {
  if (outcome.status === 200) {
    expect(outcome.bodyError, 'a 200 whose body completed').toBeInstanceOf(Error);
    expect(outcome.bytes.length).toBeLessThan(size);
  } else {
    expect(outcome.status).toBe(500);
    expect(JSON.parse(outcome.bytes.toString()).message ?? '').toMatch(DAMAGE_MESSAGE);
  }
}

async function untar(gz: Buffer): Promise<Map<string, { size: number | undefined; body: Buffer }>> {
  const found = new Map<string, { size: number | undefined; body: Buffer }>();
  const extract = tar.extract();
  extract.end(gunzipSync(gz));
  for await (const entry of extract) {
    const parts: Buffer[] = [];
    for await (const chunk of entry) parts.push(chunk as Buffer);
    found.set(entry.header.name, { size: entry.header.size, body: Buffer.concat(parts) });
  }
  return found;
}

beforeAll(async () => {
  s3 = await startS3rver();
  s3Admin = new S3Client({
    region: s3.s3Config.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
});

afterAll(async () => {
  s3Admin?.destroy();
  await s3?.close();
});

const combinations = testDatabaseKinds().flatMap((db) => [disk, s3Store].map((store) => [`${store.name} store, ${db}`, store, db] as const));

describe.each(combinations)('damaged stored content (%s)', (_label, store, db) => {
  let h: DashboardHarness;
  let agent: TestAgent;
  let browser: Browser;
  // Several MiB: more than one read chunk, so the first bytes are on the wire before the hash can be checked.
  const large = randomBytes(3 * 1024 * 1024 + 123);
  const small = Buffer.from('a small file, read in one chunk\n');
  const gone = Buffer.from('this object will be deleted from the store\n');
  const good = Buffer.from('an intact file\n');
  const largeSha = sha256Hex(large);
  const smallSha = sha256Hex(small);
  const goneSha = sha256Hex(gone);
  const goodSha = sha256Hex(good);

  beforeAll(async () => {
    h = await startDashboardHarness(db, store.env(), { captureLog: true });
    await addUser(h.ctx, USER.username, USER.password);
    agent = await TestAgent.register(h.url, USER.username, USER.password, 'carol-box');
    await agent.backup([
      { path: '/data/damaged/large.bin', content: large },
      { path: '/data/damaged/small.txt', content: small },
      { path: '/data/good/intact.txt', content: good },
    ]);
    // A run of its own, so its pack holds nothing else.
    await agent.backup([{ path: '/data/gone.txt', content: gone }]);
    browser = new Browser(h.url);
    expect((await browser.login(USER.username, USER.password)).status).toBe(303);
    await store.flipByte(h, largeSha, 1024 * 1024 + 7);
    await store.flipByte(h, smallSha, 3);
    await store.remove(h, goneSha);
  });

  afterAll(async () => {
    await h?.close();
  });

  const agentHeaders = () => ({ authorization: `Bearer ${agent.token}` });
  const dashboardHeaders = () => ({ cookie: browser.cookieHeader() });

  /** The error line the server logged, after the first `since` lines, for a damaged content, naming the client and the file's path. */
  async function damageLogLine(sha256: string, filePath: string, since: number): Promise<Record<string, unknown>> {
    // The line is written once the affected paths are looked up, which may finish just after the response broke off.
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const line = h
        .logLines()
        .slice(since)
        .find((l) => l.level === 50 && l.sha256 === sha256 && Array.isArray(l.paths) && l.paths.includes(filePath));
      if (line) return line;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`no error line for ${sha256} at ${filePath}; logged:\n${JSON.stringify(h.logLines().filter((l) => Number(l.level) >= 40), null, 1)}`);
  }

  async function versionIdOf(filePath: string): Promise<number> {
    const [row] = await h.ctx.database.db
      .select({ id: fileVersions.id })
      .from(fileVersions)
      .innerJoin(clientPaths, eq(clientPaths.id, fileVersions.pathId))
      .where(and(eq(clientPaths.clientId, agent.clientId), eq(clientPaths.path, filePath)));
    return row!.id;
  }

  it('GET /api/v1/contents/:sha256 cuts the transfer off when the bytes fail their hash, and logs it', async () => {
    const mark = h.logLines().length;
    const outcome = await get(`${h.url}${API_PREFIX}/contents/${largeSha}`, agentHeaders());
    expect(outcome.status).toBe(200);
    expect(outcome.headers['content-length']).toBe(String(large.length));
    expect(outcome.bodyError).toBeInstanceOf(Error);
    expect(outcome.bytes.length).toBeLessThan(large.length);
    const line = await damageLogLine(largeSha, '/data/damaged/large.bin', mark);
    expect(line).toMatchObject({ clientId: agent.clientId, msg: expect.stringMatching(DAMAGE_MESSAGE) });
  });

  it('a damaged content small enough to check before the headers is a 500 naming the damage, not bytes', async () => {
    const mark = h.logLines().length;
    const outcome = await get(`${h.url}${API_PREFIX}/contents/${smallSha}`, agentHeaders());
    expect(outcome.status).toBe(500);
    expect(JSON.parse(outcome.bytes.toString())).toMatchObject({ error: 'StoredContentDamagedError', message: expect.stringMatching(DAMAGE_MESSAGE) });
    await damageLogLine(smallSha, '/data/damaged/small.txt', mark);
  });

  it('an object the database lists but the store lacks is a 500 naming the damage, logged with client and path', async () => {
    const mark = h.logLines().length;
    const outcome = await get(`${h.url}${API_PREFIX}/contents/${goneSha}`, agentHeaders());
    expect(outcome.status).toBe(500);
    expect(JSON.parse(outcome.bytes.toString())).toMatchObject({ error: 'StoredContentDamagedError', message: expect.stringMatching(DAMAGE_MESSAGE) });
    const line = await damageLogLine(goneSha, '/data/gone.txt', mark);
    expect(line.clientId).toBe(agent.clientId);
  });

  it('GET /api/v1/contents/:sha256/verify answers whether the stored bytes still match their hash', async () => {
    const intact = await get(`${h.url}${API_PREFIX}/contents/${goodSha}/verify`, agentHeaders());
    expect(intact.status).toBe(200);
    expect(JSON.parse(intact.bytes.toString())).toEqual({ ok: true });
    for (const sha of [largeSha, smallSha, goneSha]) {
      const damaged = await get(`${h.url}${API_PREFIX}/contents/${sha}/verify`, agentHeaders());
      expect(damaged.status, sha).toBe(500);
      expect(JSON.parse(damaged.bytes.toString())).toMatchObject({ error: 'StoredContentDamagedError' });
    }
  });

  it('the dashboard download of a damaged version never completes, and is logged', async () => {
    const id = await versionIdOf('/data/damaged/large.bin');
    const mark = h.logLines().length;
    const outcome = await get(`${h.url}/clients/${agent.clientId}/versions/${id}/download`, dashboardHeaders());
    expect(outcome.status).toBe(200);
    expectNotServedAsGood(outcome, large.length);
    await damageLogLine(largeSha, '/data/damaged/large.bin', mark);

    const smallId = await versionIdOf('/data/damaged/small.txt');
    const smallOutcome = await get(`${h.url}/clients/${agent.clientId}/versions/${smallId}/download`, dashboardHeaders());
    expect(smallOutcome.status).toBe(500);
    expect(smallOutcome.headers['content-disposition']).toBeUndefined();
    expect(smallOutcome.bytes.toString()).toMatch(DAMAGE_MESSAGE);
  });

  it('the folder archive breaks off at a damaged file instead of ending as a clean archive', async () => {
    let mark = h.logLines().length;
    const outcome = await get(`${h.url}/clients/${agent.clientId}/archive?path=/data/damaged`, dashboardHeaders());
    expect(outcome.bodyError, `archive of ${outcome.bytes.length} bytes completed with ${outcome.status}`).toBeInstanceOf(Error);
    await damageLogLine(largeSha, '/data/damaged/large.bin', mark);

    mark = h.logLines().length;
    const missing = await get(`${h.url}/clients/${agent.clientId}/archive?path=/data/gone.txt`, dashboardHeaders());
    expectNotServedAsGood({ ...missing, bytes: missing.status === 200 ? missing.bytes : Buffer.from('{"message":"stored content is damaged or missing"}') }, Infinity);
    await damageLogLine(goneSha, '/data/gone.txt', mark);
  });

  it('an intact folder still downloads whole', async () => {
    const outcome = await get(`${h.url}/clients/${agent.clientId}/archive?path=/data/good`, dashboardHeaders());
    expect(outcome.status).toBe(200);
    expect(outcome.bodyError).toBeUndefined();
    expect((await untar(outcome.bytes)).get('good/intact.txt')?.body).toEqual(good);
  });

  it("downloads take the size from the stored content, never from a version's claimed size", async () => {
    // A version row claiming more bytes than its content has (what a lying upsert once could record).
    await h.ctx.database.db
      .update(fileVersions)
      .set({ size: sql`${fileVersions.size} + 1000` })
      .where(sql`${fileVersions.pathId} in (select id from client_paths where client_id = ${agent.clientId} and path = '/data/good/intact.txt')`);
    const id = await versionIdOf('/data/good/intact.txt');
    const download = await get(`${h.url}/clients/${agent.clientId}/versions/${id}/download`, dashboardHeaders());
    expect(download.status).toBe(200);
    expect(download.bodyError).toBeUndefined();
    expect(download.headers['content-length']).toBe(String(good.length));
    expect(download.bytes).toEqual(good);

    const archive = await get(`${h.url}/clients/${agent.clientId}/archive?path=/data/good`, dashboardHeaders());
    expect(archive.status).toBe(200);
    expect(archive.bodyError).toBeUndefined();
    expect((await untar(archive.bytes)).get('good/intact.txt')).toEqual({ size: good.length, body: good });
  });

  it('damage found on a read is recorded, "which are missing?" then asks for the bytes, and the next upload heals the store', async () => {
    // The reads above found the damage: the chunks are marked, and the large content with them (decision 128).
    const marked = await h.ctx.database.db.select({ sha256: chunks.sha256 }).from(chunks).where(sql`${chunks.damagedAt} is not null`);
    expect(marked.map((m) => m.sha256)).toEqual(expect.arrayContaining([smallSha, goneSha]));
    const [largeRow] = await h.ctx.database.db.select().from(contents).where(eq(contents.sha256, largeSha));
    expect(largeRow?.damagedAt).not.toBeNull();
    const asked = await request(`${h.url}${API_PREFIX}/contents/missing`, {
      method: 'POST',
      headers: { ...agentHeaders(), 'content-type': 'application/json' },
      body: JSON.stringify({ hashes: [largeSha, smallSha, goneSha, goodSha] }),
    });
    expect(((await asked.body.json()) as { missing: string[] }).missing.sort()).toEqual([largeSha, smallSha, goneSha].sort());

    await agent.backup([
      { path: '/data/damaged/large.bin', content: large },
      { path: '/data/damaged/small.txt', content: small },
      { path: '/data/gone.txt', content: gone },
    ]);
    const healed = await h.ctx.database.db.select({ sha256: chunks.sha256 }).from(chunks).where(sql`${chunks.damagedAt} is not null`);
    expect(healed).toEqual([]);
    for (const [sha, bytes] of [[largeSha, large], [smallSha, small], [goneSha, gone]] as const) {
      const outcome = await get(`${h.url}${API_PREFIX}/contents/${sha}`, agentHeaders());
      expect(outcome.status, sha).toBe(200);
      expect(outcome.bodyError).toBeUndefined();
      expect(outcome.bytes.equals(bytes), sha).toBe(true);
    }
  });
});
