import type { AlertEvent } from '../alert-event.ts';

/**
 * One way of delivering alerts (email, webhook). `send` delivers one message
 * for the whole batch, retrying what can be retried, and rejects with a
 * DeliveryError once it gives up; the composite notifier turns that into a
 * log line and an outcome, so nothing rejects into the alert engine.
 */
export interface NotificationChannel {
  /** 'email' or 'webhook': names the channel in logs and on the dashboard. */
  readonly name: string;
  /** Where it delivers, for people; never holds a secret (no password, no URL query or credentials). */
  readonly target: string;
  send(events: readonly AlertEvent[], options: { test: boolean }): Promise<{ attempts: number }>;
  close(): void;
}
