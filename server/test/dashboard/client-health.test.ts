import { describe, expect, it } from 'vitest';
import { classifyClientHealth, type ClientHealth, type ClientHealthFacts } from '../../src/dashboard/client-health.ts';

const now = new Date('2026-06-01T12:00:00Z');
const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000);

// Backup every hour (late after 120 min), heartbeat every 5 min (offline after 15 min).
const base: ClientHealthFacts = {
  createdAt: minutesAgo(10_000),
  lastPingAt: minutesAgo(1),
  lastSuccessAt: minutesAgo(30),
  lastRunStatus: 'succeeded',
  backupIntervalSeconds: 3600,
  pingIntervalSeconds: 300,
};

const table: [string, Partial<ClientHealthFacts>, ClientHealth][] = [
  ['recent heartbeat and backup', {}, 'ok'],
  ['backup exactly at 2x the interval', { lastSuccessAt: minutesAgo(120) }, 'ok'],
  ['backup just past 2x the interval', { lastSuccessAt: minutesAgo(121) }, 'late'],
  ['last run partial (a pre-command or some files failed)', { lastRunStatus: 'partial' }, 'failing'],
  ['partial and late: failing explains the lateness', { lastRunStatus: 'partial', lastSuccessAt: minutesAgo(500) }, 'failing'],
  ['a success after a failure clears it', { lastRunStatus: 'succeeded', lastSuccessAt: minutesAgo(1) }, 'ok'],
  ['heartbeat exactly at 3x the ping interval', { lastPingAt: minutesAgo(15) }, 'ok'],
  ['heartbeat just past 3x the ping interval', { lastPingAt: minutesAgo(16) }, 'offline'],
  ['last run failed', { lastRunStatus: 'failed' }, 'failing'],
  ['failed and late: failing explains the lateness', { lastRunStatus: 'failed', lastSuccessAt: minutesAgo(500) }, 'failing'],
  ['offline wins over failing and late', { lastPingAt: minutesAgo(60), lastRunStatus: 'failed', lastSuccessAt: null }, 'offline'],
  ['new client, never pinged, within the grace period', { createdAt: minutesAgo(5), lastPingAt: null, lastSuccessAt: null, lastRunStatus: null }, 'never'],
  ['new client that never pinged', { createdAt: minutesAgo(20), lastPingAt: null, lastSuccessAt: null, lastRunStatus: null }, 'offline'],
  ['pinging, never backed up, within the interval', { createdAt: minutesAgo(30), lastSuccessAt: null, lastRunStatus: null }, 'never'],
  ['pinging but never backed up for 2x the interval', { createdAt: minutesAgo(200), lastSuccessAt: null, lastRunStatus: null }, 'never'],
  ['only failed runs: failing, not never', { lastSuccessAt: null, lastRunStatus: 'failed' }, 'failing'],
  ['longer interval tolerates an older backup', { backupIntervalSeconds: 86_400, lastSuccessAt: minutesAgo(47 * 60) }, 'ok'],
];

describe('classifyClientHealth', () => {
  it.each(table)('%s', (_name, facts, expected) => {
    expect(classifyClientHealth({ ...base, ...facts }, now)).toBe(expected);
  });
});
