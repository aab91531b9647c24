/**
 * What the alert engine hands to notifiers (email, webhooks): one value per
 * alert that opened or resolved. The engine owns detection and the alerts
 * table; a notifier only formats and delivers these, and must never throw
 * into the engine (a failed delivery is logged and retried by the notifier).
 */
export type AlertType =
  | 'missed_backup'
  | 'failing'
  | 'unusual_size'
  | 'unusual_timing'
  | 'extra_backup'
  | 'storage_filling'
  | 'replica_lagging'
  | 'expected_file_missing'
  | 'file_shrank'
  | 'mass_change'
  | 'restore_failed'
  | 'storage_damaged';

export type AlertSeverity = 'info' | 'warning' | 'critical';

export interface AlertSnapshot {
  id: string;
  type: AlertType;
  severity: AlertSeverity;
  /** null for server-wide alerts (storage filling). */
  clientId: string | null;
  clientName: string | null;
  /** The owner of the client, whose notification settings apply; null for server-wide alerts (admins). */
  ownerId: string | null;
  /** The path the alert is about, where one applies (watched folder, shrunk file). */
  path: string | null;
  /** One sentence for people, e.g. "no successful backup for 26 h (expected every 1 h, tolerance 2x)". */
  message: string;
  /** The measured value and the reference it was compared with, as people read them. */
  observed: string;
  reference: string;
  openedAt: string;
  resolvedAt: string | null;
}

export interface AlertEvent {
  kind: 'opened' | 'resolved';
  alert: AlertSnapshot;
}

export interface AlertNotifier {
  /** Delivers (or queues) the events of one engine pass; resolves when queued, never rejects. */
  notify(events: readonly AlertEvent[]): Promise<void>;
}
