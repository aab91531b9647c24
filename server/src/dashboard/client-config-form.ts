/**
 * The client page's configuration form: text fields in, a validated central
 * configuration (or per-field errors) out. Pure, table-tested.
 *
 * Pre-commands: one command per line. A line may start with a timeout in
 * square brackets, `[90s]`, `[10m]`, `[2h]` or `[300]` (seconds), followed by
 * the shell command; without one the command gets DEFAULT_PRE_COMMAND_TIMEOUT.
 * Blank lines and lines starting with `#` are ignored. A leading `[` followed
 * by anything else than a duration is kept as part of the command, so shell
 * tests like `[ -d /srv ] && ...` still work.
 */
import { cronProblem, DEFAULT_TIME_ZONE, formatInterval, isKnownTimeZone, LIMITS, nextRunAt, normaliseBackupPath, windowMinutes, type BackupWindow, type PreCommand } from '@cairn/shared';

export const DEFAULT_PRE_COMMAND_TIMEOUT_SECONDS = 300;
export const MAX_PRE_COMMANDS = 50;
export const MAX_PATHS = 500;
const MAX_COMMAND_LENGTH = 4096;
const MAX_TIMEOUT_SECONDS = 86_400;

const TIMEOUT_PREFIX = /^\[(\d{1,6})([smh]?)\]\s*(.*)$/;
const UNIT_SECONDS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600 };

export type FieldErrors = Partial<Record<string, string>>;

export function parseDuration(text: string): number | null {
  const match = /^(\d{1,7})\s*([smhd]?)$/.exec(text.trim());
  if (!match) return null;
  const unit = ({ '': 1, s: 1, m: 60, h: 3600, d: 86_400 } as Record<string, number>)[match[2] ?? ''] ?? 1;
  return Number(match[1]) * unit;
}

/** The interval field's text (`6h`); the one spelling is shared/src/schedule.ts's. */
export const formatDurationField = formatInterval;

/** Parses the multi-line pre-commands field; errors name the line. */
export function parsePreCommands(text: string): { commands: PreCommand[]; errors: string[] } {
  const commands: PreCommand[] = [];
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const lineNo = index + 1;
    let command = line;
    let timeoutSeconds = DEFAULT_PRE_COMMAND_TIMEOUT_SECONDS;
    const prefixed = TIMEOUT_PREFIX.exec(line);
    if (prefixed) {
      timeoutSeconds = Number(prefixed[1]) * (UNIT_SECONDS[prefixed[2] ?? ''] ?? 1);
      command = (prefixed[3] ?? '').trim();
      if (timeoutSeconds < 1 || timeoutSeconds > MAX_TIMEOUT_SECONDS) {
        errors.push(`line ${lineNo}: timeout must be between 1 second and 24 hours`);
        return;
      }
      if (command === '') {
        errors.push(`line ${lineNo}: a timeout needs a command after it`);
        return;
      }
    }
    if (command.length > MAX_COMMAND_LENGTH) {
      errors.push(`line ${lineNo}: longer than ${MAX_COMMAND_LENGTH} characters`);
      return;
    }
    commands.push({ command, timeoutSeconds });
  });
  if (commands.length > MAX_PRE_COMMANDS) errors.push(`at most ${MAX_PRE_COMMANDS} commands`);
  return { commands, errors };
}

/** The inverse of parsePreCommands, for filling the form. */
export function formatPreCommands(commands: PreCommand[]): string {
  return commands.map((c) => (c.timeoutSeconds === DEFAULT_PRE_COMMAND_TIMEOUT_SECONDS ? c.command : `[${formatTimeout(c.timeoutSeconds)}] ${c.command}`)).join('\n');
}

function formatTimeout(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

export interface ClientConfigInput {
  monitoredPaths?: string;
  excludes?: string;
  preCommands?: string;
  backupInterval?: string;
  /** `interval` (default) or `cron`. */
  scheduleKind?: string;
  cron?: string;
  timeZone?: string;
  windowStart?: string;
  windowEnd?: string;
  retentionOverride?: string;
  retentionVersions?: string;
  retentionDays?: string;
}

/** The stored configuration as the form's fields (to fill the form, or as the base an API update changes). */
export function configFormValues(client: {
  monitoredPaths: string[];
  excludes: string[];
  preCommands: PreCommand[];
  backupIntervalSeconds: number;
  scheduleCron: string | null;
  scheduleTimeZone: string;
  backupWindowStart: string | null;
  backupWindowEnd: string | null;
  retentionVersions: number | null;
  retentionDays: number | null;
}): ClientConfigInput {
  return {
    monitoredPaths: client.monitoredPaths.join('\n'),
    excludes: client.excludes.join('\n'),
    preCommands: formatPreCommands(client.preCommands),
    backupInterval: formatDurationField(client.backupIntervalSeconds),
    scheduleKind: client.scheduleCron === null ? 'interval' : 'cron',
    cron: client.scheduleCron ?? '',
    timeZone: client.scheduleTimeZone,
    windowStart: client.backupWindowStart ?? '',
    windowEnd: client.backupWindowEnd ?? '',
    retentionOverride: client.retentionVersions === null ? '' : 'on',
    retentionVersions: client.retentionVersions === null ? '' : String(client.retentionVersions),
    retentionDays: client.retentionDays === null ? '' : String(client.retentionDays),
  };
}

export interface ClientConfigValues {
  monitoredPaths: string[];
  excludes: string[];
  preCommands: PreCommand[];
  backupIntervalSeconds: number;
  schedule: { cron: string | null; timeZone: string; window: BackupWindow | null };
  retentionVersions: number | null;
  retentionDays: number | null;
}

function lines(text: string | undefined): string[] {
  return (text ?? '')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

function optionalInteger(text: string | undefined, min: number, max: number): number | null | 'invalid' {
  const trimmed = (text ?? '').trim();
  if (trimmed === '') return null;
  if (!/^\d{1,9}$/.test(trimmed)) return 'invalid';
  const value = Number(trimmed);
  return value < min || value > max ? 'invalid' : value;
}

/**
 * The schedule part of the form: cron (when chosen), zone and window, each
 * problem under its own field (`cron`, `timeZone`, `backupWindow`).
 */
function validateScheduleFields(input: ClientConfigInput, intervalSeconds: number, errors: FieldErrors): ClientConfigValues['schedule'] {
  const kind = input.scheduleKind?.trim() || 'interval';
  const cronText = (input.cron ?? '').trim().replace(/\s+/g, ' ');
  let cron: string | null = null;
  if (kind === 'cron') {
    if (cronText === '') errors.cron = 'enter a cron expression, e.g. 0 3 * * * for 03:00 every day';
    else {
      const problem = cronProblem(cronText);
      if (problem === null) cron = cronText;
      else errors.cron = problem;
    }
  } else if (kind !== 'interval') errors.scheduleKind = 'choose an interval or a cron expression';
  const timeZone = (input.timeZone ?? '').trim() || DEFAULT_TIME_ZONE;
  if (!isKnownTimeZone(timeZone)) errors.timeZone = `unknown time zone "${timeZone.slice(0, 80)}": use an IANA name such as Europe/Berlin`;
  const start = (input.windowStart ?? '').trim();
  const end = (input.windowEnd ?? '').trim();
  let window: BackupWindow | null = null;
  if (start !== '' || end !== '') {
    if (windowMinutes(start) === null || windowMinutes(end) === null) errors.backupWindow = 'give both start and end as HH:MM, e.g. 22:00 and 06:00';
    else if (start === end) errors.backupWindow = 'start and end must differ (leave both empty for any time)';
    else window = { start, end };
  }
  if (errors.cron === undefined && errors.timeZone === undefined && errors.backupWindow === undefined && window !== null) {
    if (nextRunAt({ intervalSeconds, cron, timeZone, window }, null, new Date()) === null) errors.backupWindow = 'no time of the cron expression falls inside this window';
  }
  return { cron, timeZone, window };
}

export function validateClientConfig(
  input: ClientConfigInput,
): { ok: true; values: ClientConfigValues } | { ok: false; errors: FieldErrors } {
  const errors: FieldErrors = {};

  const monitoredPaths: string[] = [];
  for (const raw of lines(input.monitoredPaths)) {
    const normalised = normaliseBackupPath(raw, LIMITS.pathBytes);
    if (normalised === null) {
      errors.monitoredPaths = `"${raw.slice(0, 80)}" is not an absolute path`;
      break;
    }
    if (!monitoredPaths.includes(normalised)) monitoredPaths.push(normalised);
  }
  if (monitoredPaths.length > MAX_PATHS) errors.monitoredPaths = `at most ${MAX_PATHS} paths`;

  const excludes = lines(input.excludes);
  if (excludes.length > MAX_PATHS) errors.excludes = `at most ${MAX_PATHS} patterns`;
  const longExclude = excludes.find((pattern) => pattern.length > 1024);
  if (longExclude) errors.excludes = 'a pattern is longer than 1024 characters';

  const parsed = parsePreCommands(input.preCommands ?? '');
  if (parsed.errors.length > 0) errors.preCommands = parsed.errors.join('; ');

  const interval = parseDuration(input.backupInterval ?? '');
  if (interval === null) errors.backupInterval = 'use a number of seconds or a duration such as 30m, 6h, 1d';
  else if (interval < 60 || interval > 30 * 86_400) errors.backupInterval = 'must be between 1 minute and 30 days';

  const schedule = validateScheduleFields(input, interval ?? 3600, errors);

  const { retentionVersions, retentionDays } = parseRetentionOverride(input, errors);

  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return {
    ok: true,
    values: {
      monitoredPaths,
      excludes,
      preCommands: parsed.commands,
      backupIntervalSeconds: interval ?? 3600,
      schedule,
      retentionVersions,
      retentionDays,
    },
  };
}

/**
 * The client's base-policy override (versions, days) from its form fields:
 * both null without `retentionOverride`; adds messages to `errors`.
 */
export function parseRetentionOverride(
  input: Pick<ClientConfigInput, 'retentionOverride' | 'retentionVersions' | 'retentionDays'>,
  errors: FieldErrors,
): { retentionVersions: number | null; retentionDays: number | null } {
  let retentionVersions: number | null = null;
  let retentionDays: number | null = null;
  if (input.retentionOverride === 'on') {
    const versions = optionalInteger(input.retentionVersions, 1, 100_000);
    if (versions === null || versions === 'invalid') errors.retentionVersions = 'a whole number from 1 to 100000';
    else retentionVersions = versions;
    const days = optionalInteger(input.retentionDays, 1, 36_500);
    if (days === 'invalid') errors.retentionDays = 'empty (no age limit) or a whole number of days from 1 to 36500';
    else retentionDays = days;
  }
  return { retentionVersions, retentionDays };
}
