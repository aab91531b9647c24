import { formatBytes, formatDuration } from '@cairn/shared';
import { HEALTH_LABELS, type ClientHealth } from './client-health.ts';

/** Formatting helpers every template gets as `it.h`. */
export function viewHelpers(now: Date) {
  return {
    bytes: formatBytes,
    duration: formatDuration,
    /** `2026-11-21 21:04 UTC`; the `title` shows the ISO time. */
    time(value: Date | string | number | null | undefined): string {
      if (value === null || value === undefined) return '-';
      const d = new Date(value);
      return Number.isNaN(d.getTime()) ? '-' : d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
    },
    iso(value: Date | string | number | null | undefined): string {
      if (value === null || value === undefined) return '';
      return new Date(value).toISOString();
    },
    /** `5 min ago`, `3 d ago`, `never`. */
    ago(value: Date | string | null | undefined): string {
      if (value === null || value === undefined) return 'never';
      const seconds = Math.round((now.getTime() - new Date(value).getTime()) / 1000);
      if (seconds < 0) return 'just now';
      if (seconds < 60) return `${seconds}s ago`;
      if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
      if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
      return `${Math.floor(seconds / 86_400)} d ago`;
    },
    interval(seconds: number): string {
      if (seconds % 86_400 === 0) return `every ${seconds / 86_400} d`;
      if (seconds % 3600 === 0) return `every ${seconds / 3600} h`;
      if (seconds % 60 === 0) return `every ${seconds / 60} min`;
      return `every ${seconds} s`;
    },
    healthLabel: (health: ClientHealth) => HEALTH_LABELS[health],
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
