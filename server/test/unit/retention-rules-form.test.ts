import { describe, expect, it } from 'vitest';
import { formatFolderRules, parseFolderRules, parseRetentionRules, retentionRulesInput } from '../../src/services/retention-rules-form.ts';
import { NO_RESTORE_POINTS } from '../../src/services/retention-rules.ts';

describe('parseFolderRules', () => {
  const ok: [string, string, { folder: string; rules: { count: number; minAgeDays: number }[] }[]][] = [
    ['empty: no folder rules', '  \n', []],
    ['the issue example', '/dumps 3.1 2.15', [{ folder: '/dumps', rules: [{ count: 3, minAgeDays: 1 }, { count: 2, minAgeDays: 15 }] }]],
    ['a trailing slash is dropped, blank lines skipped, CRLF read', '/var/backups/ 7.0\r\n\r\n/ 1.365', [
      { folder: '/var/backups', rules: [{ count: 7, minAgeDays: 0 }] },
      { folder: '/', rules: [{ count: 1, minAgeDays: 365 }] },
    ]],
  ];
  it.each(ok)('%s', (_name, text, folders) => {
    expect(parseFolderRules(text)).toEqual({ folders, error: null });
  });

  const bad: [string, string, string][] = [
    ['a count.min_age that is not one', '/dumps 3.x', 'line 1: "3.x" is not count.min_age'],
    ['a zero count', '/dumps 0.1', 'line 1: "0.1" is not count.min_age'],
    ['a relative folder', 'dumps 3.1', 'line 1: start with an absolute folder path'],
    ['a folder without rules, on line 2', '/a 1.1\n/dumps', 'line 2: give /dumps at least one count.min_age rule'],
    ['the same folder twice', '/a 1.1\n/a/ 2.2', 'line 2: /a is listed twice'],
    ['a negative age', '/a 1.-1', 'line 1: "1.-1" is not count.min_age'],
  ];
  it.each(bad)('refuses %s', (_name, text, message) => {
    const result = parseFolderRules(text);
    expect(result.folders).toBeNull();
    expect(result.error).toContain(message);
  });

  it('formats what it parses back to the same text', () => {
    const text = '/dumps 3.1 2.15\n/home 5.7';
    expect(formatFolderRules(parseFolderRules(text).folders!)).toBe(text);
  });
});

describe('parseRetentionRules', () => {
  const empty = { folderRules: '', keepLast: '', keepHourly: '', keepDaily: '', keepWeekly: '', keepMonthly: '', keepYearly: '' };
  it('reads empty counts as 0 and round-trips through the form values', () => {
    const parsed = parseRetentionRules({ ...empty, keepLast: '5', keepDaily: ' 7 ' });
    expect(parsed).toEqual({ rules: { folders: [], restorePoints: { ...NO_RESTORE_POINTS, last: 5, daily: 7 } }, errors: {} });
    expect(retentionRulesInput(parsed.rules!)).toEqual({ ...empty, keepLast: '5', keepDaily: '7' });
  });
  it('names every bad field', () => {
    const parsed = parseRetentionRules({ ...empty, folderRules: '/x 1.y', keepHourly: '-1', keepYearly: '100000' });
    expect(parsed.rules).toBeNull();
    expect(Object.keys(parsed.errors).sort()).toEqual(['folderRules', 'keepHourly', 'keepYearly']);
  });
});
