/**
 * Backup schedules: an interval or a cron expression in a time zone, with an
 * optional daily window in which runs may start. Pure functions of their
 * arguments (no clock of their own), shared by the agent (when to run), the
 * dashboard (the next run it shows) and the alert engine (how long a gap is
 * expected), so all three agree. Cron arithmetic, DST included, is croner's.
 */
import { Cron } from 'croner';

/** A daily window in the schedule's time zone, `HH:MM` each; `end` before `start` crosses midnight. */
export interface BackupWindow {
  start: string;
  end: string;
}

export interface BackupSchedule {
  /** Used when `cron` is null. */
  intervalSeconds: number;
  /** Five-field cron expression (minute hour day-of-month month day-of-week), or null for the interval. */
  cron: string | null;
  /** IANA zone the cron expression and the window are read in. */
  timeZone: string;
  window: BackupWindow | null;
}

export const DEFAULT_TIME_ZONE = 'UTC';
const WINDOW_TIME = /^([01]\d|2[0-3]):([0-5]\d)$/;
/** How many windows `nextRunAt` looks through for a cron run inside one before it says "never". */
const WINDOW_SEARCH_LIMIT = 100;

/** Why `expression` is not a usable five-field cron expression, or null when it is. */
export function cronProblem(expression: string): string | null {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) return 'must have five fields: minute hour day-of-month month day-of-week';
  try {
    new Cron(expression.trim(), { paused: true, timezone: DEFAULT_TIME_ZONE });
    return null;
  } catch (error) {
    return (error as Error).message.replace(/^CronPattern: /, '');
  }
}

/** True for a time zone name this runtime knows (IANA, e.g. `Europe/Berlin`, or `UTC`). */
export function isKnownTimeZone(name: string): boolean {
  if (name.trim() === '' || name !== name.trim()) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Minutes after midnight of `HH:MM`, or null when it is not a time of day. */
export function windowMinutes(time: string): number | null {
  const match = WINDOW_TIME.exec(time);
  return match ? Number(match[1]) * 60 + Number(match[2]) : null;
}

const wallClocks = new Map<string, Intl.DateTimeFormat>();

/** Minutes after midnight of `at` on the wall clock of `timeZone`. */
function localMinutes(at: Date, timeZone: string): number {
  let format = wallClocks.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    wallClocks.set(timeZone, format);
  }
  let hour = 0;
  let minute = 0;
  for (const part of format.formatToParts(at)) {
    if (part.type === 'hour') hour = Number(part.value);
    if (part.type === 'minute') minute = Number(part.value);
  }
  return hour * 60 + minute;
}

/** True when `at` lies inside the window (start inclusive, end exclusive) on the zone's wall clock. */
export function insideWindow(window: BackupWindow, timeZone: string, at: Date): boolean {
  const start = windowMinutes(window.start);
  const end = windowMinutes(window.end);
  if (start === null || end === null || start === end) return true;
  const now = localMinutes(at, timeZone);
  return start < end ? now >= start && now < end : now >= start || now < end;
}

function cronOf(expression: string, timeZone: string): Cron {
  return new Cron(expression.trim(), { paused: true, timezone: timeZone });
}

/** The first moment at or after `at` that is inside the window. */
function windowOpening(window: BackupWindow, timeZone: string, at: Date): Date {
  if (insideWindow(window, timeZone, at)) return at;
  const [hour, minute] = window.start.split(':').map(Number);
  return cronOf(`${minute} ${hour} * * *`, timeZone).nextRun(at) ?? at;
}

/**
 * When the next run should start, or null when the schedule can never run
 * (a cron expression with no time inside its window).
 *
 * - Interval: one interval after the last start, at once when there was none
 *   or it is overdue.
 * - Cron: the first time after the last start; an overdue one (the agent was
 *   busy or off) starts at once, and with no last start the next time after
 *   `now` (a restarted agent waits for its time instead of running at once).
 * - Window: a run due outside it waits for the window to open (interval), or
 *   for the first cron time inside it (cron).
 */
export function nextRunAt(schedule: BackupSchedule, lastStart: Date | null, now: Date): Date | null {
  const { window, timeZone } = schedule;
  if (schedule.cron === null) {
    const due = lastStart === null ? now : new Date(Math.max(now.getTime(), lastStart.getTime() + schedule.intervalSeconds * 1000));
    return window === null ? due : windowOpening(window, timeZone, due);
  }
  const cron = cronOf(schedule.cron, timeZone);
  const next = cron.nextRun(lastStart ?? now);
  if (next === null) return null;
  let candidate = next.getTime() < now.getTime() ? now : next;
  if (window === null) return candidate;
  for (let step = 0; step < WINDOW_SEARCH_LIMIT; step += 1) {
    if (insideWindow(window, timeZone, candidate)) return candidate;
    const opening = windowOpening(window, timeZone, candidate);
    const inside = cron.nextRun(new Date(opening.getTime() - 1));
    if (inside === null) return null;
    candidate = inside;
  }
  return null;
}

/**
 * The spacing of runs over the week after `from`: the longest gap between
 * two consecutive runs (what "on time" means for a schedule whose runs are
 * not evenly spaced: a cron on weekdays only, a window) and the mean one
 * (how many runs to expect in a span). Null when the schedule never runs.
 */
export function scheduleGaps(schedule: BackupSchedule, from: Date): { longestSeconds: number; meanSeconds: number } | null {
  if (schedule.cron === null && schedule.window === null) return { longestSeconds: schedule.intervalSeconds, meanSeconds: schedule.intervalSeconds };
  const horizon = from.getTime() + 7 * 86_400_000;
  const first = nextRunAt(schedule, null, from);
  if (first === null) return null;
  let previous = first;
  let longest = 0;
  let gaps = 0;
  for (let step = 0; step < 20_000 && previous.getTime() < horizon; step += 1) {
    // A run takes at least a moment: look from one millisecond on, so an interval schedule advances too.
    const next: Date | null = nextRunAt(schedule, previous, new Date(previous.getTime() + 1));
    if (next === null) return null;
    longest = Math.max(longest, next.getTime() - previous.getTime());
    gaps += 1;
    previous = next;
  }
  const seconds = (ms: number) => Math.max(60, Math.round(ms / 1000));
  return { longestSeconds: seconds(longest), meanSeconds: seconds((previous.getTime() - first.getTime()) / Math.max(1, gaps)) };
}

/** `30m`, `6h`, `1d`: an interval as the dashboard's form writes it. */
export function formatInterval(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** The schedule in a few words, one spelling for the dashboard and the agent's status page. */
export function describeSchedule(schedule: BackupSchedule): string {
  const when = schedule.cron === null ? `every ${formatInterval(schedule.intervalSeconds)}` : `cron ${schedule.cron} (${schedule.timeZone})`;
  if (schedule.window === null) return when;
  return `${when}, window ${schedule.window.start}-${schedule.window.end}${schedule.cron === null ? ` ${schedule.timeZone}` : ''}`;
}
