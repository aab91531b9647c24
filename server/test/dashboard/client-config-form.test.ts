import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PRE_COMMAND_TIMEOUT_SECONDS as DEFAULT,
  formatPreCommands,
  parseDuration,
  parsePreCommands,
  validateClientConfig,
} from '../../src/dashboard/client-config-form.ts';

describe('parsePreCommands', () => {
  it.each([
    ['pg_dump app > /backup/app.sql', [{ command: 'pg_dump app > /backup/app.sql', timeoutSeconds: DEFAULT }]],
    ['[90s] sync', [{ command: 'sync', timeoutSeconds: 90 }]],
    ['[10m] pg_dump app', [{ command: 'pg_dump app', timeoutSeconds: 600 }]],
    ['[2h]   tar c /srv', [{ command: 'tar c /srv', timeoutSeconds: 7200 }]],
    ['[45] echo hi', [{ command: 'echo hi', timeoutSeconds: 45 }]],
    ['[ -d /srv ] && echo yes', [{ command: '[ -d /srv ] && echo yes', timeoutSeconds: DEFAULT }]],
    ['# a comment\n\n  echo a  \r\necho b', [{ command: 'echo a', timeoutSeconds: DEFAULT }, { command: 'echo b', timeoutSeconds: DEFAULT }]],
  ])('%j', (text, commands) => {
    expect(parsePreCommands(text)).toEqual({ commands, errors: [] });
  });

  it.each([
    ['[0s] echo', 'line 1: timeout must be between 1 second and 24 hours'],
    ['echo ok\n[25h] echo', 'line 2: timeout must be between 1 second and 24 hours'],
    ['[5m]', 'line 1: a timeout needs a command after it'],
    ['x'.repeat(4097), 'line 1: longer than 4096 characters'],
  ])('refuses %j', (text, error) => {
    expect(parsePreCommands(text).errors).toEqual([error]);
  });

  it('round-trips through formatPreCommands', () => {
    const commands = [
      { command: 'echo a', timeoutSeconds: DEFAULT },
      { command: 'pg_dump', timeoutSeconds: 600 },
      { command: 'sync', timeoutSeconds: 90 },
      { command: 'long', timeoutSeconds: 7200 },
    ];
    expect(parsePreCommands(formatPreCommands(commands)).commands).toEqual(commands);
  });
});

describe('parseDuration', () => {
  it.each([
    ['3600', 3600],
    ['30m', 1800],
    ['6h', 21_600],
    ['1d', 86_400],
    [' 90s ', 90],
    ['', null],
    ['1.5h', null],
    ['soon', null],
  ])('%j -> %j', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });
});

describe('validateClientConfig', () => {
  const valid = { monitoredPaths: '/srv/data\n/etc/\n/srv/data', excludes: '**/*.tmp', preCommands: '[1m] sync', backupInterval: '6h' };

  it('normalises paths, drops duplicates and keeps the owner policy without an override', () => {
    expect(validateClientConfig(valid)).toEqual({
      ok: true,
      values: {
        monitoredPaths: ['/srv/data', '/etc'],
        excludes: ['**/*.tmp'],
        preCommands: [{ command: 'sync', timeoutSeconds: 60 }],
        backupIntervalSeconds: 21_600,
        schedule: { cron: null, timeZone: 'UTC', window: null },
        retentionVersions: null,
        retentionDays: null,
      },
    });
  });

  it('reads a retention override', () => {
    const result = validateClientConfig({ ...valid, retentionOverride: 'on', retentionVersions: '5', retentionDays: '' });
    expect(result.ok && [result.values.retentionVersions, result.values.retentionDays]).toEqual([5, null]);
  });

  it('names every bad field', () => {
    const result = validateClientConfig({
      monitoredPaths: 'relative/path',
      preCommands: '[0s] x',
      backupInterval: '10s',
      retentionOverride: 'on',
      retentionVersions: '0',
      retentionDays: 'abc',
    });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(Object.keys(result.errors).sort()).toEqual(['backupInterval', 'monitoredPaths', 'preCommands', 'retentionDays', 'retentionVersions']);
    }
  });

  it('reads a cron schedule with its zone and window', () => {
    const result = validateClientConfig({ ...valid, scheduleKind: 'cron', cron: ' 0  3 * * 1-5 ', timeZone: 'Europe/Berlin', windowStart: '01:00', windowEnd: '05:00' });
    expect(result.ok && result.values.schedule).toEqual({ cron: '0 3 * * 1-5', timeZone: 'Europe/Berlin', window: { start: '01:00', end: '05:00' } });
  });

  it('keeps the interval when "interval" is chosen, ignoring a typed cron', () => {
    const result = validateClientConfig({ ...valid, scheduleKind: 'interval', cron: 'not a cron' });
    expect(result.ok && result.values.schedule.cron).toBeNull();
  });

  it.each([
    [{ scheduleKind: 'cron', cron: '' }, 'cron', 'enter a cron expression'],
    [{ scheduleKind: 'cron', cron: '0 3 * *' }, 'cron', 'five fields'],
    [{ scheduleKind: 'cron', cron: '0 25 * * *' }, 'cron', ''],
    [{ timeZone: 'Mars/Olympus' }, 'timeZone', 'unknown time zone "Mars/Olympus"'],
    [{ windowStart: '22:00', windowEnd: '' }, 'backupWindow', 'HH:MM'],
    [{ windowStart: '25:00', windowEnd: '06:00' }, 'backupWindow', 'HH:MM'],
    [{ windowStart: '06:00', windowEnd: '06:00' }, 'backupWindow', 'must differ'],
    [{ scheduleKind: 'cron', cron: '0 12 * * *', windowStart: '22:00', windowEnd: '06:00' }, 'backupWindow', 'no time of the cron expression'],
    [{ scheduleKind: 'weekly' }, 'scheduleKind', 'choose'],
  ])('%j is refused under %s', (fields, name, message) => {
    const result = validateClientConfig({ ...valid, ...fields });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(Object.keys(result.errors)).toEqual([name]);
      expect(result.errors[name]).toContain(message);
    }
  });
});
