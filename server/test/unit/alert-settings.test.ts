import { describe, expect, it } from 'vitest';
import { alertSettingsFormValues, mergeAlertSettings, parseAlertSettingsForm, parseWatchedFolders } from '../../src/alerts/alert-settings.ts';
import { DEFAULT_ALERT_SETTINGS } from '../../src/alerts/detectors.ts';

const defaults = DEFAULT_ALERT_SETTINGS;
const form = (changes: Record<string, string> = {}) => ({ ...alertSettingsFormValues(defaults), ...changes });

describe('per-client alert settings', () => {
  it('the defaults submitted unchanged store no override', () => {
    expect(parseAlertSettingsForm(form(), defaults)).toEqual({ ok: true, override: null });
  });

  it('stores only what differs from the defaults', () => {
    const parsed = parseAlertSettingsForm(
      form({ 'massChange.enabled': '', 'missedBackup.tolerance': '4', 'unusualSize.minHistory': '10', 'incompressible.minRatio': '0.95' }),
      defaults,
    );
    expect(parsed).toEqual({
      ok: true,
      override: { massChange: { enabled: false }, missedBackup: { tolerance: 4 }, unusualSize: { minHistory: 10 }, incompressible: { minRatio: 0.95 } },
    });
  });

  it.each([
    ['missedBackup.tolerance', '', 'a number from 1 to 1000'],
    ['missedBackup.tolerance', '0.5', 'a number from 1 to 1000'],
    ['unusualSize.minHistory', '7.5', 'a whole number from 2 to 200'],
    ['massChange.minFiles', 'many', 'a whole number from 1 to 100000000'],
    ['extraBackup.factor', 'Infinity', 'a number from 1.5 to 1000'],
    ['incompressible.minSampleBytes', '1000', 'a whole number from 65536 to 9007199254740991'],
    ['incompressible.minRatio', '0', 'a number from 0.1 to 2'],
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

  it('stores watched folders, one a line, paths with spaces, trailing slashes dropped', () => {
    const parsed = parseAlertSettingsForm(form({ 'expectedFile.folders': '/dumps 26\r\n\n  /srv/my exports/ 2.5 \n' }), defaults);
    expect(parsed).toEqual({ ok: true, override: { expectedFile: { folders: [{ path: '/dumps', maxAgeHours: 26 }, { path: '/srv/my exports', maxAgeHours: 2.5 }] } } });
    expect(alertSettingsFormValues(mergeAlertSettings(defaults, parsed.ok ? parsed.override : null))['expectedFile.folders']).toBe('/dumps 26\n/srv/my exports 2.5');
  });

  it.each([
    ['/dumps', 'line 1: a folder path and its max age in hours, e.g. "/dumps 26"'],
    ['dumps 26', 'line 1: the path must be absolute (start with /)'],
    ['/dumps 26\n/dumps/ 3', 'line 2: /dumps is listed twice'],
    ['/dumps 0', 'line 1: the max age must be a number of hours from 1 to 8784'],
    ['/dumps soon', 'line 1: the max age must be a number of hours from 1 to 8784'],
    ['/du\u0007mps 26', 'line 1: the path has control characters or is too long'],
  ])('refuses watched folders %j, naming the field and the line', (text, message) => {
    expect(parseWatchedFolders(text)).toEqual({ ok: false, error: message });
    expect(parseAlertSettingsForm(form({ 'expectedFile.folders': text }), defaults)).toEqual({ ok: false, errors: { 'expectedFile.folders': message } });
  });
});
