/**
 * The verify job (decision 132): reads packs back whole and checks every
 * chunk the index points into them, least recently verified first, so that
 * scheduled runs of a share each cover every pack within
 * VERIFY_FULL_PASS_DAYS; a run on demand reads everything. What is damaged
 * is marked (decision 128), so the next backup holding those bytes uploads
 * them again and the store heals; each run and each finding is recorded.
 */
import { evaluateServerAlerts } from '../alerts/alert-engine.ts';
import { desc, eq, sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { LOCK_KEYS, lockManagerFor } from '../db/advisory-locks.ts';
import { rowsOf } from '../db/database.ts';
import { verifyFindings, verifyRuns } from '../db/schema.ts';
import { packKeyOf } from '../blob/blob-store.ts';
import { PackChunkDamagedError } from '../errors.ts';
import { ChunkReadDamageError, readChunksInOrder } from './content-reader.ts';
import { chunkLocations, markChunksDamaged, type StoredChunk } from './pack-index.ts';
import { readChunk, verifyPack } from './pack-reader.ts';
import { repairFromReplica, type RepairOutcome } from './replica-repair.ts';
import { baseResolverFor } from './delta-base.ts';

export type VerifyTrigger = 'schedule' | 'manual';

export interface VerifyRunResult {
  /** false: another verify run (maybe in another replica) was running; this one did nothing. */
  ran: boolean;
  runId?: number;
  packsChecked: number;
  objectsChecked: number;
  chunksChecked: number;
  bytesRead: number;
  damagedChunks: number;
  /** Damaged or missing packs and v1 objects put back from the replica's verified copy (decision 164). */
  packsRepaired: number;
}

/** v1 whole-content objects a scheduled run samples (a run on demand reads them all). */
const V1_SAMPLE = 100;

/** How many packs a run reads: all on demand or when unscheduled; else the share that covers all within the full-pass period. */
export function packsPerRun(total: number, trigger: VerifyTrigger, config: AppContext['config']['verify']): number {
  if (trigger === 'manual' || config.intervalSeconds === 0) return total;
  const runsPerPass = Math.max(1, Math.floor((config.fullPassDays * 86_400) / config.intervalSeconds));
  return Math.min(total, Math.ceil(total / runsPerPass));
}

interface Finding {
  sha256: string;
  key: string;
  problem: string;
}

/** Runs one verify pass (see the module comment); records it in verify_runs while it goes. */
export async function runVerify(ctx: AppContext, trigger: VerifyTrigger): Promise<VerifyRunResult> {
  const db = ctx.database.db;
  const totals: VerifyRunResult = { ran: true, packsChecked: 0, objectsChecked: 0, chunksChecked: 0, bytesRead: 0, damagedChunks: 0, packsRepaired: 0 };
  const outcome = await lockManagerFor(ctx.database).tryExclusive(LOCK_KEYS.verifyRun, async () => {
    const [count] = rowsOf<{ n: number | string }>(await db.execute(sql`select count(*) as n from packs where retired_at is null`));
    const total = Number(count?.n ?? 0);
    const orphans = await interruptedRuns(ctx);
    const leftOver = orphans.reduce((sum, run) => sum + run.unread, 0);
    const planned = Math.min(total, Math.max(packsPerRun(total, trigger, ctx.config.verify), leftOver));
    const readsAllObjects = trigger === 'manual' || orphans.some((run) => run.trigger === 'manual');
    const [run] = await db.insert(verifyRuns).values({ trigger, packsPlanned: planned, serverId: ctx.serverId ?? null }).returning({ id: verifyRuns.id });
    const runId = run!.id;
    totals.runId = runId;
    for (const orphan of orphans) {
      await db
        .update(verifyRuns)
        .set({ status: 'interrupted', finishedAt: sql`now()`, error: `its server stopped before the run finished; run #${runId} went on with the ${orphan.unread} packs it had not read` })
        .where(eq(verifyRuns.id, orphan.id));
      ctx.log.warn({ runId, interruptedRunId: orphan.id, packs: orphan.unread }, 'taking over an interrupted verify run');
    }
    ctx.log.info({ runId, trigger, packs: planned }, 'verify run started');
    const record = async (findings: Finding[]) => {
      if (findings.length === 0) return;
      totals.damagedChunks += findings.length;
      await markChunksDamaged(db, [...new Set(findings.map((f) => f.sha256))]);
      await db.insert(verifyFindings).values(findings.map((f) => ({ runId, chunkSha256: f.sha256, objectKey: f.key, problem: f.problem })));
      for (const f of findings) ctx.log.error({ runId, sha256: f.sha256, key: f.key, problem: f.problem }, `verify found a damaged chunk: ${f.sha256}`);
    };
    // The run's row carries the counts so far: at each progress step and at its end.
    const counts = () => ({
      packsChecked: totals.packsChecked,
      objectsChecked: totals.objectsChecked,
      chunksChecked: totals.chunksChecked,
      bytesRead: totals.bytesRead,
      damagedChunks: totals.damagedChunks,
      packsRepaired: totals.packsRepaired,
    });
    const progress = () => db.update(verifyRuns).set(counts()).where(eq(verifyRuns.id, runId));
    try {
      const chosen = rowsOf<{ id: number; sha256: string }>(
        await db.execute(sql`
          select id, encode(sha256, 'hex') as sha256 from packs where retired_at is null
          order by verified_at asc nulls first, id limit ${planned}`),
      );
      for (const pack of chosen) {
        const key = packKeyOf(pack.sha256);
        const check = () => verifyOnePack(ctx, Number(pack.id), key, totals);
        await record(await withReplicaRepair(ctx, key, await check(), check, totals));
        await db.execute(sql`update packs set verified_at = now() where id = ${pack.id}`);
        totals.packsChecked++;
        if (totals.packsChecked % 20 === 0) {
          await progress();
          ctx.log.info({ runId, packsChecked: totals.packsChecked, of: planned, bytesRead: totals.bytesRead }, 'verify run progress');
        }
      }
      await record(await verifyObjects(ctx, readsAllObjects, totals));
      await db
        .update(verifyRuns)
        .set({
          status: 'succeeded',
          finishedAt: sql`now()`,
          ...counts(),
        })
        .where(eq(verifyRuns.id, runId));
      ctx.log.info({ ...totals }, 'verify run finished');
      // Damage found: the storage_damaged alert opens now, not at the alert engine's next pass.
      if (totals.damagedChunks > 0) {
        await evaluateServerAlerts(ctx).catch((error: unknown) => ctx.log.error({ err: error }, 'storage alert after a verify run failed'));
      }
    } catch (error) {
      await progress();
      await db
        .update(verifyRuns)
        .set({ status: 'failed', finishedAt: sql`now()`, error: error instanceof Error ? error.message : String(error) })
        .where(eq(verifyRuns.id, runId));
      throw error;
    }
  });
  return outcome.ran ? totals : { ...totals, ran: false };
}

/**
 * One pack, read whole: every chunk whose row points into it is checked.
 * A dead copy in the pack (a chunk whose row points elsewhere) is not the
 * live chunk's damage and is ignored. A missing pack damages every chunk
 * the index places there; a pack whose own index is damaged is checked
 * chunk by chunk from the database's index.
 */
async function verifyOnePack(ctx: AppContext, packId: number, key: string, totals: VerifyRunResult): Promise<Finding[]> {
  const live = rowsOf<{ sha256: string }>(
    await ctx.database.db.execute(sql`select encode(sha256, 'hex') as sha256 from chunks where pack_id = ${packId} order by pack_offset`),
  ).map((row) => row.sha256);
  const locations = await chunkLocations(ctx.database.db, live);
  const mine = live.map((sha) => locations.get(sha)).filter((l): l is Extract<StoredChunk, { kind: 'pack' }> => l?.kind === 'pack' && l.packKey === key);
  totals.chunksChecked += mine.length;
  const base = baseResolverFor(ctx);
  const checked = await verifyPack(ctx.blobs, key, undefined, base);
  if (checked === null) return mine.map((l) => ({ sha256: l.sha256, key, problem: 'the pack is missing' }));
  totals.bytesRead += checked.bytesRead;
  if (checked.entries === null) {
    const findings: Finding[] = [];
    for (const location of mine) {
      try {
        await readChunk(ctx.blobs, location, location.sha256, undefined, base);
      } catch (error) {
        if (!(error instanceof PackChunkDamagedError)) throw error;
        findings.push({ sha256: location.sha256, key, problem: `${error.detail} (the pack's own index is damaged: ${checked.indexProblem})` });
      }
    }
    return findings;
  }
  const bad = new Map(checked.damaged.map((d) => [d.sha256, d.problem]));
  const entries = new Map(checked.entries.map((e) => [`${e.sha256}@${e.offset}`, e]));
  const findings: Finding[] = [];
  for (const location of mine) {
    const entry = entries.get(`${location.sha256}@${location.offset}`);
    if (!entry || entry.length !== location.length) findings.push({ sha256: location.sha256, key, problem: 'the pack has no such chunk where the index says' });
    else if (bad.has(location.sha256)) findings.push({ sha256: location.sha256, key, problem: bad.get(location.sha256)! });
  }
  return findings;
}

/**
 * Findings of one object, unless the replica's verified copy repairs it
 * (decision 164): then the object is checked again, and what that finds
 * (normally nothing) is the result. Without a replica, or when its copy is
 * missing or damaged too, the findings stand.
 */
async function withReplicaRepair(ctx: AppContext, key: string, findings: Finding[], recheck: () => Promise<Finding[]>, totals: VerifyRunResult): Promise<Finding[]> {
  if (findings.length === 0 || !ctx.replica) return findings;
  let outcome: RepairOutcome;
  try {
    outcome = await repairFromReplica(ctx, key);
  } catch (error) {
    ctx.log.error({ err: error, key }, `verify could not repair ${key} from the replica`);
    return findings;
  }
  if (outcome !== 'repaired') {
    ctx.log.error({ key, outcome }, `verify found ${key} damaged and the replica has no good copy`);
    return findings;
  }
  const after = await recheck();
  if (after.length === 0) totals.packsRepaired++;
  return after;
}

/**
 * Runs left `running` by a replica that died mid-run (decision 151). Only
 * called by the holder of the verify lock, so no live run is among them. A
 * run's unread packs are those of its plan not verified since it started.
 */
async function interruptedRuns(ctx: AppContext): Promise<{ id: number; trigger: string; unread: number }[]> {
  const rows = rowsOf<{ id: number; trigger: string; unread: number | string }>(
    await ctx.database.db.execute(sql`
      select r.id, r.trigger,
        greatest(0, r.packs_planned - (select count(*) from packs p where p.retired_at is null and p.verified_at >= r.started_at))::int as unread
      from verify_runs r where r.status = 'running' order by r.id`),
  );
  return rows.map((row) => ({ id: Number(row.id), trigger: row.trigger, unread: Number(row.unread) }));
}

/** v1 whole-content objects (chunk rows without a pack): all on demand (or when taking over such a run), a random sample on schedule. */
async function verifyObjects(ctx: AppContext, readAll: boolean, totals: VerifyRunResult): Promise<Finding[]> {
  const limit = readAll ? sql`` : sql`order by random() limit ${V1_SAMPLE}`;
  const hashes = rowsOf<{ sha256: string }>(
    await ctx.database.db.execute(sql`select encode(sha256, 'hex') as sha256 from chunks where pack_id is null ${limit}`),
  ).map((row) => row.sha256);
  const locations = await chunkLocations(ctx.database.db, hashes);
  const findings: Finding[] = [];
  for (const sha of hashes) {
    const location = locations.get(sha);
    if (!location) continue;
    totals.objectsChecked++;
    const check = () => verifyObject(ctx, location, totals);
    findings.push(...(await withReplicaRepair(ctx, sha, await check(), check, totals)));
  }
  return findings;
}

async function verifyObject(ctx: AppContext, location: StoredChunk, totals: VerifyRunResult): Promise<Finding[]> {
  totals.chunksChecked++;
  try {
    for await (const piece of readChunksInOrder(ctx.blobs, [location], { verifyObjects: true })) totals.bytesRead += piece.length;
    return [];
  } catch (error) {
    if (!(error instanceof ChunkReadDamageError)) throw error;
    return [{ sha256: location.sha256, key: error.key, problem: error.detail }];
  }
}

export interface VerifyRunRow {
  id: number;
  trigger: string;
  status: string;
  serverId: string | null;
  startedAt: Date;
  finishedAt: Date | null;
  packsPlanned: number;
  packsChecked: number;
  objectsChecked: number;
  chunksChecked: number;
  bytesRead: number;
  damagedChunks: number;
  packsRepaired: number;
  error: string | null;
}

/** The latest runs, newest first. */
export async function listVerifyRuns(ctx: AppContext, limit = 30): Promise<VerifyRunRow[]> {
  return ctx.database.db.select().from(verifyRuns).orderBy(desc(verifyRuns.id)).limit(limit);
}

/** A chunk marked damaged now, with what it affects: each client, path and version holding its bytes. */
export interface DamagedChunk {
  sha256: string;
  damagedAt: Date;
  problem: string | null;
  affected: { clientId: string; clientName: string; path: string; versionId: number; validFrom: Date; validTo: Date | null }[];
}

/** What is damaged right now (the marks, not old findings: a healed chunk drops out). At most `limit` chunks. */
export async function listDamage(ctx: AppContext, limit = 200): Promise<DamagedChunk[]> {
  const rows = rowsOf<{
    sha256: string;
    damaged_at: Date | string;
    problem: string | null;
    client_id: string | null;
    client_name: string | null;
    path: string | null;
    version_id: number | null;
    valid_from: Date | string | null;
    valid_to: Date | string | null;
  }>(
    await ctx.database.db.execute(sql`
      with d as (select sha256, damaged_at from chunks where damaged_at is not null order by damaged_at desc limit ${limit}),
      held as (
        select d.sha256 as chunk, fv.id, fv.path_id, fv.valid_from, fv.valid_to
        from d join file_versions fv on fv.content_sha256 = d.sha256
        union
        select d.sha256, fv.id, fv.path_id, fv.valid_from, fv.valid_to
        from d join content_chunks cc on cc.chunk_sha256 = d.sha256 join file_versions fv on fv.content_sha256 = cc.content_sha256
      )
      select encode(d.sha256, 'hex') as sha256, d.damaged_at,
        (select f.problem from verify_findings f where f.chunk_sha256 = d.sha256 order by f.id desc limit 1) as problem,
        c.id as client_id, c.name as client_name, cp.path, held.id as version_id, held.valid_from, held.valid_to
      from d
      left join held on held.chunk = d.sha256
      left join client_paths cp on cp.id = held.path_id
      left join clients c on c.id = cp.client_id
      order by d.damaged_at desc, d.sha256, c.name, cp.path, held.valid_from desc`),
  );
  const bySha = new Map<string, DamagedChunk>();
  for (const row of rows) {
    let chunk = bySha.get(row.sha256);
    if (!chunk) {
      chunk = { sha256: row.sha256, damagedAt: new Date(row.damaged_at), problem: row.problem, affected: [] };
      bySha.set(row.sha256, chunk);
    }
    if (row.client_id && row.path !== null && row.version_id !== null) {
      chunk.affected.push({
        clientId: row.client_id,
        clientName: row.client_name ?? '',
        path: row.path,
        versionId: Number(row.version_id),
        validFrom: new Date(row.valid_from!),
        validTo: row.valid_to === null ? null : new Date(row.valid_to),
      });
    }
  }
  return [...bySha.values()];
}

/**
 * Starts a run on demand without waiting for it (a full pass may take long):
 * false when a run is already going (this replica or another), true when one
 * was started; its outcome is in verify_runs and the log.
 */
export async function startVerifyRun(ctx: AppContext): Promise<boolean> {
  // The lock, not a `running` row: a row left by a replica that died must not block a new run (decision 151).
  const [running] = rowsOf(
    await ctx.database.db.execute(sql`
      select 1 from pg_locks where locktype = 'advisory' and granted and classid = 0 and objid = ${LOCK_KEYS.verifyRun} and objsubid = 1
        and database = (select oid from pg_database where datname = current_database()) limit 1`),
  );
  if (running) return false;
  void runVerify(ctx, 'manual').catch((error: unknown) => ctx.log.error({ err: error }, 'verify run failed'));
  return true;
}
