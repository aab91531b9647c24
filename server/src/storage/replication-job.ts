/**
 * The replication job (decisions 161-162): copies every committed pack, and
 * every v1 object still in use, from the primary store to the replica store,
 * in commit order (packs by id, then v1 objects). Each copy gets its
 * `replica_objects` row first, and is stamped `replicated_at` only after it
 * was read back and its bytes hash to its name. Work per pass is bounded;
 * what is not stamped is copied again by the next pass, so a pass killed
 * anywhere resumes (a put is atomic and idempotent, and a leftover of an
 * interrupted put is swept at start-up), and an object whose copy was cut
 * off is still deleted from the replica when GC deletes it here. A copy is deleted from the replica only once GC deleted the
 * object from the primary and REPLICA_DELETE_GRACE_SECONDS have passed
 * since the job noticed.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { packKeyOf, type BlobStore } from '../blob/blob-store.ts';
import { LOCK_KEYS, lockManagerFor } from '../db/advisory-locks.ts';
import { rowsOf } from '../db/database.ts';
import { HashMismatchError } from '../errors.ts';

/** Objects a pass copies at most (decision 162). */
export const REPLICATION_PASS_MAX_OBJECTS = 1000;
/** Bytes a pass copies at most; the object that crosses the bound is the pass's last. */
export const REPLICATION_PASS_MAX_BYTES = 4 * 1024 ** 3;
/**
 * An object whose copy failed (the primary's is missing or damaged) is tried
 * again this long after, so a run of bad objects at the head of the queue
 * neither starves newer packs nor fills the log every pass.
 */
export const REPLICATION_RETRY_SECONDS = 3600;
/** Copies a pass stats on the replica (least recently checked first), so one that vanished there is copied again. */
export const REPLICATION_PASS_CHECKS = 50;

export interface ReplicationOptions {
  maxObjects?: number;
  maxBytes?: number;
  /** Default: the server's REPLICA_DELETE_GRACE_SECONDS. */
  deleteGraceSeconds?: number;
  /** Test hook: after an object was copied, verified and recorded (throwing there stands for a kill). */
  afterCopied?: (key: string) => Promise<void>;
}

export interface ReplicationResult {
  /** false: no replica is configured, or another replica of the server is running the job. */
  ran: boolean;
  copied: number;
  bytesCopied: number;
  /** Objects the primary lacks or holds damaged (left for the verify job and the next pass), or whose copy read back wrong. */
  failed: number;
  /** Copies found missing on the replica and forgotten, to be copied again. */
  vanished: number;
  /** Copies whose primary object GC deleted, newly noticed. */
  markedGone: number;
  /** Copies deleted from the replica after the grace period. */
  deleted: number;
  /** Objects still to copy when the pass ended, at least (0: caught up, but for copies that failed within REPLICATION_RETRY_SECONDS, which the lag still counts). */
  remaining: number;
}

interface Pending {
  sha256: string;
  kind: 'pack' | 'object';
  bytes: number;
}

function keyOf(object: { sha256: string; kind: 'pack' | 'object' }): string {
  return object.kind === 'pack' ? packKeyOf(object.sha256) : object.sha256;
}

/** The SQL condition "the replica holds no verified copy of this" for packs `p` and v1 chunk rows `ch`. */
const PACK_NOT_REPLICATED = sql`not exists (select 1 from replica_objects r where r.kind = 'pack' and r.sha256 = p.sha256 and r.replicated_at is not null)`;
const OBJECT_NOT_REPLICATED = sql`not exists (select 1 from replica_objects r where r.kind = 'object' and r.sha256 = ch.sha256 and r.replicated_at is not null)`;

/** No copy of `sha256` failed within REPLICATION_RETRY_SECONDS. */
function notFailedRecently(kind: 'pack' | 'object', sha256: ReturnType<typeof sql>) {
  return sql`not exists (select 1 from replica_objects f where f.kind = ${kind} and f.sha256 = ${sha256}
    and f.failed_at > now() - make_interval(secs => ${REPLICATION_RETRY_SECONDS}))`;
}

/** One pass (see the module comment); one replica of the server at a time. */
export async function runReplication(ctx: AppContext, options: ReplicationOptions = {}): Promise<ReplicationResult> {
  const totals: ReplicationResult = { ran: true, copied: 0, bytesCopied: 0, failed: 0, vanished: 0, markedGone: 0, deleted: 0, remaining: 0 };
  const replica = ctx.replica;
  if (!replica) return { ...totals, ran: false };
  const outcome = await lockManagerFor(ctx.database).tryExclusive(LOCK_KEYS.replication, async () => {
    await checkCopies(ctx, replica, totals);
    await copyPending(ctx, replica, options, totals);
    await deleteGone(ctx, replica, options.deleteGraceSeconds ?? ctx.config.replica?.deleteGraceSeconds ?? 0, totals);
  });
  if (!outcome.ran) return { ...totals, ran: false };
  if (totals.copied + totals.failed + totals.vanished + totals.markedGone + totals.deleted > 0 || totals.remaining > 0) {
    ctx.log.info({ ...totals, replica: replica.location }, 'replication pass finished');
  }
  return totals;
}

async function copyPending(ctx: AppContext, replica: BlobStore, options: ReplicationOptions, totals: ReplicationResult): Promise<void> {
  const db = ctx.database.db;
  const maxObjects = options.maxObjects ?? REPLICATION_PASS_MAX_OBJECTS;
  const maxBytes = options.maxBytes ?? REPLICATION_PASS_MAX_BYTES;
  // One more than the bound: whether anything is left is known without a count.
  const pending: Pending[] = [
    ...rowsOf<{ sha256: string; bytes: number | string }>(
      await db.execute(sql`
        select encode(p.sha256, 'hex') as sha256, p.bytes from packs p
        where p.retired_at is null and ${PACK_NOT_REPLICATED} and ${notFailedRecently('pack', sql`p.sha256`)}
        order by p.id limit ${maxObjects + 1}`),
    ).map((row) => ({ sha256: row.sha256, kind: 'pack' as const, bytes: Number(row.bytes) })),
  ];
  if (pending.length <= maxObjects) {
    pending.push(
      ...rowsOf<{ sha256: string; size: number | string }>(
        await db.execute(sql`
          select encode(ch.sha256, 'hex') as sha256, ch.size from chunks ch
          where ch.pack_id is null and ${OBJECT_NOT_REPLICATED} and ${notFailedRecently('object', sql`ch.sha256`)}
          order by ch.sha256 limit ${maxObjects + 1 - pending.length}`),
      ).map((row) => ({ sha256: row.sha256, kind: 'object' as const, bytes: Number(row.size) })),
    );
  }
  let attempted = 0;
  for (const object of pending) {
    if (attempted >= maxObjects || totals.bytesCopied >= maxBytes) break;
    attempted++;
    const key = keyOf(object);
    // The row before the object, as in the primary: a copy cut off here and then deleted by GC is still cleaned up.
    await db.execute(sql`
      insert into replica_objects (sha256, kind, bytes) values (decode(${object.sha256}, 'hex'), ${object.kind}, ${object.bytes})
      on conflict (sha256, kind) do nothing`);
    const problem = await copyOne(ctx, replica, key, object);
    if (problem !== null) {
      await db.execute(sql`update replica_objects set failed_at = now() where sha256 = decode(${object.sha256}, 'hex') and kind = ${object.kind}`);
      totals.failed++;
      ctx.log.error({ key, problem }, `could not replicate ${key}: ${problem}`);
      continue;
    }
    await db.execute(sql`
      update replica_objects set replicated_at = now(), checked_at = now(), failed_at = null
      where sha256 = decode(${object.sha256}, 'hex') and kind = ${object.kind}`);
    totals.copied++;
    totals.bytesCopied += object.bytes;
    if (totals.copied % 50 === 0) {
      ctx.log.info({ copied: totals.copied, bytesCopied: totals.bytesCopied, of: Math.min(pending.length, maxObjects) }, 'replication progress');
    }
    await options.afterCopied?.(key);
  }
  totals.remaining = pending.length - attempted + totals.failed;
}

/** Copies one object and reads the copy back; null when it is on the replica and verified, else what went wrong. */
async function copyOne(ctx: AppContext, replica: BlobStore, key: string, object: Pending): Promise<string | null> {
  const source = await ctx.blobs.get(key);
  if (source === null) return 'the primary store has no such object (the verify job names what it held)';
  try {
    // The put hashes the bytes against their name: a damaged primary copy is refused and nothing is stored.
    await replica.put(key, source, object.sha256);
  } catch (error) {
    if (error instanceof HashMismatchError) return "the primary's copy is damaged (its bytes do not hash to its name)";
    throw error;
  }
  const copy = await replica.get(key);
  if (copy === null) return 'the copy is not on the replica after its put';
  const { sha256, bytes } = await hashStream(copy);
  if (sha256 !== object.sha256 || bytes !== object.bytes) {
    return `the copy reads back as ${bytes} bytes hashing to ${sha256}, not ${object.bytes} bytes hashing to its name`;
  }
  return null;
}

async function hashStream(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const piece of stream as AsyncIterable<Buffer>) {
    hash.update(piece);
    bytes += piece.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Stats the least recently checked copies; one the replica lost is forgotten, so this pass or the next copies it again. */
async function checkCopies(ctx: AppContext, replica: BlobStore, totals: ReplicationResult): Promise<void> {
  const db = ctx.database.db;
  const sample = rowsOf<{ sha256: string; kind: 'pack' | 'object'; bytes: number | string }>(
    await db.execute(sql`
      select encode(sha256, 'hex') as sha256, kind, bytes from replica_objects
      where primary_gone_at is null and replicated_at is not null order by checked_at limit ${REPLICATION_PASS_CHECKS}`),
  );
  for (const row of sample) {
    const key = keyOf(row);
    const info = await replica.stat(key);
    if (info !== null && info.size === Number(row.bytes)) {
      await db.execute(sql`update replica_objects set checked_at = now() where sha256 = decode(${row.sha256}, 'hex') and kind = ${row.kind}`);
      continue;
    }
    await db.execute(sql`delete from replica_objects where sha256 = decode(${row.sha256}, 'hex') and kind = ${row.kind}`);
    totals.vanished++;
    ctx.log.error({ key, found: info?.size ?? null, expected: Number(row.bytes) }, `the replica lost its copy of ${key}; it is copied again`);
  }
}

/** Notices copies whose primary object GC deleted, and deletes those noticed longer than the grace period ago. */
async function deleteGone(ctx: AppContext, replica: BlobStore, graceSeconds: number, totals: ReplicationResult): Promise<void> {
  const db = ctx.database.db;
  const inPrimary = sql`(
    (r.kind = 'pack' and exists (select 1 from packs p where p.sha256 = r.sha256))
    or (r.kind = 'object' and exists (select 1 from chunks ch where ch.sha256 = r.sha256 and ch.pack_id is null)))`;
  totals.markedGone += countOf(await db.execute(sql`update replica_objects r set primary_gone_at = now() where r.primary_gone_at is null and not ${inPrimary}`));
  // Back in the primary (an upload stored the very same object again): not to be deleted.
  await db.execute(sql`update replica_objects r set primary_gone_at = null where r.primary_gone_at is not null and ${inPrimary}`);
  for (;;) {
    const due = rowsOf<{ sha256: string; kind: 'pack' | 'object' }>(
      await db.execute(sql`
        select encode(sha256, 'hex') as sha256, kind from replica_objects
        where primary_gone_at < now() - make_interval(secs => ${graceSeconds})
        order by primary_gone_at limit 500`),
    );
    // Object first, then its row: a kill in between deletes the (absent) object again next time.
    for (const row of due) {
      await replica.delete(keyOf(row));
      await db.execute(sql`delete from replica_objects where sha256 = decode(${row.sha256}, 'hex') and kind = ${row.kind} and primary_gone_at is not null`);
      totals.deleted++;
    }
    if (due.length < 500) break;
  }
}

function countOf(result: unknown): number {
  const count = (result as { count?: number }).count;
  return typeof count === 'number' ? count : 0;
}

/** How far the replica is behind the primary (the dashboard, the admin API and the replica_lagging alert). */
export interface ReplicaStatus {
  /** false: no replica is configured (every figure is 0). */
  configured: boolean;
  /** The replica store's location, for people (no secrets). */
  location: string | null;
  packsBehind: number;
  /** v1 whole-content objects still in use and not yet copied. */
  objectsBehind: number;
  bytesBehind: number;
  /** When the oldest pack not yet copied was committed; null when none is behind. */
  oldestPendingAt: Date | null;
  /** Now minus oldestPendingAt in seconds; 0 when caught up. */
  lagSeconds: number;
  /** Verified copies of objects the primary still holds. */
  copiedObjects: number;
  copiedBytes: number;
  /** Copies of objects GC deleted from the primary, kept until the delete grace period passes. */
  awaitingDeletion: number;
  lastCopiedAt: Date | null;
}

export async function replicaStatus(ctx: AppContext, now: Date = new Date()): Promise<ReplicaStatus> {
  const empty: ReplicaStatus = {
    configured: false,
    location: null,
    packsBehind: 0,
    objectsBehind: 0,
    bytesBehind: 0,
    oldestPendingAt: null,
    lagSeconds: 0,
    copiedObjects: 0,
    copiedBytes: 0,
    awaitingDeletion: 0,
    lastCopiedAt: null,
  };
  if (!ctx.replica) return empty;
  const db = ctx.database.db;
  const [packs] = rowsOf<{ n: number | string; bytes: number | string; oldest: Date | string | null }>(
    await db.execute(sql`
      select count(*) as n, coalesce(sum(p.bytes), 0) as bytes, min(p.created_at) as oldest
      from packs p where p.retired_at is null and ${PACK_NOT_REPLICATED}`),
  );
  const [objects] = rowsOf<{ n: number | string; bytes: number | string }>(
    await db.execute(sql`
      select count(*) as n, coalesce(sum(ch.size), 0) as bytes
      from chunks ch where ch.pack_id is null and ${OBJECT_NOT_REPLICATED}`),
  );
  const [copies] = rowsOf<{ n: number | string; bytes: number | string; gone: number | string; last: Date | string | null }>(
    await db.execute(sql`
      select count(*) filter (where primary_gone_at is null and replicated_at is not null) as n,
             coalesce(sum(bytes) filter (where primary_gone_at is null and replicated_at is not null), 0) as bytes,
             count(*) filter (where primary_gone_at is not null) as gone,
             max(replicated_at) as last
      from replica_objects`),
  );
  const oldest = packs?.oldest ? new Date(packs.oldest) : null;
  return {
    configured: true,
    location: ctx.replica.location,
    packsBehind: Number(packs?.n ?? 0),
    objectsBehind: Number(objects?.n ?? 0),
    bytesBehind: Number(packs?.bytes ?? 0) + Number(objects?.bytes ?? 0),
    oldestPendingAt: oldest,
    lagSeconds: oldest ? Math.max(0, Math.floor((now.getTime() - oldest.getTime()) / 1000)) : 0,
    copiedObjects: Number(copies?.n ?? 0),
    copiedBytes: Number(copies?.bytes ?? 0),
    awaitingDeletion: Number(copies?.gone ?? 0),
    lastCopiedAt: copies?.last ? new Date(copies.last) : null,
  };
}
