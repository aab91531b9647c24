import { describe, expect, it } from 'vitest';
import { alertSettingsFormValues, mergeAlertSettings, parseAlertSettingsForm } from '../../src/alerts/alert-settings.ts';
import { DEFAULT_ALERT_SETTINGS } from '../../src/alerts/detectors.ts';

const defaults = DEFAULT_ALERT_SETTINGS;
const form = (changes: Record<string, string> = {}) => ({ ...alertSettingsFormValues(defaults), ...changes });

describe('per-client alert settings', () => {
  it('the defaults submitted unchanged store no override', () => {
    expect(parseAlertSettingsForm(form(), defaults)).toEqual({ ok: true, override: null });
  });

  it('stores only what differs from the defaults', () => {
    const parsed = parseAlertSettingsForm(form({ 'massChange.enabled': '', 'missedBackup.tolerance': '4', 'unusualSize.minHistory': '10' }), defaults);
    expect(parsed).toEqual({ ok: true, override: { massChange: { enabled: false }, missedBackup: { tolerance: 4 }, unusualSize: { minHistory: 10 } } });
  });

  it.each([
    ['missedBackup.tolerance', '', 'a number from 1 to 1000'],
    ['missedBackup.tolerance', '0.5', 'a number from 1 to 1000'],
    ['unusualSize.minHistory', '7.5', 'a whole number from 2 to 200'],
    ['massChange.minFiles', 'many', 'a whole number from 1 to 100000000'],
    ['extraBackup.factor', 'Infinity', 'a number from 1.5 to 1000'],
  ])('refuses %s = %j, naming the field', (name, value, message) => {
    expect(parseAlertSettingsForm(form({ [name]: value }), defaults)).toEqual({ ok: false, errors: { [name]: message } });
  });

  it('merges an override over the defaults, detector by detector', () => {
    const merged = mergeAlertSettings(defaults, { missedBackup: { tolerance: 4 }, massChange: { enabled: false } });
    expect(merged.missedBackup).toEqual({ enabled: true, tolerance: 4 });
    expect(merged.massChange).toEqual({ ...defaults.massChange, enabled: false });
    expect(merged.failing).toEqual(defaults.failing);
    expect(mergeAlertSettings(defaults, null)).toEqual(defaults);
  });
});
