import { describeSchedule, nextRunAt } from '@cairn/shared';
import { expectedBackupGaps, scheduleOf, type ScheduleColumns } from '../services/clients.service.ts';
/**
 * A client's health at a glance, from facts the database already holds.
 * Pure: the caller passes `now`, so the rules are table-tested.
 *
 * - offline: no heartbeat within 3x its ping interval (counted from creation
 *   when it never pinged);
 * - failing: its last finished run failed or ended partial (a pre-command
 *   failed, or some files could not be backed up), until a run succeeds;
 * - never: it has never finished a backup (and no run failed);
 * - late: no successful (or partial) backup within 2x its backup interval;
 * - ok: none of the above.
 * When several apply, the first in that order wins: an offline agent cannot
 * fix a failing run, and a failing run explains why a backup is late.
 */
export type ClientHealth = 'ok' | 'late' | 'offline' | 'failing' | 'never';

export interface ClientHealthFacts {
  createdAt: Date;
  lastPingAt: Date | null;
  /** Finish time of the newest succeeded or partial run. */
  lastSuccessAt: Date | null;
  /** Status of the newest finished run, if any. */
  lastRunStatus: 'succeeded' | 'partial' | 'failed' | null;
  backupIntervalSeconds: number;
  /** The longest gap the schedule leaves between runs (expectedBackupGaps); default backupIntervalSeconds. */
  backupGapSeconds?: number;
  pingIntervalSeconds: number;
}

export const HEALTH_LABELS: Record<ClientHealth, string> = {
  ok: 'On time',
  late: 'Late',
  offline: 'Offline',
  failing: 'Failing',
  never: 'Never backed up',
};

/** Every state, in the order the overview and the filters show them. */
export const HEALTH_STATES: readonly ClientHealth[] = ['ok', 'late', 'never', 'offline', 'failing'];

export function classifyClientHealth(facts: ClientHealthFacts, now: Date): ClientHealth {
  const sinceMs = (time: Date | null) => now.getTime() - (time ?? facts.createdAt).getTime();
  if (sinceMs(facts.lastPingAt) > 3 * facts.pingIntervalSeconds * 1000) return 'offline';
  if (facts.lastRunStatus === 'failed' || facts.lastRunStatus === 'partial') return 'failing';
  if (facts.lastSuccessAt === null) return 'never';
  if (sinceMs(facts.lastSuccessAt) > 2 * (facts.backupGapSeconds ?? facts.backupIntervalSeconds) * 1000) return 'late';
  return 'ok';
}

/**
 * What the schedule means for a client on the dashboard: when the agent
 * will start its next run (the same computation the agent makes, from the
 * newest run's start; null = never, the cron has no time in its window),
 * the longest gap "late" is measured against, and a short description.
 */
export function scheduleFacts(client: ScheduleColumns & { lastStartedAt: Date | null }, now: Date): { nextRunAt: Date | null; backupGapSeconds: number; scheduleLabel: string } {
  const schedule = scheduleOf(client);
  return { nextRunAt: nextRunAt(schedule, client.lastStartedAt, now), backupGapSeconds: expectedBackupGaps(client, now).longestSeconds, scheduleLabel: describeSchedule(schedule) };
}
