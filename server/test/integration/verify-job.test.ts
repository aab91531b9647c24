/**
 * The verify job (decision 132) against a real server, PostgreSQL and store
 * (disk, and S3 on s3rver): a byte flipped in a pack behind the server's
 * back is found, recorded as a run and a finding, named with the client,
 * path and version it affects, marked damaged (so "which are missing?"
 * asks for it), and healed by the next upload of the bytes; a dead copy
 * of a chunk in another pack is not reported; a missing pack damages every
 * chunk the index places in it.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { asc, eq, sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_PREFIX, sha256Hex } from '@cairn/shared';
import type { DiskBlobStore } from '../../src/blob/disk-blob-store.ts';
import type { S3BlobStore } from '../../src/blob/s3-blob-store.ts';
import { alerts, chunks, contentChunks, verifyFindings, verifyRuns } from '../../src/db/schema.ts';
import { evaluateServerAlerts } from '../../src/alerts/alert-engine.ts';
import { chunkLocations } from '../../src/storage/pack-index.ts';
import { listDamage, packsPerRun, runVerify } from '../../src/storage/verify-job.ts';
import { TestAgent } from '../dashboard/agent-fixture.ts';
import { addUser, startDashboardHarness, type DashboardHarness } from '../dashboard/dashboard-harness.ts';
import { startS3rver, type RunningS3rver } from '../helpers/s3rver.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

let s3: RunningS3rver | undefined;
let s3Admin: S3Client | undefined;

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

/** Reads, changes and writes back an object of the store behind the server's back. */
async function editObject(h: DashboardHarness, kind: 'disk' | 's3', key: string, change: (bytes: Buffer) => void): Promise<void> {
  if (kind === 'disk') {
    const file = (h.ctx.blobs as DiskBlobStore).pathOf(key);
    const bytes = await readFile(file);
    change(bytes);
    await writeFile(file, bytes);
    return;
  }
  const Key = (h.ctx.blobs as S3BlobStore).objectKeyOf(key);
  const object = await s3Admin!.send(new GetObjectCommand({ Bucket: s3!.bucket, Key }));
  const bytes = Buffer.from(await object.Body!.transformToByteArray());
  change(bytes);
  await s3Admin!.send(new PutObjectCommand({ Bucket: s3!.bucket, Key, Body: bytes }));
}

const combinations = testDatabaseKinds().flatMap((db) => (['disk', 's3'] as const).map((store) => [`${store} store, ${db}`, store, db] as const));

describe.each(combinations)('the verify job (%s)', (_label, store, db) => {
  let h: DashboardHarness;
  let agent: TestAgent;
  const big = randomBytes(2_000_000);
  const small = Buffer.from('a small file, one chunk\n');
  const bigSha = sha256Hex(big);

  beforeAll(async () => {
    h = await startDashboardHarness(db, store === 's3' ? s3!.env : {});
    await addUser(h.ctx, 'vera', 'vera-password-1');
    agent = await TestAgent.register(h.url, 'vera', 'vera-password-1', 'vera-box');
    await agent.backup([
      { path: '/data/big.bin', content: big },
      { path: '/data/small.txt', content: small },
    ]);
  });
  afterAll(() => h?.close());

  const missing = async (hashes: string[]) => {
    const response = await request(`${h.url}${API_PREFIX}/contents/missing`, {
      method: 'POST',
      headers: { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hashes }),
    });
    return ((await response.body.json()) as { missing: string[] }).missing;
  };

  it('finds nothing in an intact store, and records the run', async () => {
    const result = await runVerify(h.ctx, 'manual');
    expect(result).toMatchObject({ ran: true, damagedChunks: 0 });
    expect(result.packsChecked).toBeGreaterThanOrEqual(1);
    expect(result.chunksChecked).toBeGreaterThanOrEqual(2);
    const [run] = await h.ctx.database.db.select().from(verifyRuns).where(eq(verifyRuns.id, result.runId!));
    expect(run).toMatchObject({ status: 'succeeded', trigger: 'manual', damagedChunks: 0, packsChecked: result.packsChecked });
    expect(run!.bytesRead).toBeGreaterThan(0);
    expect(run!.finishedAt).not.toBeNull();
  });

  it('finds a flipped byte, names the client, path and version, and the next upload of the bytes heals it', async () => {
    const [middle] = await h.ctx.database.db
      .select({ chunk: contentChunks.chunkSha256 })
      .from(contentChunks)
      .where(eq(contentChunks.contentSha256, bigSha))
      .orderBy(asc(contentChunks.seq))
      .offset(5)
      .limit(1);
    const location = (await chunkLocations(h.ctx.database.db, [middle!.chunk])).get(middle!.chunk);
    if (location?.kind !== 'pack') throw new Error('expected a packed chunk');
    await editObject(h, store, location.packKey, (bytes) => (bytes[location.offset + 10]! ^= 0x01));

    const result = await runVerify(h.ctx, 'manual');
    expect(result.damagedChunks).toBe(1);
    const findings = await h.ctx.database.db.select().from(verifyFindings).where(eq(verifyFindings.runId, result.runId!));
    expect(findings.map((f) => [f.chunkSha256, f.objectKey])).toEqual([[middle!.chunk, location.packKey]]);
    const [marked] = await h.ctx.database.db.select().from(chunks).where(eq(chunks.sha256, middle!.chunk));
    expect(marked?.damagedAt).not.toBeNull();
    const damage = await listDamage(h.ctx);
    expect(damage.map((d) => d.sha256)).toEqual([middle!.chunk]);
    expect(damage[0]!.affected).toEqual([expect.objectContaining({ clientId: agent.clientId, clientName: 'vera-box', path: '/data/big.bin', validTo: null })]);
    // The run opened the server-wide storage_damaged alert (critical).
    const damagedAlert = () => h.ctx.database.db.select().from(alerts).where(eq(alerts.type, 'storage_damaged'));
    expect(await damagedAlert()).toEqual([expect.objectContaining({ state: 'open', severity: 'critical', clientId: null, observed: expect.stringMatching(/^1 damaged chunk since /) })]);

    // The agent is told the content is missing; its next upload writes the bytes again and clears the marks.
    expect(await missing([bigSha, sha256Hex(small)])).toEqual([bigSha]);
    await agent.backup([{ path: '/data/big.bin', content: big }]);
    expect(await h.ctx.database.db.select().from(chunks).where(sql`${chunks.damagedAt} is not null`)).toEqual([]);
    expect(await missing([bigSha])).toEqual([]);
    // Healed: the alert engine's pass resolves it.
    await evaluateServerAlerts(h.ctx);
    expect(await damagedAlert()).toEqual([expect.objectContaining({ state: 'resolved' })]);
    const download = await request(`${h.url}${API_PREFIX}/contents/${bigSha}`, { headers: { authorization: `Bearer ${agent.token}` } });
    expect(Buffer.from(await download.body.arrayBuffer()).equals(big)).toBe(true);
    // The damaged copy is dead now: a new run finds nothing wrong with the live chunks.
    expect((await runVerify(h.ctx, 'manual')).damagedChunks).toBe(0);
  });

  it('a missing pack damages every chunk the index places in it', async () => {
    const lonely = Buffer.from('the only file of its pack');
    await agent.backup([{ path: '/data/lonely.txt', content: lonely }]);
    const location = (await chunkLocations(h.ctx.database.db, [sha256Hex(lonely)])).get(sha256Hex(lonely));
    if (location?.kind !== 'pack') throw new Error('expected a packed chunk');
    await h.ctx.blobs.delete(location.packKey);
    const result = await runVerify(h.ctx, 'manual');
    expect(result.damagedChunks).toBe(1);
    const findings = await h.ctx.database.db.select().from(verifyFindings).where(eq(verifyFindings.runId, result.runId!));
    expect(findings.map((f) => f.problem)).toEqual(['the pack is missing']);
    expect(await missing([sha256Hex(lonely)])).toEqual([sha256Hex(lonely)]);
    await agent.backup([{ path: '/data/lonely.txt', content: lonely }]);
    expect(await missing([sha256Hex(lonely)])).toEqual([]);
  });

  it('a scheduled run reads its share: every pack within the full pass, the least recently verified first', () => {
    const config = { intervalSeconds: 86_400, fullPassDays: 30 };
    expect(packsPerRun(300, 'schedule', config)).toBe(10);
    expect(packsPerRun(7, 'schedule', config)).toBe(1);
    expect(packsPerRun(300, 'manual', config)).toBe(300);
    expect(packsPerRun(300, 'schedule', { intervalSeconds: 0, fullPassDays: 30 })).toBe(300);
    expect(packsPerRun(0, 'schedule', config)).toBe(0);
  });
});
