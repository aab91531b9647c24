/**
 * Per-client alert settings: a client stores only what it overrides
 * (`clients.alert_settings`), merged over the global defaults when the
 * engine runs, so a change of a default reaches every client that did not
 * set that value itself. The dashboard form and its validation live here
 * too, pure and table-tested (test/unit/alert-settings.test.ts).
 */
import { eq } from 'drizzle-orm';
import type { AppContext } from '../app-context.ts';
import { clients } from '../db/schema.ts';
import { recordAudit } from '../services/audit-log.service.ts';
import type { Actor } from '../services/users.service.ts';
import type { AlertSettings } from './detectors.ts';

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
];

/** The form's values as text: `<detector>.enabled` is 'on' or '', thresholds are numbers as typed. */
export type AlertSettingsInput = Record<string, string>;

export function alertSettingsFormValues(settings: AlertSettings): AlertSettingsInput {
  const values: AlertSettingsInput = {};
  for (const detector of Object.keys(DETECTOR_LABELS) as (keyof AlertSettings)[]) values[`${detector}.enabled`] = settings[detector].enabled ? 'on' : '';
  for (const f of THRESHOLD_FIELDS) values[f.name] = String((settings[f.detector] as unknown as Record<string, number>)[f.setting]);
  return values;
}

export type AlertSettingsParse = { ok: true; override: AlertSettingsOverride | null } | { ok: false; errors: Record<string, string> };

/**
 * Validates the submitted form and returns the override to store: only the
 * values that differ from `defaults` (null when none does). Every bad field
 * is named in `errors`.
 */
export function parseAlertSettingsForm(input: AlertSettingsInput, defaults: AlertSettings): AlertSettingsParse {
  const errors: Record<string, string> = {};
  const override: Record<string, Record<string, number | boolean>> = {};
  const set = (detector: string, setting: string, value: number | boolean) => {
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
