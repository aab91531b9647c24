/**
 * Replication to a second store (decisions 161-165) against a real server,
 * PostgreSQL and stores: s3rver as the primary with a disk replica, and a
 * disk primary with a second s3rver bucket as the replica. Every pack is
 * copied in commit order and read back verified; a pass killed midway
 * resumes; a copy the replica lost is copied again; GC's deletions reach the
 * replica only after the delete grace; the lag opens replica_lagging and
 * catching up resolves it; a pack destroyed or damaged in the primary is
 * still served, from the replica, and the primary is repaired, by a read
 * and by the verify job.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { and, eq, isNotNull, isNull, sql } from 'drizzle-orm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_PREFIX, sha256Hex } from '@cairn/shared';
import { evaluateServerAlerts } from '../../src/alerts/alert-engine.ts';
import { packKeyOf, type BlobStore } from '../../src/blob/blob-store.ts';
import type { DiskBlobStore } from '../../src/blob/disk-blob-store.ts';
import type { S3BlobStore } from '../../src/blob/s3-blob-store.ts';
import { rowsOf } from '../../src/db/database.ts';
import { alerts, chunks, contents, ownerContents, replicaObjects } from '../../src/db/schema.ts';
import { createApiToken } from '../../src/services/api-tokens.service.ts';
import { collectGarbage } from '../../src/services/garbage-collector.ts';
import { SYSTEM_ACTOR } from '../../src/services/users.service.ts';
import { chunkLocations } from '../../src/storage/pack-index.ts';
import { replicaStatus, runReplication } from '../../src/storage/replication-job.ts';
import { migrateV1Objects } from '../../src/storage/v1-migration-job.ts';
import { runVerify } from '../../src/storage/verify-job.ts';
import { TestAgent } from '../dashboard/agent-fixture.ts';
import { addUser, startDashboardHarness, type DashboardHarness } from '../dashboard/dashboard-harness.ts';
import { startS3rver, type RunningS3rver } from '../helpers/s3rver.ts';
import { testDatabaseKinds } from '../helpers/test-database.ts';

let s3: RunningS3rver | undefined;
let s3Admin: S3Client | undefined;
let replicaDir: string | undefined;
/** The replica's own bucket on the same s3rver: another bucket, as REPLICA_S3_BUCKET must be. */
const REPLICA_BUCKET = 'cairn-replica';
const METRICS_TOKEN = 'replication-test-metrics-token-0123456789abcdef';

beforeAll(async () => {
  s3 = await startS3rver();
  s3Admin = new S3Client({
    region: s3.s3Config.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  await s3Admin.send(new CreateBucketCommand({ Bucket: REPLICA_BUCKET }));
});

afterAll(async () => {
  s3Admin?.destroy();
  await s3?.close();
});

async function sha256Of(store: BlobStore, key: string): Promise<string | null> {
  const stream = await store.get(key);
  if (stream === null) return null;
  const hash = createHash('sha256');
  for await (const piece of stream as AsyncIterable<Buffer>) hash.update(piece);
  return hash.digest('hex');
}

/** Reads, changes and writes back an object of a store behind the server's back. */
async function editObject(store: BlobStore, bucket: string, key: string, change: (bytes: Buffer) => void): Promise<void> {
  if (store.kind === 'disk') {
    const file = (store as DiskBlobStore).pathOf(key);
    const bytes = await readFile(file);
    change(bytes);
    await writeFile(file, bytes);
    return;
  }
  const Key = (store as S3BlobStore).objectKeyOf(key);
  const object = await s3Admin!.send(new GetObjectCommand({ Bucket: bucket, Key }));
  const bytes = Buffer.from(await object.Body!.transformToByteArray());
  change(bytes);
  await s3Admin!.send(new PutObjectCommand({ Bucket: bucket, Key, Body: bytes }));
}

const layouts = [
  ['s3rver primary, disk replica', 's3', 'disk'],
  ['disk primary, s3rver replica', 'disk', 's3'],
] as const;
const combinations = testDatabaseKinds().flatMap((db) => layouts.map(([label, primary, replica]) => [`${label}, ${db}`, primary, replica, db] as const));

describe.each(combinations)('replication (%s)', (_label, primary, replicaKind, db) => {
  let h: DashboardHarness;
  let agent: TestAgent;
  const files = Array.from({ length: 5 }, (_, i) => ({ path: `/data/file-${i}.bin`, content: randomBytes(60_000 + i) }));

  const packKeys = async (): Promise<string[]> =>
    rowsOf<{ sha256: string }>(await h.ctx.database.db.execute(sql`select encode(sha256, 'hex') as sha256 from packs where retired_at is null order by id`)).map(
      (row) => packKeyOf(row.sha256),
    );
  const recorded = async (): Promise<string[]> =>
    (
      await h.ctx.database.db
        .select({ sha256: replicaObjects.sha256 })
        .from(replicaObjects)
        .where(and(eq(replicaObjects.kind, 'pack'), isNotNull(replicaObjects.replicatedAt)))
    ).map((r) => packKeyOf(r.sha256));
  const download = async (sha: string) => {
    const response = await request(`${h.url}${API_PREFIX}/contents/${sha}`, { headers: { authorization: `Bearer ${agent.token}` } });
    return { status: response.statusCode, bytes: Buffer.from(await response.body.arrayBuffer()) };
  };
  const packOf = async (content: Buffer): Promise<string> => {
    const [first] = rowsOf<{ sha256: string }>(
      await h.ctx.database.db.execute(sql`
        select encode(coalesce(cc.chunk_sha256, ch.sha256), 'hex') as sha256
        from (select decode(${sha256Hex(content)}, 'hex') as sha) c
        left join content_chunks cc on cc.content_sha256 = c.sha and cc.seq = 0
        left join chunks ch on ch.sha256 = c.sha`),
    );
    const location = (await chunkLocations(h.ctx.database.db, [first!.sha256])).get(first!.sha256);
    if (location?.kind !== 'pack') throw new Error('expected a packed chunk');
    return location.packKey;
  };

  beforeAll(async () => {
    replicaDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-replica-'));
    const env: Record<string, string> =
      replicaKind === 'disk'
        ? { ...s3!.env, REPLICA_DIR: replicaDir }
        : {
            REPLICA_S3_BUCKET: REPLICA_BUCKET,
            REPLICA_S3_ENDPOINT: s3!.endpoint,
            REPLICA_S3_ACCESS_KEY_ID: s3!.accessKeyId,
            REPLICA_S3_SECRET_ACCESS_KEY: s3!.secretAccessKey,
          };
    h = await startDashboardHarness(db, { ...env, METRICS_TOKEN });
    expect(h.ctx.replica?.kind).toBe(replicaKind);
    expect(h.ctx.blobs.kind).toBe(primary);
    await addUser(h.ctx, 'rita', 'rita-password-1');
    agent = await TestAgent.register(h.url, 'rita', 'rita-password-1', 'rita-box');
    // One backup a file: one pack each, committed in this order.
    for (const file of files) await agent.backup([file]);
  });

  afterAll(async () => {
    await h?.close();
    if (replicaDir) await rm(replicaDir, { recursive: true, force: true });
  });

  it('copies every pack in commit order, verified, and a pass killed midway resumes where it stopped', async () => {
    const keys = await packKeys();
    expect(keys.length).toBeGreaterThanOrEqual(files.length);
    let copiedBeforeKill = 0;
    await expect(
      runReplication(h.ctx, {
        afterCopied: async () => {
          copiedBeforeKill++;
          if (copiedBeforeKill === 2) throw new Error('killed');
        },
      }),
    ).rejects.toThrow('killed');
    expect((await recorded()).sort()).toEqual(keys.slice(0, 2).sort());

    const bounded = await runReplication(h.ctx, { maxObjects: 1 });
    expect(bounded).toMatchObject({ ran: true, copied: 1, failed: 0 });
    expect(bounded.remaining).toBeGreaterThan(0);
    expect((await recorded()).sort()).toEqual(keys.slice(0, 3).sort());

    const rest = await runReplication(h.ctx);
    expect(rest).toMatchObject({ ran: true, copied: keys.length - 3, failed: 0, remaining: 0 });
    expect((await recorded()).sort()).toEqual([...keys].sort());
    for (const key of keys) expect(await sha256Of(h.ctx.replica!, key)).toBe(key.slice('packs/'.length));
    expect(await runReplication(h.ctx)).toMatchObject({ copied: 0, remaining: 0 });

    const status = await replicaStatus(h.ctx);
    expect(status).toMatchObject({ configured: true, packsBehind: 0, bytesBehind: 0, oldestPendingAt: null, lagSeconds: 0, copiedObjects: keys.length });
  });

  it('copies again what the replica lost behind its back', async () => {
    const [key] = await packKeys();
    await h.ctx.replica!.delete(key!);
    const result = await runReplication(h.ctx);
    expect(result).toMatchObject({ vanished: 1, copied: 1 });
    expect(await sha256Of(h.ctx.replica!, key!)).toBe(key!.slice('packs/'.length));
  });

  it('copies a v1 whole-content object still in use, serves it from the replica when the primary lost it, and puts it back', async () => {
    const bytes = Buffer.from('a v1 object, stored whole under its hash\n'.repeat(50));
    const sha = sha256Hex(bytes);
    // As v1 wrote it: one object under its hash, a chunk row with no pack, the uploader as holder; then a version names it.
    await h.ctx.blobs.put(sha, Readable.from([bytes]), sha);
    await h.ctx.database.db.insert(chunks).values({ sha256: sha, size: bytes.length });
    const [owner] = rowsOf<{ owner_id: string }>(await h.ctx.database.db.execute(sql`select owner_id from clients where name = 'rita-box'`));
    await h.ctx.database.db.insert(ownerContents).values({ contentSha256: sha, userId: owner!.owner_id });
    await agent.backup([{ path: '/data/v1.txt', content: bytes }]);
    expect((await replicaStatus(h.ctx)).objectsBehind).toBe(1);

    const result = await runReplication(h.ctx);
    expect(result).toMatchObject({ copied: 1, failed: 0, remaining: 0 });
    const [row] = await h.ctx.database.db.select().from(replicaObjects).where(eq(replicaObjects.sha256, sha));
    expect(row).toMatchObject({ kind: 'object', bytes: bytes.length, primaryGoneAt: null });
    expect(await sha256Of(h.ctx.replica!, sha)).toBe(sha);

    await h.ctx.blobs.delete(sha);
    const served = await download(sha);
    expect(served.status).toBe(200);
    expect(served.bytes.equals(bytes)).toBe(true);
    expect(await sha256Of(h.ctx.blobs, sha)).toBe(sha);

    // Lost again before the move into packs: put back from the replica instead of marked, and moved by the next run.
    await h.ctx.blobs.delete(sha);
    expect(await migrateV1Objects(h.ctx)).toMatchObject({ moved: 0, damaged: 0, remaining: 1 });
    expect(await sha256Of(h.ctx.blobs, sha)).toBe(sha);
    expect(await migrateV1Objects(h.ctx)).toMatchObject({ moved: 1, damaged: 0, remaining: 0 });
    const [moved] = await h.ctx.database.db.select().from(chunks).where(eq(chunks.sha256, sha));
    expect(moved).toMatchObject({ damagedAt: null });
    expect(moved!.packId).not.toBeNull();
    // The pack it moved into is copied; the whole-object copy goes once the delete grace passed.
    expect(await runReplication(h.ctx)).toMatchObject({ copied: 1, markedGone: 1, deleted: 0 });
    expect(await runReplication(h.ctx, { deleteGraceSeconds: 0 })).toMatchObject({ deleted: 1 });
    expect(await h.ctx.replica!.stat(sha)).toBeNull();
  });

  it('serves a pack destroyed in the primary from the replica and puts it back', async () => {
    const file = files[1]!;
    const key = await packOf(file.content);
    await h.ctx.blobs.delete(key);
    expect(await h.ctx.blobs.stat(key)).toBeNull();

    const served = await download(sha256Hex(file.content));
    expect(served.status).toBe(200);
    expect(served.bytes.equals(file.content)).toBe(true);
    expect(await sha256Of(h.ctx.blobs, key)).toBe(key.slice('packs/'.length));
    const [content] = await h.ctx.database.db.select().from(contents).where(eq(contents.sha256, sha256Hex(file.content)));
    expect(content?.damagedAt ?? null).toBeNull();
    expect(await h.ctx.database.db.select().from(chunks).where(sql`${chunks.damagedAt} is not null`)).toEqual([]);
  });

  it('serves a damaged pack from the replica, repairs it and clears the damage marks set before', async () => {
    const file = files[2]!;
    const key = await packOf(file.content);
    // A byte flipped in the middle of the chunk data, and the marks an earlier read would have set.
    await editObject(h.ctx.blobs, s3!.bucket, key, (bytes) => (bytes[100]! ^= 0xff));
    await h.ctx.database.db.execute(sql`update chunks set damaged_at = now() where pack_id = (select id from packs where sha256 = decode(${key.slice(6)}, 'hex'))`);
    await h.ctx.database.db.update(contents).set({ damagedAt: sql`now()` }).where(eq(contents.sha256, sha256Hex(file.content)));

    const served = await download(sha256Hex(file.content));
    expect(served.status).toBe(200);
    expect(served.bytes.equals(file.content)).toBe(true);
    expect(await sha256Of(h.ctx.blobs, key)).toBe(key.slice('packs/'.length));
    expect(await h.ctx.database.db.select().from(chunks).where(sql`${chunks.damagedAt} is not null`)).toEqual([]);
    const [content] = await h.ctx.database.db.select().from(contents).where(eq(contents.sha256, sha256Hex(file.content)));
    expect(content?.damagedAt ?? null).toBeNull();
  });

  it('the verify job repairs a damaged and a missing pack from the replica instead of marking them', async () => {
    const damagedKey = await packOf(files[3]!.content);
    const missingKey = await packOf(files[4]!.content);
    await editObject(h.ctx.blobs, s3!.bucket, damagedKey, (bytes) => (bytes[40]! ^= 0x01));
    await h.ctx.blobs.delete(missingKey);

    const result = await runVerify(h.ctx, 'manual');
    expect(result).toMatchObject({ ran: true, damagedChunks: 0, packsRepaired: 2 });
    expect(await sha256Of(h.ctx.blobs, damagedKey)).toBe(damagedKey.slice(6));
    expect(await sha256Of(h.ctx.blobs, missingKey)).toBe(missingKey.slice(6));
    expect(await h.ctx.database.db.select().from(chunks).where(sql`${chunks.damagedAt} is not null`)).toEqual([]);
  });

  it('still reports damage the replica cannot mend: its copy is damaged too', async () => {
    const key = await packOf(files[0]!.content);
    await editObject(h.ctx.blobs, s3!.bucket, key, (bytes) => (bytes[30]! ^= 0x01));
    await editObject(h.ctx.replica!, REPLICA_BUCKET, key, (bytes) => (bytes[30]! ^= 0x01));
    const served = await download(sha256Hex(files[0]!.content));
    expect(served.status).toBe(500);
    const result = await runVerify(h.ctx, 'manual');
    expect(result.damagedChunks).toBeGreaterThan(0);
    expect(result.packsRepaired).toBe(0);
    // Put both back for the tests that follow (the replica's copy is refused by the check pass otherwise).
    await editObject(h.ctx.blobs, s3!.bucket, key, (bytes) => (bytes[30]! ^= 0x01));
    await editObject(h.ctx.replica!, REPLICA_BUCKET, key, (bytes) => (bytes[30]! ^= 0x01));
    expect((await runVerify(h.ctx, 'manual')).damagedChunks).toBe(0);
    await h.ctx.database.db.update(chunks).set({ damagedAt: null });
    await h.ctx.database.db.update(contents).set({ damagedAt: null });
  });

  it('opens replica_lagging when the oldest pack not yet copied passes the threshold, and resolves it once caught up', async () => {
    const late = { path: '/data/late.bin', content: randomBytes(50_000) };
    await agent.backup([late]);
    const status = await replicaStatus(h.ctx);
    expect(status.packsBehind).toBe(1);
    expect(status.bytesBehind).toBeGreaterThan(late.content.length / 2);
    expect(status.oldestPendingAt).not.toBeNull();

    const serverWide = () => h.ctx.database.db.select().from(alerts).where(and(isNull(alerts.clientId), eq(alerts.type, 'replica_lagging')));
    // Within the threshold (6 h by default): nothing.
    await evaluateServerAlerts(h.ctx);
    expect(await serverWide()).toEqual([]);
    // Seven hours on, still not copied: a warning naming what is behind.
    const later = new Date(status.oldestPendingAt!.getTime() + 7 * 3600_000);
    await evaluateServerAlerts(h.ctx, { now: later });
    const [opened] = await serverWide();
    expect(opened).toMatchObject({ state: 'open', severity: 'warning' });
    expect(opened!.message).toContain('1 pack');
    expect(opened!.message).toContain('7h 00m behind');

    await runReplication(h.ctx);
    await evaluateServerAlerts(h.ctx, { now: later });
    const [resolved] = await serverWide();
    expect(resolved).toMatchObject({ id: opened!.id, state: 'resolved' });
  });

  it('does not copy a pack the primary holds damaged, counts it behind, and tries it again only after the retry period', async () => {
    const file = { path: '/data/bad-before-copy.bin', content: randomBytes(45_000) };
    await agent.backup([file]);
    const later = { path: '/data/after-it.bin', content: randomBytes(45_000) };
    await agent.backup([later]);
    const key = await packOf(file.content);
    await editObject(h.ctx.blobs, s3!.bucket, key, (bytes) => (bytes[60]! ^= 0x04));

    // The damaged pack comes first in commit order; the one after it is copied all the same.
    expect(await runReplication(h.ctx)).toMatchObject({ copied: 1, failed: 1 });
    expect(await h.ctx.replica!.stat(key)).toBeNull();
    expect(await h.ctx.replica!.stat(await packOf(later.content))).not.toBeNull();
    expect((await replicaStatus(h.ctx)).packsBehind).toBe(1);
    // Not retried at every pass.
    expect(await runReplication(h.ctx)).toMatchObject({ copied: 0, failed: 0 });

    // Healed in the primary (here: the byte put back), and the retry period over: copied.
    await editObject(h.ctx.blobs, s3!.bucket, key, (bytes) => (bytes[60]! ^= 0x04));
    await h.ctx.database.db.update(replicaObjects).set({ failedAt: sql`now() - interval '2 hours'` }).where(eq(replicaObjects.sha256, key.slice(6)));
    expect(await runReplication(h.ctx)).toMatchObject({ copied: 1, failed: 0 });
    expect(await sha256Of(h.ctx.replica!, key)).toBe(key.slice(6));
    expect((await replicaStatus(h.ctx)).packsBehind).toBe(0);
  });

  it('GET /api/v1/admin/replica gives admins the lag, and other users a 403', async () => {
    const root = await addUser(h.ctx, `root-${db}`, 'root-password-1', true);
    const { token: adminToken } = await createApiToken(h.ctx, root.id, { name: 'lag', readOnly: true, expiresInDays: 1 }, SYSTEM_ACTOR, new Date());
    const { token: userToken } = await createApiToken(h.ctx, (await addUser(h.ctx, `ursula-${db}`, 'ursula-password-1')).id, { name: 'lag', readOnly: true, expiresInDays: 1 }, SYSTEM_ACTOR, new Date());
    const get = (token: string) => request(`${h.url}/api/v1/admin/replica`, { headers: { authorization: `Bearer ${token}` } });
    await agent.backup([{ path: '/data/api.bin', content: randomBytes(40_000) }]);

    const behind = await get(adminToken);
    expect(behind.statusCode).toBe(200);
    const report = (await behind.body.json()) as Record<string, unknown>;
    expect(report).toMatchObject({ configured: true, location: h.ctx.replica!.location, packsBehind: 1, objectsBehind: 0, lagAlertSeconds: 21_600 });
    expect(report.bytesBehind).toBeGreaterThan(0);
    expect(typeof report.oldestPendingAt).toBe('string');

    await runReplication(h.ctx);
    const caughtUp = (await (await get(adminToken)).body.json()) as Record<string, unknown>;
    expect(caughtUp).toMatchObject({ packsBehind: 0, bytesBehind: 0, oldestPendingAt: null, lagSeconds: 0 });
    expect(typeof caughtUp.lastCopiedAt).toBe('string');

    // The same figures for Prometheus.
    const scrape = await request(`${h.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    const metrics = await scrape.body.text();
    expect(metrics).toMatch(/^cairn_replica_lag_seconds 0$/m);
    expect(metrics).toMatch(/^cairn_replica_behind_objects 0$/m);
    expect(metrics).toMatch(/^cairn_replica_behind_bytes 0$/m);
    expect(metrics).toMatch(new RegExp(`^cairn_replica_copied_bytes ${caughtUp.copiedBytes}$`, 'm'));

    const refused = await get(userToken);
    expect(refused.statusCode).toBe(403);
    await refused.body.dump();
  });

  it('deletes a copy only after GC deleted its pack from the primary and the delete grace passed, even one whose copy was cut off', async () => {
    const gone = files[4]!;
    const key = await packOf(gone.content);
    // As a pass killed between the replica's put and the stamp leaves it: the object there, its row not stamped.
    await h.ctx.database.db.update(replicaObjects).set({ replicatedAt: null }).where(eq(replicaObjects.sha256, key.slice(6)));
    expect((await replicaStatus(h.ctx)).packsBehind).toBe(1);
    // What retention would do: no version names the content any more; GC then retires and deletes its pack.
    await h.ctx.database.db.execute(sql`delete from file_versions where content_sha256 = decode(${sha256Hex(gone.content)}, 'hex')`);
    await collectGarbage(h.ctx, { graceSeconds: 0 });
    await collectGarbage(h.ctx, { graceSeconds: 0 });
    expect(await h.ctx.blobs.stat(key)).toBeNull();

    const noticed = await runReplication(h.ctx, { deleteGraceSeconds: 3600 });
    // (GC may also have repacked a small pack: its old copy is noticed as gone too.)
    expect(noticed.markedGone).toBeGreaterThanOrEqual(1);
    expect(noticed.deleted).toBe(0);
    const [row] = await h.ctx.database.db.select().from(replicaObjects).where(eq(replicaObjects.sha256, key.slice(6)));
    expect(row?.primaryGoneAt).not.toBeNull();
    expect(await sha256Of(h.ctx.replica!, key)).toBe(key.slice(6));
    expect((await replicaStatus(h.ctx)).awaitingDeletion).toBe(noticed.markedGone);

    const due = await runReplication(h.ctx, { deleteGraceSeconds: 0 });
    expect(due.deleted).toBe(noticed.markedGone);
    expect(await h.ctx.replica!.stat(key)).toBeNull();
    expect(await h.ctx.database.db.select().from(replicaObjects).where(eq(replicaObjects.sha256, key.slice(6)))).toEqual([]);
    expect((await replicaStatus(h.ctx)).awaitingDeletion).toBe(0);
    // Every live pack is still there.
    for (const live of await packKeys()) expect(await h.ctx.replica!.stat(live)).not.toBeNull();
  });
});

describe.each(testDatabaseKinds())('without a replica store (%s)', (db) => {
  let h: DashboardHarness;
  beforeAll(async () => {
    h = await startDashboardHarness(db, { METRICS_TOKEN });
  });
  afterAll(() => h?.close());

  it('does not replicate, reports no replica, and resolves a lag alert left from when one was configured', async () => {
    expect(h.ctx.replica).toBeUndefined();
    expect(await runReplication(h.ctx)).toMatchObject({ ran: false, copied: 0 });
    expect(await replicaStatus(h.ctx)).toMatchObject({ configured: false, location: null, packsBehind: 0, lagSeconds: 0 });
    // No replica, no replica series.
    const scrape = await request(`${h.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(await scrape.body.text()).not.toContain('cairn_replica_');
    await h.ctx.database.db.insert(alerts).values({
      type: 'replica_lagging',
      severity: 'warning',
      clientId: null,
      dedupeKey: 'replica_lagging',
      path: null,
      observed: 'old',
      reference: 'old',
      message: 'the replica store is 7h 00m behind',
      openedAt: new Date(),
    });
    await evaluateServerAlerts(h.ctx);
    const [alert] = await h.ctx.database.db.select().from(alerts).where(eq(alerts.type, 'replica_lagging'));
    expect(alert?.state).toBe('resolved');
  });
});
