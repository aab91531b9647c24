/**
 * Reads the primary store cannot serve, served from the replica store, and
 * the primary repaired from it (decision 163). The replica's bytes are never
 * trusted as they are: a read checks each chunk as it would the primary's,
 * and a repair puts the replica's object back through the primary's put,
 * which hashes it against its name (a pack or v1 object is named by its
 * SHA-256) and stores nothing on a mismatch.
 */
import { sql } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { sha256OfKey } from '../blob/blob-store.ts';
import { rowsOf } from '../db/database.ts';
import { HashMismatchError } from '../errors.ts';
import type { ReadFallback } from './content-reader.ts';
import { clearHealedContents } from './pack-index.ts';

export type RepairOutcome = 'repaired' | 'replica-missing' | 'replica-damaged';

/** Repairs in progress in this process, by primary location and key: two reads of one damaged pack repair it once. */
const inFlight = new Map<string, Promise<RepairOutcome>>();

/**
 * Copies the replica's object `key` over the primary's (missing or damaged)
 * one, verified by the primary's put, and clears the damage marks of the
 * chunks stored in it (and of the contents left without a damaged chunk).
 * 'replica-missing' / 'replica-damaged' leave the primary as it was. A store
 * that fails (unreachable, full) throws.
 */
export function repairFromReplica(ctx: AppContext, key: string): Promise<RepairOutcome> {
  const id = `${ctx.blobs.location}|${key}`;
  let running = inFlight.get(id);
  if (!running) {
    running = repairOnce(ctx, key).finally(() => inFlight.delete(id));
    inFlight.set(id, running);
  }
  return running;
}

async function repairOnce(ctx: AppContext, key: string): Promise<RepairOutcome> {
  const replica = ctx.replica;
  const sha256 = sha256OfKey(key);
  if (!replica || sha256 === null) return 'replica-missing';
  const source = await replica.get(key);
  if (source === null) return 'replica-missing';
  try {
    await ctx.blobs.put(key, source, sha256);
  } catch (error) {
    if (error instanceof HashMismatchError) return 'replica-damaged';
    throw error;
  }
  const isPack = key !== sha256;
  const cleared = rowsOf<{ sha256: string }>(
    await ctx.database.db.execute(
      isPack
        ? sql`update chunks set damaged_at = null
              where damaged_at is not null and pack_id = (select id from packs where sha256 = decode(${sha256}, 'hex'))
              returning encode(sha256, 'hex') as sha256`
        : sql`update chunks set damaged_at = null
              where damaged_at is not null and pack_id is null and sha256 = decode(${sha256}, 'hex')
              returning encode(sha256, 'hex') as sha256`,
    ),
  ).map((row) => row.sha256);
  if (cleared.length > 0) await clearHealedContents(ctx.database.db, cleared);
  ctx.log.warn({ key, marksCleared: cleared.length }, `repaired ${key} in the primary store from the replica's verified copy`);
  return 'repaired';
}

/**
 * The read fall-back of `ctx` (undefined without a replica): a read that
 * the replica served repairs the primary before it goes on. A repair that
 * fails is logged and does not fail the read, which was served.
 */
export function readFallbackFor(ctx: AppContext): ReadFallback | undefined {
  const replica = ctx.replica;
  if (!replica) return undefined;
  return {
    store: replica,
    async served(key, damage) {
      ctx.log.warn({ key, chunks: damage.chunkHashes.length, detail: damage.detail }, `served ${key} from the replica store: the primary's copy is missing or damaged`);
      try {
        const outcome = await repairFromReplica(ctx, key);
        if (outcome !== 'repaired') ctx.log.error({ key, outcome }, `could not repair ${key} from the replica`);
      } catch (error) {
        ctx.log.error({ err: error, key }, `could not repair ${key} from the replica`);
      }
    },
  };
}
