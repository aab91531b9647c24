import type { AlertEvent, AlertSeverity, AlertType } from '../alert-event.ts';

/**
 * One message's worth of alert events: the events of one engine pass,
 * most important first, with at most `maxListed` of them spelled out and the
 * rest counted (decision 75). Pure, so the formatting is tested without a
 * mail server.
 */
export interface AlertDigest {
  /** The events listed in the message, opened before resolved, critical first. */
  listed: AlertEvent[];
  /** Events left out of the list by the cap ("and 12 more"). */
  omitted: number;
  opened: number;
  resolved: number;
  critical: number;
  /** A test sent from the dashboard, not a real alert. */
  test: boolean;
  /** Where people read all alerts. */
  alertsUrl: string;
}

export const TYPE_LABELS: Record<AlertType, string> = {
  missed_backup: 'missed backup',
  failing: 'failing backups',
  unusual_size: 'unusual size',
  unusual_timing: 'unusual timing',
  extra_backup: 'unexpected extra backup',
  storage_filling: 'storage filling',
  replica_lagging: 'replica store lagging',
  expected_file_missing: 'expected file missing',
  file_shrank: 'file shrank',
  mass_change: 'mass change',
  restore_failed: 'scheduled restore failed',
  storage_damaged: 'stored data damaged',
};

const SEVERITY_RANK: Record<AlertSeverity, number> = { critical: 0, warning: 1, info: 2 };

export function buildDigest(
  events: readonly AlertEvent[],
  options: { maxListed: number; publicUrl: string; test?: boolean },
): AlertDigest {
  const ordered = [...events].sort(
    (a, b) =>
      Number(a.kind === 'resolved') - Number(b.kind === 'resolved') ||
      SEVERITY_RANK[a.alert.severity] - SEVERITY_RANK[b.alert.severity] ||
      a.alert.openedAt.localeCompare(b.alert.openedAt),
  );
  const listed = ordered.slice(0, options.maxListed);
  return {
    listed,
    omitted: ordered.length - listed.length,
    opened: events.filter((event) => event.kind === 'opened').length,
    resolved: events.filter((event) => event.kind === 'resolved').length,
    critical: events.filter((event) => event.kind === 'opened' && event.alert.severity === 'critical').length,
    test: options.test ?? false,
    alertsUrl: `${options.publicUrl}/alerts`,
  };
}

/** Names and paths come from agents: no line breaks or other control characters in a header line. */
function oneLine(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029]+/gu, ' ').trim();
}

function where(event: AlertEvent): string {
  return event.alert.clientName === null ? 'the server' : event.alert.clientName;
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

export function digestSubject(digest: AlertDigest): string {
  if (digest.test) return '[Cairn] Test notification';
  const only = digest.listed.length === 1 && digest.omitted === 0 ? digest.listed[0] : undefined;
  if (only) {
    const label = TYPE_LABELS[only.alert.type];
    const head = only.kind === 'opened' ? `${only.alert.severity} alert` : 'resolved';
    return oneLine(`[Cairn] ${head}: ${label} on ${where(only)}`);
  }
  const parts = [];
  if (digest.opened > 0) parts.push(`${digest.opened} opened`);
  if (digest.resolved > 0) parts.push(`${digest.resolved} resolved`);
  const critical = digest.critical > 0 ? ` (${digest.critical} critical)` : '';
  return `[Cairn] ${plural(digest.opened + digest.resolved, 'alert')}: ${parts.join(', ')}${critical}`;
}

function eventText(event: AlertEvent): string {
  const { alert } = event;
  const head = [
    event.kind === 'opened' ? 'OPENED' : 'RESOLVED',
    alert.severity,
    TYPE_LABELS[alert.type],
    `on ${where(event)}`,
    ...(alert.path === null ? [] : [`path ${alert.path}`]),
  ].join('  ');
  const when = event.kind === 'opened' ? `opened ${alert.openedAt}` : `opened ${alert.openedAt}, resolved ${alert.resolvedAt ?? 'now'}`;
  return [oneLine(head), `  ${oneLine(alert.message)}`, `  observed: ${oneLine(alert.observed)}; reference: ${oneLine(alert.reference)}`, `  ${when}`].join('\n');
}

/** The plain-text body of the email. */
export function digestText(digest: AlertDigest): string {
  const intro = digest.test
    ? 'This is a test notification from Cairn. If you read this, alert emails reach you.'
    : `Cairn: ${[digest.opened > 0 ? `${plural(digest.opened, 'alert')} opened` : '', digest.resolved > 0 ? `${plural(digest.resolved, 'alert')} resolved` : ''].filter(Boolean).join(', ')}.`;
  const lines = [intro, '', ...digest.listed.map(eventText).flatMap((text) => [text, ''])];
  if (digest.omitted > 0) lines.push(`... and ${plural(digest.omitted, 'more alert')}, not listed here.`, '');
  lines.push(`All alerts: ${digest.alertsUrl}`);
  return lines.join('\n') + '\n';
}
