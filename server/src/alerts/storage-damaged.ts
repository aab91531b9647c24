/**
 * storage_damaged, a server-wide alert (issue 11, decision 147): stored
 * chunks marked damaged (by a read that found them missing or not matching
 * their hash, or by the verify job) and not yet healed by a backup that
 * re-uploaded them. Critical: a restore of the files holding them fails
 * until then. Held while any mark stands; resolves when the last one heals.
 */
import { isNotNull, sql } from 'drizzle-orm';
import type { Db } from '../db/database.ts';
import { chunks } from '../db/schema.ts';
import type { AlertCondition } from './detectors.ts';

export interface DamageFacts {
  damagedChunks: number;
  /** The oldest standing mark. */
  since: Date | null;
}

export function detectStorageDamage(facts: DamageFacts): AlertCondition[] {
  if (facts.damagedChunks === 0) return [];
  const count = facts.damagedChunks.toLocaleString('en');
  return [
    {
      type: 'storage_damaged',
      key: 'storage_damaged',
      severity: 'critical',
      path: null,
      observed: `${count} damaged chunk${facts.damagedChunks === 1 ? '' : 's'}${facts.since ? ` since ${facts.since.toISOString()}` : ''}`,
      reference: 'no damaged chunk',
      message: `${count} stored chunk${facts.damagedChunks === 1 ? ' is' : 's are'} damaged or missing: restores of the files holding ${facts.damagedChunks === 1 ? 'it' : 'them'} fail until their agents back them up again (the Verify page names them)`,
    },
  ];
}

/** Uses the partial index chunks_damaged_idx: cheap however large the index. */
export async function gatherDamageFacts(db: Db): Promise<DamageFacts> {
  const [row] = await db
    .select({ count: sql<number>`count(*)::int`, since: sql<Date | string | null>`min(${chunks.damagedAt})` })
    .from(chunks)
    .where(isNotNull(chunks.damagedAt));
  const since = row?.since ?? null;
  return { damagedChunks: row?.count ?? 0, since: since === null ? null : new Date(since) };
}
