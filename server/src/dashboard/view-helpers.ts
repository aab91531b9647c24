import { describeRunTrigger, displayPath, formatBytes, formatDuration } from '@cairn/shared';
import type { AlertType } from '../alerts/alert-event.ts';
import { HEALTH_LABELS, type ClientHealth } from './client-health.ts';

/** Alert types in words, in the order the alerts page offers them as filters. */
export const ALERT_TYPE_LABELS: Record<AlertType, string> = {
  failing: 'Failing',
  missed_backup: 'Missed backup',
  mass_change: 'Mass change',
  unusual_size: 'Unusual size',
  unusual_timing: 'Unusual timing',
  extra_backup: 'Extra backups',
  storage_filling: 'Storage filling',
  replica_lagging: 'Replica lagging',
  expected_file_missing: 'Expected file missing',
  file_shrank: 'File shrank',
  restore_failed: 'Restore failed',
  storage_damaged: 'Storage damaged',
};

type TimeValue = Date | string | number | null | undefined;

function toDate(value: TimeValue): Date | null {
  if (value === null || value === undefined) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

const utcText = (d: Date): string => d.toISOString().slice(0, 19).replace('T', ' ') + ' UTC';

function relative(now: Date, d: Date): string {
  return secondsAgo((now.getTime() - d.getTime()) / 1000);
}

function secondsAgo(elapsed: number): string {
  const seconds = Math.round(elapsed);
  if (seconds < 0) return 'just now';
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

/** Formatting helpers every template gets as `it.h`. */
export function viewHelpers(now: Date) {
  return {
    bytes: formatBytes,
    /** A path or name for people: bytes that are not valid UTF-8 shown as `\xNN` (decision 41); links keep the exact spelling. */
    name: (text: string | null | undefined): string => (text ? displayPath(text) : ''),
    duration: formatDuration,
    trigger: describeRunTrigger,
    /** `2026-11-21 21:04:05 UTC` (text, e.g. for an attribute); `-` for no time. */
    utc(value: TimeValue): string {
      const d = toDate(value);
      return d ? utcText(d) : '-';
    },
    /**
     * A `<time>` element (HTML, for `<%~ %>`): UTC with seconds, which
     * public/dashboard.js rewrites into the viewer's time zone; the title
     * keeps the UTC time. `-` for no time.
     */
    time(value: TimeValue): string {
      const d = toDate(value);
      return d ? `<time datetime="${d.toISOString()}" title="${utcText(d)}" data-local>${utcText(d)}</time>` : '-';
    },
    iso(value: TimeValue): string {
      const d = toDate(value);
      return d ? d.toISOString() : '';
    },
    /** `5 min ago`, `3 d ago` in a `<time>` element titled with the UTC time (HTML); `never` for no time. */
    ago(value: TimeValue): string {
      const d = toDate(value);
      if (!d) return 'never';
      return `<time datetime="${d.toISOString()}" title="${utcText(d)}">${relative(now, d)}</time>`;
    },
    /** `4s ago`, `2 min ago` for an age already measured (e.g. on the database's clock); text. */
    secondsAgo,
    interval(seconds: number): string {
      if (seconds % 86_400 === 0) return `every ${seconds / 86_400} d`;
      if (seconds % 3600 === 0) return `every ${seconds / 3600} h`;
      if (seconds % 60 === 0) return `every ${seconds / 60} min`;
      return `every ${seconds} s`;
    },
    healthLabel: (health: ClientHealth) => HEALTH_LABELS[health],
    alertType: (type: AlertType) => ALERT_TYPE_LABELS[type] ?? type,
    severityClass: (severity: string) => (severity === 'critical' ? 'bad' : severity === 'warning' ? 'warn' : 'info'),
    statusClass(status: string | null): string {
      switch (status) {
        case 'succeeded':
          return 'ok';
        case 'partial':
          return 'warn';
        case 'failed':
          return 'bad';
        case 'running':
          return 'info';
        default:
          return 'muted';
      }
    },
    mode: (mode: number) => '0' + (mode & 0o7777).toString(8),
    /** Encodes a query string from pairs, skipping empty values. */
    query(params: Record<string, string | number | null | undefined>): string {
      const search = new URLSearchParams();
      for (const [key, value] of Object.entries(params)) {
        if (value !== null && value !== undefined && value !== '') search.set(key, String(value));
      }
      const text = search.toString();
      return text ? `?${text}` : '';
    },
  };
}
