import type { LocalConfigReport, PreCommand } from '@cairn/shared';

/**
 * The client page's "What the agent backs up" card, pure (decision 157): the
 * central configuration beside what the agent reported of its own, each item
 * marked with where it comes from, in the order and with the effect the
 * agent gives them (docs/agent.md, "One backup cycle"): paths and excludes
 * are the union of both; central pre-commands run first, then the local
 * ones; a central command the agent does not allow is refused there; a
 * local BACKUP_INTERVAL overrides the central schedule.
 */
export type ConfigSource = 'central' | 'local';

export interface SourcedItem {
  value: string;
  sources: ConfigSource[];
}

export interface SourcedPreCommand extends PreCommand {
  source: ConfigSource;
  /** Why the agent will not run this central command (ALLOW_REMOTE_COMMANDS, REMOTE_COMMAND_ALLOWLIST); null when it will. */
  refusedBecause: string | null;
}

export interface EffectiveConfig {
  reported: boolean;
  reportedAt: Date | null;
  monitoredPaths: SourcedItem[];
  excludes: SourcedItem[];
  preCommands: SourcedPreCommand[];
  /** The agent's own BACKUP_INTERVAL, which wins over the central schedule; null when it has none (or did not report). */
  localBackupIntervalSeconds: number | null;
  remoteCommands: 'allowed' | 'refused' | 'allow-listed' | 'unknown';
  allowlistSize: number;
  truncated: boolean;
}

function union(local: readonly string[], central: readonly string[]): SourcedItem[] {
  const items = new Map<string, SourcedItem>();
  const add = (value: string, source: ConfigSource) => {
    const item = items.get(value) ?? { value, sources: [] };
    if (!item.sources.includes(source)) item.sources.push(source);
    items.set(value, item);
  };
  for (const value of central) add(value, 'central');
  for (const value of local) add(value, 'local');
  return [...items.values()];
}

export function effectiveConfig(
  central: { monitoredPaths: string[]; excludes: string[]; preCommands: PreCommand[] },
  local: LocalConfigReport | null,
  reportedAt: Date | null,
): EffectiveConfig {
  const allowlist = local?.remoteCommandAllowlist ?? null;
  const refusal = (command: string): string | null => {
    if (local === null) return null;
    if (!local.allowRemoteCommands) return 'the agent does not run commands from the server (ALLOW_REMOTE_COMMANDS=false)';
    if (allowlist !== null && !allowlist.includes(command)) return 'not on the agent\u2019s REMOTE_COMMAND_ALLOWLIST';
    return null;
  };
  return {
    reported: local !== null,
    reportedAt,
    monitoredPaths: union(local?.monitoredPaths ?? [], central.monitoredPaths),
    excludes: union(local?.excludes ?? [], central.excludes),
    preCommands: [
      ...central.preCommands.map((pre) => ({ ...pre, source: 'central' as const, refusedBecause: refusal(pre.command) })),
      ...(local?.preCommands ?? []).map((pre) => ({ ...pre, source: 'local' as const, refusedBecause: null })),
    ],
    localBackupIntervalSeconds: local?.backupIntervalSeconds ?? null,
    remoteCommands: local === null ? 'unknown' : !local.allowRemoteCommands ? 'refused' : allowlist !== null ? 'allow-listed' : 'allowed',
    allowlistSize: allowlist?.length ?? 0,
    truncated: local?.truncated === true,
  };
}
