import { and, eq, sql } from 'drizzle-orm';
import type { ProgressRequest } from '@cairn/shared';
import type { Db } from '../db/database.ts';
import { backupRuns, clientLiveProgress, clients } from '../db/schema.ts';
import { ConflictError, NotFoundError } from '../errors.ts';

/** A report older than this is an agent that went away mid-run: shown as nothing rather than frozen numbers. */
export const LIVE_PROGRESS_STALE_MS = 60_000;

export interface LiveProgressView {
  /**
   * A fresh progress report exists. Not the heartbeat's agent state: that
   * says "running" until the next heartbeat, maybe an hour after the run ended.
   */
  running: boolean;
  progress: ProgressRequest | null;
  /** When the server got the report (server clock). */
  updatedAt: string | null;
}

/** What the client page's live panel shows. */
export async function liveProgressOf(db: Db, clientId: string, now = new Date()): Promise<LiveProgressView> {
  const [row] = await db
    .select({ progress: clientLiveProgress.progress, updatedAt: clientLiveProgress.updatedAt })
    .from(clients)
    .leftJoin(clientLiveProgress, eq(clientLiveProgress.clientId, clients.id))
    .where(eq(clients.id, clientId));
  if (!row) return { running: false, progress: null, updatedAt: null };
  const fresh = row.updatedAt !== null && now.getTime() - row.updatedAt.getTime() < LIVE_PROGRESS_STALE_MS;
  return {
    running: fresh,
    progress: fresh ? (row.progress as unknown as ProgressRequest) : null,
    updatedAt: fresh && row.updatedAt ? row.updatedAt.toISOString() : null,
  };
}

/**
 * Stores a running backup's progress report. The agent sends one a second
 * without waiting for its run, so one may still be on its way when the run
 * finishes, and the finish has already deleted the row: storing it then would
 * show the finished run as running for a minute. So a report that names a run
 * is stored only while that run of this client is running (409 once it is
 * finished, 404 for a run that is not this client's). The run's row is read
 * FOR SHARE: a finish that commits first is seen, and one that comes after
 * waits for this report and then deletes it (decision 201). A report from
 * before the run was opened (runId null) is stored as it is.
 */
export async function recordLiveProgress(db: Db, clientId: string, progress: ProgressRequest): Promise<void> {
  await db.transaction(async (tx) => {
    const runId = progress.runId;
    if (runId !== null) {
      const [run] = await tx
        .select({ status: backupRuns.status })
        .from(backupRuns)
        .where(and(eq(backupRuns.id, runId), eq(backupRuns.clientId, clientId)))
        .for('share');
      if (!run) throw new NotFoundError(`run ${runId} not found`);
      if (run.status !== 'running') throw new ConflictError(`run ${runId} is already finished`);
    }
    await tx
      .insert(clientLiveProgress)
      .values({ clientId, runId, progress })
      .onConflictDoUpdate({ target: clientLiveProgress.clientId, set: { runId, progress, updatedAt: sql`now()` } });
  });
}
