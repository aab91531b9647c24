import { describe, expect, it } from 'vitest';
import { cronProblem, describeSchedule, scheduleGaps, insideWindow, isKnownTimeZone, nextRunAt, type BackupSchedule } from '../src/schedule.ts';

const at = (iso: string) => new Date(iso);
const iso = (date: Date | null) => date?.toISOString() ?? null;
const interval = (seconds: number, extra: Partial<BackupSchedule> = {}): BackupSchedule => ({ intervalSeconds: seconds, cron: null, timeZone: 'UTC', window: null, ...extra });
const cron = (expression: string, timeZone: string, extra: Partial<BackupSchedule> = {}): BackupSchedule => ({ intervalSeconds: 3600, cron: expression, timeZone, window: null, ...extra });

describe('nextRunAt with an interval', () => {
  it.each([
    ['never ran: at once', null, '2026-05-01T10:00:00.000Z', '2026-05-01T10:00:00.000Z'],
    ['one interval after the last start', '2026-05-01T09:30:00.000Z', '2026-05-01T10:00:00.000Z', '2026-05-01T10:30:00.000Z'],
    ['overdue: at once', '2026-05-01T07:00:00.000Z', '2026-05-01T10:00:00.000Z', '2026-05-01T10:00:00.000Z'],
  ])('%s', (_name, last, now, expected) => {
    expect(iso(nextRunAt(interval(3600), last === null ? null : at(last), at(now)))).toBe(expected);
  });

  it('waits for the window to open when the run falls outside it', () => {
    const schedule = interval(3600, { window: { start: '22:00', end: '06:00' }, timeZone: 'Europe/Berlin' });
    // 12:00 UTC is 14:00 in Berlin (summer time): the window opens at 22:00 Berlin = 20:00 UTC.
    expect(iso(nextRunAt(schedule, at('2026-07-01T11:00:00Z'), at('2026-07-01T12:00:00Z')))).toBe('2026-07-01T20:00:00.000Z');
    // 01:00 UTC is 03:00 Berlin, inside the window that crosses midnight.
    expect(iso(nextRunAt(schedule, at('2026-07-01T00:00:00Z'), at('2026-07-01T00:30:00Z')))).toBe('2026-07-01T01:00:00.000Z');
    // The window's end is exclusive: 06:00 Berlin (04:00 UTC) is outside.
    expect(iso(nextRunAt(schedule, at('2026-07-01T03:00:00Z'), at('2026-07-01T03:30:00Z')))).toBe('2026-07-01T20:00:00.000Z');
  });
});

describe('nextRunAt with cron', () => {
  it('takes the next time after the last start, in the zone', () => {
    // 03:00 in New York in winter is 08:00 UTC.
    expect(iso(nextRunAt(cron('0 3 * * *', 'America/New_York'), at('2026-01-10T08:00:00Z'), at('2026-01-10T09:00:00Z')))).toBe('2026-01-11T08:00:00.000Z');
  });

  it('with no last start waits for the next time instead of running at once', () => {
    expect(iso(nextRunAt(cron('0 3 * * *', 'UTC'), null, at('2026-01-10T09:00:00Z')))).toBe('2026-01-11T03:00:00.000Z');
  });

  it('runs an overdue time at once (the agent was off or busy)', () => {
    expect(iso(nextRunAt(cron('0 3 * * *', 'UTC'), at('2026-01-08T03:00:00Z'), at('2026-01-10T09:00:00Z')))).toBe('2026-01-10T09:00:00.000Z');
  });

  it('keeps the wall-clock time across the spring DST change', () => {
    // Berlin moves from UTC+1 to UTC+2 on 2026-03-29.
    const schedule = cron('30 4 * * *', 'Europe/Berlin');
    expect(iso(nextRunAt(schedule, at('2026-03-28T03:30:00Z'), at('2026-03-28T04:00:00Z')))).toBe('2026-03-29T02:30:00.000Z');
    expect(iso(nextRunAt(schedule, at('2026-03-29T02:30:00Z'), at('2026-03-29T03:00:00Z')))).toBe('2026-03-30T02:30:00.000Z');
  });

  it('keeps the wall-clock time across the autumn DST change', () => {
    // Back from UTC+2 to UTC+1 on 2026-10-25.
    const schedule = cron('30 4 * * *', 'Europe/Berlin');
    expect(iso(nextRunAt(schedule, at('2026-10-24T02:30:00Z'), at('2026-10-24T03:00:00Z')))).toBe('2026-10-25T03:30:00.000Z');
  });

  it('runs a time that does not exist on the spring-forward day once, not never', () => {
    // 02:30 does not exist in Berlin on 2026-03-29 (02:00 jumps to 03:00).
    const schedule = cron('30 2 * * *', 'Europe/Berlin');
    const next = nextRunAt(schedule, at('2026-03-28T01:30:00Z'), at('2026-03-28T02:00:00Z'));
    expect(next).not.toBeNull();
    expect(next!.getTime()).toBeGreaterThan(at('2026-03-28T23:00:00Z').getTime());
    expect(next!.getTime()).toBeLessThan(at('2026-03-29T23:00:00Z').getTime());
  });

  it('skips cron times outside the window to the first one inside', () => {
    const schedule = cron('0 * * * *', 'UTC', { window: { start: '01:00', end: '03:00' } });
    expect(iso(nextRunAt(schedule, at('2026-01-10T02:00:00Z'), at('2026-01-10T02:10:00Z')))).toBe('2026-01-11T01:00:00.000Z');
    expect(iso(nextRunAt(schedule, at('2026-01-10T01:00:00Z'), at('2026-01-10T01:10:00Z')))).toBe('2026-01-10T02:00:00.000Z');
  });

  it('an overdue run outside the window waits for the first cron time inside it', () => {
    const schedule = cron('15 * * * *', 'UTC', { window: { start: '22:00', end: '23:00' } });
    expect(iso(nextRunAt(schedule, at('2026-01-08T22:15:00Z'), at('2026-01-10T09:00:00Z')))).toBe('2026-01-10T22:15:00.000Z');
  });

  it('is null when no cron time falls inside the window', () => {
    expect(nextRunAt(cron('0 12 * * *', 'UTC', { window: { start: '22:00', end: '06:00' } }), null, at('2026-01-10T09:00:00Z'))).toBeNull();
  });
});

describe('insideWindow', () => {
  it.each([
    ['09:00', '17:00', '2026-01-10T08:59:00Z', false],
    ['09:00', '17:00', '2026-01-10T09:00:00Z', true],
    ['09:00', '17:00', '2026-01-10T17:00:00Z', false],
    ['22:00', '06:00', '2026-01-10T23:30:00Z', true],
    ['22:00', '06:00', '2026-01-10T05:59:00Z', true],
    ['22:00', '06:00', '2026-01-10T12:00:00Z', false],
  ])('%s-%s at %s: %s', (start, end, when, expected) => {
    expect(insideWindow({ start, end }, 'UTC', at(when))).toBe(expected);
  });
});

describe('scheduleGaps', () => {
  it('is the interval for a plain interval schedule', () => {
    expect(scheduleGaps(interval(7200), at('2026-01-10T00:00:00Z'))).toEqual({ longestSeconds: 7200, meanSeconds: 7200 });
  });

  it('is the longest gap of a weekday cron (Friday to Monday)', () => {
    // 2026-01-10 is a Saturday: runs Monday to Friday, then Friday to Monday is the longest gap.
    const gaps = scheduleGaps(cron('0 3 * * 1-5', 'UTC'), at('2026-01-10T00:00:00Z'));
    expect(gaps?.longestSeconds).toBe(3 * 86_400);
    expect(gaps?.meanSeconds).toBe(Math.round((7 * 86_400) / 5));
  });

  it('counts the closed hours of a window', () => {
    // Hourly from 22:00 to 06:00: the last run is at 05:00, the next at 22:00.
    expect(scheduleGaps(interval(3600, { window: { start: '22:00', end: '06:00' } }), at('2026-01-10T00:00:00Z'))?.longestSeconds).toBe(17 * 3600);
  });

  it('is null for a schedule that never runs', () => {
    expect(scheduleGaps(cron('0 12 * * *', 'UTC', { window: { start: '22:00', end: '06:00' } }), at('2026-01-10T00:00:00Z'))).toBeNull();
  });
});

describe('validation', () => {
  it.each([
    ['0 3 * * *', null],
    ['*/15 9-17 * * 1-5', null],
    ['0 3 * *', 'five fields'],
    ['0 0 3 * * *', 'five fields'],
    ['61 3 * * *', ''],
  ])('cron %j', (expression, problem) => {
    const found = cronProblem(expression);
    if (problem === null) expect(found).toBeNull();
    else expect(found).toContain(problem);
  });

  it('knows IANA zones and refuses unknown ones', () => {
    expect(isKnownTimeZone('Europe/Berlin')).toBe(true);
    expect(isKnownTimeZone('UTC')).toBe(true);
    expect(isKnownTimeZone('Mars/Olympus')).toBe(false);
    expect(isKnownTimeZone('')).toBe(false);
  });
});

describe('describeSchedule', () => {
  it.each([
    [interval(21_600), 'every 6h'],
    [interval(3600, { window: { start: '22:00', end: '06:00' }, timeZone: 'Europe/Berlin' }), 'every 1h, window 22:00-06:00 Europe/Berlin'],
    [cron('0 3 * * 1-5', 'America/New_York', { window: { start: '01:00', end: '05:00' } }), 'cron 0 3 * * 1-5 (America/New_York), window 01:00-05:00'],
  ])('%j', (schedule, text) => {
    expect(describeSchedule(schedule)).toBe(text);
  });
});
