import { sql } from 'drizzle-orm';
import { rowsOf, type Database, type Db, type Tx } from './database.ts';

/**
 * Advisory lock keys. Fixed numbers: every replica and every version of the
 * server must agree on them. 7_146_000 is taken by the migration lock
 * (MIGRATIONS_LOCK_KEY in database.ts, which cannot import this file).
 */
export const LOCK_KEYS = {
  /** Shared by commits that make content referenced; exclusive for GC while it deletes rows and objects. */
  contentReferences: 7_146_001,
  /** One GC run at a time across replicas (try-lock: the second run skips). */
  gcRun: 7_146_002,
  /** One retention sweep at a time across replicas. */
  retentionSweep: 7_146_003,
  /** One periodic alert-engine pass at a time across replicas. */
  alertEngine: 7_146_004,
  /** One verify run at a time across replicas. */
  verifyRun: 7_146_005,
  /** One run moving v1 objects into packs at a time across replicas. */
  v1Migration: 7_146_006,
  /** One replication pass (copies to the replica store) at a time across replicas. */
  replication: 7_146_007,
  /** One metadata export to the replica store at a time across replicas (decision 167). */
  metadataExport: 7_146_008,
} as const;

export type JobLockKey =
  | typeof LOCK_KEYS.gcRun
  | typeof LOCK_KEYS.retentionSweep
  | typeof LOCK_KEYS.alertEngine
  | typeof LOCK_KEYS.verifyRun
  | typeof LOCK_KEYS.v1Migration
  | typeof LOCK_KEYS.replication
  | typeof LOCK_KEYS.metadataExport;

export type JobLockListener = (key: JobLockKey, held: boolean) => void;

export type TryLockResult<T> = { ran: true; value: T } | { ran: false };

/**
 * Serialises "make content referenced" against "delete unreferenced content"
 * (docs/decisions.md #5), and keeps periodic jobs to one replica.
 *
 * These are PostgreSQL advisory locks, so they hold across replicas.
 */
export interface LockManager {
  /**
   * Runs `fn` in a transaction whose first statement takes the content lock
   * in shared mode: while it runs, GC cannot delete rows or objects, and the
   * rows `fn` reads are the ones GC left. Many such transactions run at once.
   */
  inReferencingTransaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Takes the content lock exclusively (waiting for running shared holders),
   * runs `deleteRows` in its own transaction and commits it, then runs
   * `afterCommit` with its result, and only then releases the lock. GC deletes
   * objects in `afterCommit`: rows first, objects after, no commit in between.
   */
  withExclusiveContentLock<T>(deleteRows: (tx: Tx) => Promise<T>, afterCommit: (result: T) => Promise<void>): Promise<T>;
  /** Runs `fn` unless another holder of `key` (in any replica) is running; then returns `{ ran: false }` at once. */
  tryExclusive<T>(key: JobLockKey, fn: () => Promise<T>): Promise<TryLockResult<T>>;
  /**
   * Calls `listener` with `held: true` right after `tryExclusive` took a job's
   * lock and with `held: false` once it let go (the replica registry shows
   * this as the jobs a replica runs). Returns the function that unsubscribes.
   */
  watchJobLocks(listener: JobLockListener): () => void;
  /** How many transactions wait for the content lock right now (lets tests observe a blocked commit without timing). */
  contentLockWaiters(): Promise<number>;
}

const managers = new WeakMap<Db, LockManager>();

/** The lock manager of a database; one per database handle. */
export function lockManagerFor(database: Database): LockManager {
  let manager = managers.get(database.db);
  if (!manager) {
    manager = postgresLocks(database.db);
    managers.set(database.db, manager);
  }
  return manager;
}

function postgresLocks(db: Db): LockManager {
  const key = LOCK_KEYS.contentReferences;
  const listeners = new Set<JobLockListener>();
  const tell = (jobKey: JobLockKey, held: boolean) => {
    for (const listener of listeners) listener(jobKey, held);
  };
  return {
    inReferencingTransaction(fn) {
      return db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock_shared(${key}::bigint)`);
        return fn(tx);
      });
    },
    async withExclusiveContentLock(deleteRows, afterCommit) {
      // The lock lives in `lockTx` and outlasts the row transaction, which runs on
      // a second connection. Both connections are taken from the pool before the
      // lock is requested, so commits queued behind the lock can never starve GC
      // of the connection it needs to finish and release it.
      return db.transaction(async (lockTx) => {
        const result = await db.transaction(async (tx) => {
          await lockTx.execute(sql`select pg_advisory_xact_lock(${key}::bigint)`);
          return deleteRows(tx);
        });
        await afterCommit(result);
        return result;
      });
    },
    async tryExclusive(jobKey, fn) {
      return db.transaction(async (lockTx) => {
        const [row] = rowsOf<{ locked: boolean }>(
          await lockTx.execute(sql`select pg_try_advisory_xact_lock(${jobKey}::bigint) as locked`),
        );
        if (!row?.locked) return { ran: false } as const;
        tell(jobKey, true);
        try {
          return { ran: true, value: await fn() } as const;
        } finally {
          tell(jobKey, false);
        }
      });
    },
    watchJobLocks(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async contentLockWaiters() {
      const [row] = rowsOf<{ waiting: number }>(
        await db.execute(sql`
          select count(*)::int as waiting from pg_locks
          where locktype = 'advisory' and not granted and classid = 0 and objid = ${key} and objsubid = 1
            and database = (select oid from pg_database where datname = current_database())`),
      );
      return row?.waiting ?? 0;
    },
  };
}
