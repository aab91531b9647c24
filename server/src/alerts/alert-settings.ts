/**
 * Alert settings in three layers: the built-in DEFAULT_ALERT_SETTINGS, the
 * server-wide overrides an admin stores (`alert_defaults`, /settings/alerts)
 * and a client's own overrides (`clients.alert_settings`). Each layer stores
 * only what differs from the one below, merged when the engine runs, so a
 * change of a default reaches every client that did not set that value
 * itself. The dashboard form and its validation, shared by both pages, live
 * here too, pure and table-tested (test/unit/alert-settings.test.ts).
 */
import { eq } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import type { Db } from '../db/database.ts';
import { alertDefaults, clients } from '../db/schema.ts';
import { recordAudit } from '../services/audit-log.service.ts';
import type { Actor } from '../services/users.service.ts';
import { DEFAULT_ALERT_SETTINGS, type AlertSettings, type WatchedFolder } from './detectors.ts';

export type AlertSettingsOverride = { [K in keyof AlertSettings]?: Partial<AlertSettings[K]> };

export function mergeAlertSettings(defaults: AlertSettings, override: AlertSettingsOverride | null | undefined): AlertSettings {
  const merged = { ...defaults } as Record<keyof AlertSettings, unknown>;
  for (const key of Object.keys(defaults) as (keyof AlertSettings)[]) {
    merged[key] = { ...defaults[key], ...(override?.[key] ?? {}) };
  }
  return merged as AlertSettings;
}

/** The detectors the form offers to switch off, with their names for people. */
export const DETECTOR_LABELS: Record<keyof AlertSettings, string> = {
  missedBackup: 'Missed backup',
  failing: 'Failing runs, pre-commands, silent agent',
  unusualSize: 'Unusual size',
  unusualTiming: 'Unusual timing',
  extraBackup: 'Unexpected extra backups',
  massChange: 'Mass change (holds pruning)',
  incompressible: 'Content stops compressing (holds pruning)',
  expectedFile: 'Expected file missing',
  fileShrank: 'File shrank',
};

/** One numeric threshold of the form: where it lives in AlertSettings and what it may be. */
export interface ThresholdField {
  name: string;
  detector: keyof AlertSettings;
  setting: string;
  label: string;
  min: number;
  max: number;
  integer: boolean;
}

export const THRESHOLD_FIELDS: readonly ThresholdField[] = [
  { name: 'missedBackup.tolerance', detector: 'missedBackup', setting: 'tolerance', label: 'Missed after (backup intervals)', min: 1, max: 1000, integer: false },
  { name: 'failing.offlinePings', detector: 'failing', setting: 'offlinePings', label: 'Silent after (ping intervals)', min: 1, max: 1000, integer: false },
  { name: 'unusualSize.score', detector: 'unusualSize', setting: 'score', label: 'Unusual size beyond (robust deviations)', min: 1, max: 1000, integer: false },
  { name: 'unusualSize.minHistory', detector: 'unusualSize', setting: 'minHistory', label: 'Size: earlier runs needed', min: 2, max: 200, integer: true },
  { name: 'unusualTiming.durationFactor', detector: 'unusualTiming', setting: 'durationFactor', label: 'Slow beyond (x usual duration)', min: 1.5, max: 1000, integer: false },
  { name: 'extraBackup.factor', detector: 'extraBackup', setting: 'factor', label: 'Extra backups beyond (x expected)', min: 1.5, max: 1000, integer: false },
  { name: 'massChange.minFiles', detector: 'massChange', setting: 'minFiles', label: 'Mass change: at least (files)', min: 1, max: 100_000_000, integer: true },
  { name: 'massChange.score', detector: 'massChange', setting: 'score', label: 'Mass change beyond (robust deviations)', min: 1, max: 1000, integer: false },
  { name: 'incompressible.minRatio', detector: 'incompressible', setting: 'minRatio', label: 'Stops compressing at (deflated share of size)', min: 0.1, max: 2, integer: false },
  { name: 'incompressible.minIncrease', detector: 'incompressible', setting: 'minIncrease', label: 'Stops compressing: above the usual share by', min: 0.01, max: 2, integer: false },
  { name: 'incompressible.minSampleBytes', detector: 'incompressible', setting: 'minSampleBytes', label: 'Stops compressing: judged from (bytes sampled in the run)', min: 65_536, max: Number.MAX_SAFE_INTEGER, integer: true },
  { name: 'incompressible.minHistory', detector: 'incompressible', setting: 'minHistory', label: 'Stops compressing: earlier runs needed', min: 2, max: 200, integer: true },
  { name: 'fileShrank.maxRatio', detector: 'fileShrank', setting: 'maxRatio', label: 'File shrank below (share of the previous size)', min: 0.01, max: 0.99, integer: false },
  { name: 'fileShrank.minBytes', detector: 'fileShrank', setting: 'minBytes', label: 'File shrank by at least (bytes)', min: 0, max: Number.MAX_SAFE_INTEGER, integer: true },
];

/** The form field of the watched folders: one folder a line, its path then its max age in hours. */
export const WATCHED_FOLDERS_FIELD = 'expectedFile.folders';
const MAX_WATCHED_FOLDERS = 50;
const MAX_AGE_HOURS = 24 * 366;

export function formatWatchedFolders(folders: readonly WatchedFolder[]): string {
  return folders.map((f) => `${f.path} ${f.maxAgeHours}`).join('\n');
}

/** Parses the watched-folders text; the error says which line is wrong and why. */
export function parseWatchedFolders(text: string): { ok: true; folders: WatchedFolder[] } | { ok: false; error: string } {
  const folders: WatchedFolder[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const where = `line ${index + 1}`;
    // The hours come last, so a path may hold spaces.
    const match = /^(.*\S)\s+(\S+)$/.exec(line);
    if (!match) return { ok: false, error: `${where}: a folder path and its max age in hours, e.g. "/dumps 26"` };
    let path = match[1]!;
    const hours = Number(match[2]);
    if (!path.startsWith('/')) return { ok: false, error: `${where}: the path must be absolute (start with /)` };
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(path) || path.length > 4096) return { ok: false, error: `${where}: the path has control characters or is too long` };
    if (!Number.isFinite(hours) || hours < 1 || hours > MAX_AGE_HOURS) return { ok: false, error: `${where}: the max age must be a number of hours from 1 to ${MAX_AGE_HOURS}` };
    if (path.length > 1) path = path.replace(/\/+$/, '') || '/';
    if (folders.some((f) => f.path === path)) return { ok: false, error: `${where}: ${path} is listed twice` };
    folders.push({ path, maxAgeHours: hours });
  }
  if (folders.length > MAX_WATCHED_FOLDERS) return { ok: false, error: `at most ${MAX_WATCHED_FOLDERS} folders` };
  return { ok: true, folders };
}

/** The form's values as text: `<detector>.enabled` is 'on' or '', thresholds are numbers as typed. */
export type AlertSettingsInput = Record<string, string>;

export function alertSettingsFormValues(settings: AlertSettings): AlertSettingsInput {
  const values: AlertSettingsInput = {};
  for (const detector of Object.keys(DETECTOR_LABELS) as (keyof AlertSettings)[]) values[`${detector}.enabled`] = settings[detector].enabled ? 'on' : '';
  for (const f of THRESHOLD_FIELDS) values[f.name] = String((settings[f.detector] as unknown as Record<string, number>)[f.setting]);
  values[WATCHED_FOLDERS_FIELD] = formatWatchedFolders(settings.expectedFile.folders);
  return values;
}

/** Every field name of the form, for reading a submitted body. */
export const ALERT_SETTINGS_FIELD_NAMES: readonly string[] = [
  ...Object.keys(DETECTOR_LABELS).map((d) => `${d}.enabled`),
  ...THRESHOLD_FIELDS.map((f) => f.name),
  WATCHED_FOLDERS_FIELD,
];

/** The form's input from a submitted body, read with the dashboard's `field` (missing fields are ''). */
export function alertSettingsInputFrom(read: (name: string) => string): AlertSettingsInput {
  return Object.fromEntries(ALERT_SETTINGS_FIELD_NAMES.map((name) => [name, read(name)]));
}

export type AlertSettingsParse = { ok: true; override: AlertSettingsOverride | null } | { ok: false; errors: Record<string, string> };

/**
 * Validates the submitted form and returns the override to store: only the
 * values that differ from `defaults` (null when none does). Every bad field
 * is named in `errors`.
 */
export function parseAlertSettingsForm(input: AlertSettingsInput, defaults: AlertSettings): AlertSettingsParse {
  const errors: Record<string, string> = {};
  const override: Record<string, Record<string, number | boolean | WatchedFolder[]>> = {};
  const set = (detector: string, setting: string, value: number | boolean | WatchedFolder[]) => {
    (override[detector] ??= {})[setting] = value;
  };
  for (const detector of Object.keys(DETECTOR_LABELS) as (keyof AlertSettings)[]) {
    const enabled = input[`${detector}.enabled`] === 'on';
    if (enabled !== defaults[detector].enabled) set(detector, 'enabled', enabled);
  }
  for (const f of THRESHOLD_FIELDS) {
    const text = (input[f.name] ?? '').trim();
    const value = Number(text);
    if (text === '' || !Number.isFinite(value) || (f.integer && !Number.isInteger(value)) || value < f.min || value > f.max) {
      errors[f.name] = `${f.integer ? 'a whole number' : 'a number'} from ${f.min} to ${f.max}`;
      continue;
    }
    if (value !== (defaults[f.detector] as unknown as Record<string, number>)[f.setting]) set(f.detector, f.setting, value);
  }
  const watched = parseWatchedFolders(input[WATCHED_FOLDERS_FIELD] ?? '');
  if (!watched.ok) errors[WATCHED_FOLDERS_FIELD] = watched.error;
  else if (formatWatchedFolders(watched.folders) !== formatWatchedFolders(defaults.expectedFile.folders)) set('expectedFile', 'folders', watched.folders);
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  return { ok: true, override: Object.keys(override).length > 0 ? (override as AlertSettingsOverride) : null };
}

/** Stores a client's override (null: back to the defaults), with an audit entry naming before and after. */
export async function saveClientAlertSettings(ctx: AppContext, clientId: string, override: AlertSettingsOverride | null, actor: Actor): Promise<void> {
  await ctx.database.db.transaction(async (tx) => {
    const [before] = await tx.select({ alertSettings: clients.alertSettings }).from(clients).where(eq(clients.id, clientId));
    await tx.update(clients).set({ alertSettings: override }).where(eq(clients.id, clientId));
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'client.alerts.update',
      targetType: 'client',
      targetId: clientId,
      details: { before: before?.alertSettings ?? null, after: override },
    });
  });
}

const ALERT_DEFAULTS_ROW = 1;

/** The stored server-wide override (null: none, the built-in defaults apply). */
export async function loadAlertDefaultsOverride(db: Db): Promise<AlertSettingsOverride | null> {
  const [row] = await db.select({ settings: alertDefaults.settings }).from(alertDefaults).where(eq(alertDefaults.id, ALERT_DEFAULTS_ROW));
  return row?.settings ?? null;
}

/** The defaults every client starts from: the built-in ones with the stored server-wide overrides. */
export async function loadAlertDefaults(db: Db): Promise<AlertSettings> {
  return mergeAlertSettings(DEFAULT_ALERT_SETTINGS, await loadAlertDefaultsOverride(db));
}

/** Stores the server-wide override (null: back to the built-in defaults), audited as `alerts.defaults.update`. */
export async function saveAlertDefaults(ctx: AppContext, override: AlertSettingsOverride | null, actor: Actor): Promise<void> {
  await ctx.database.db.transaction(async (tx) => {
    const [before] = await tx.select({ settings: alertDefaults.settings }).from(alertDefaults).where(eq(alertDefaults.id, ALERT_DEFAULTS_ROW)).for('update');
    if (override === null) await tx.delete(alertDefaults).where(eq(alertDefaults.id, ALERT_DEFAULTS_ROW));
    else {
      await tx
        .insert(alertDefaults)
        .values({ id: ALERT_DEFAULTS_ROW, settings: override })
        .onConflictDoUpdate({ target: alertDefaults.id, set: { settings: override, updatedAt: new Date() } });
    }
    await recordAudit(tx, {
      actorUserId: actor.userId,
      actorName: actor.name,
      action: 'alerts.defaults.update',
      targetType: 'server',
      targetId: null,
      details: { before: before?.settings ?? null, after: override },
    });
  });
}
