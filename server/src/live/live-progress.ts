import { eq } from 'drizzle-orm';
import type { ProgressRequest } from '@cairn/shared';
import type { Db } from '../db/database.ts';
import { clientLiveProgress, clients } from '../db/schema.ts';

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
