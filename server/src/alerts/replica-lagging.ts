/**
 * replica_lagging, a server-wide alert (client null, decision 165): the
 * oldest pack not yet copied to the replica store was committed longer ago
 * than REPLICA_LAG_ALERT_SECONDS. Pure, over the figures replicaStatus
 * gathers; it resolves by itself once the replica caught up (or the replica
 * is no longer configured).
 */
import { formatBytes, formatDuration } from '@cairn/shared';
import type { ReplicaStatus } from '../storage/replication-job.ts';
import type { AlertCondition } from './detectors.ts';

/** Past three times the threshold the lag is critical: the second copy is days behind, not a slow night. */
const CRITICAL_FACTOR = 3;

export function detectReplicaLagging(status: ReplicaStatus, thresholdSeconds: number): AlertCondition[] {
  if (!status.configured || status.oldestPendingAt === null || status.lagSeconds <= thresholdSeconds) return [];
  const behind = `${status.packsBehind} pack${status.packsBehind === 1 ? '' : 's'}${status.objectsBehind > 0 ? ` and ${status.objectsBehind} older object(s)` : ''} (${formatBytes(status.bytesBehind)})`;
  const lag = formatDuration(status.lagSeconds * 1000);
  return [
    {
      type: 'replica_lagging',
      key: 'replica_lagging',
      severity: status.lagSeconds > CRITICAL_FACTOR * thresholdSeconds ? 'critical' : 'warning',
      path: null,
      observed: `${behind} not yet on the replica; the oldest committed ${lag} ago`,
      reference: `warning after ${formatDuration(thresholdSeconds * 1000)}, critical after ${formatDuration(CRITICAL_FACTOR * thresholdSeconds * 1000)}`,
      message: `the replica store is ${lag} behind: ${behind} not yet copied`,
    },
  ];
}
