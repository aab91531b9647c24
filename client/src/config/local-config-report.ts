import { isStorableText, LIMITS, type LocalConfigReport } from '@cairn/shared';
import type { AgentConfig } from './agent-config.ts';

const PATTERN_CHARS = 4096;

/**
 * What the agent tells the server of its own configuration (decision 157),
 * built field by field from the settings it backs up with, never by copying
 * the config object: nothing that is not named here can reach the server, so
 * no password, token or enrollment key ever does. An item the protocol's
 * schema would refuse (too long, text PostgreSQL cannot hold) or one past
 * LIMITS.localConfigItems is left out and `truncated` set, so the report can
 * never make the heartbeat it rides on fail.
 */
export function localConfigReport(
  config: Pick<AgentConfig, 'excludes' | 'preCommands' | 'preCommandTimeoutSeconds' | 'allowRemoteCommands' | 'remoteCommandAllowlist' | 'backupIntervalSeconds'>,
  monitoredPaths: readonly string[],
): LocalConfigReport {
  let truncated = false;
  const fit = (items: readonly string[], maxChars: number): string[] => {
    const kept = items.filter((item) => item !== '' && item.length <= maxChars && isStorableText(item)).slice(0, LIMITS.localConfigItems);
    if (kept.length !== items.length) truncated = true;
    return kept;
  };
  const report: LocalConfigReport = {
    monitoredPaths: fit(monitoredPaths, LIMITS.pathBytes),
    excludes: fit(config.excludes, PATTERN_CHARS),
    preCommands: fit(config.preCommands, PATTERN_CHARS).map((command) => ({ command, timeoutSeconds: config.preCommandTimeoutSeconds })),
    allowRemoteCommands: config.allowRemoteCommands,
    remoteCommandAllowlist: config.remoteCommandAllowlist === undefined ? null : fit(config.remoteCommandAllowlist, PATTERN_CHARS),
    backupIntervalSeconds: config.backupIntervalSeconds ?? null,
  };
  return truncated ? { ...report, truncated } : report;
}
