import { auditLog } from '../db/schema.ts';
import type { Db, Tx } from '../db/database.ts';

export interface AuditEntry {
  /** The person who acted; null for the system itself (first start, jobs) or an agent. */
  actorUserId: string | null;
  /** A readable name of the actor, kept even when the user is deleted: a username, `system` or `agent:<client name>`. */
  actorName: string;
  /** What happened, dotted verb: `user.create`, `client.token.rotate`, `client.register`. */
  action: string;
  targetType: 'user' | 'client' | 'server' | 'enrollment_key';
  targetId: string | null;
  /** Facts worth keeping (never secrets: no passwords, no tokens). */
  details?: Record<string, unknown>;
}

/** Appends one audit entry; pass the transaction that made the change so both commit together. */
export async function recordAudit(db: Db | Tx, entry: AuditEntry): Promise<void> {
  await db.insert(auditLog).values({ ...entry, details: entry.details ?? {} });
}
