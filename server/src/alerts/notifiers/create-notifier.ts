import type { Logger } from 'pino';
import type { AlertEvent, AlertNotifier } from '../alert-event.ts';
import type { ServerConfig } from '../../config/server-config.ts';
import { DEFAULT_RETRY, DeliveryError, describeError, type RetryPolicy } from './delivery-retry.ts';
import { EmailNotifier } from './email-notifier.ts';
import type { NotificationChannel } from './notification-channel.ts';
import { WebhookNotifier } from './webhook-notifier.ts';

/** How one channel fared with one batch. */
export interface ChannelOutcome {
  channel: string;
  target: string;
  ok: boolean;
  attempts: number;
  /** Why it was not delivered; never holds a secret. */
  error?: string;
}

/**
 * Fans one batch out to every configured channel at once, one message per
 * channel. `notify` is the AlertNotifier the engine calls: it resolves when
 * every channel has delivered or given up, and never rejects (a channel that
 * gave up is logged at error). `deliver` does the same and tells how each
 * channel fared (the dashboard's test button shows it).
 */
export class CompositeNotifier implements AlertNotifier {
  constructor(
    readonly channels: readonly NotificationChannel[],
    private readonly log: Logger,
  ) {}

  async notify(events: readonly AlertEvent[]): Promise<void> {
    await this.deliver(events);
  }

  async deliver(events: readonly AlertEvent[], options: { test?: boolean } = {}): Promise<ChannelOutcome[]> {
    if (events.length === 0) return [];
    const test = options.test ?? false;
    return Promise.all(
      this.channels.map(async (channel): Promise<ChannelOutcome> => {
        const base = { channel: channel.name, target: channel.target };
        try {
          const { attempts } = await channel.send(events, { test });
          this.log.info({ ...base, attempts, events: events.length, test }, 'alert notification delivered');
          return { ...base, ok: true, attempts };
        } catch (error) {
          const attempts = error instanceof DeliveryError ? error.attempts : 1;
          const reason = describeError(error instanceof DeliveryError && error.cause !== undefined ? error.cause : error);
          this.log.error({ ...base, attempts, events: events.length, test, error: reason }, 'alert notification not delivered');
          return { ...base, ok: false, attempts, error: reason };
        }
      }),
    );
  }

  close(): void {
    for (const channel of this.channels) channel.close();
  }
}

/**
 * The notifier for the configured channels (SMTP_URL, ALERT_WEBHOOK_URL);
 * with none configured it has no channels and does nothing. `retry` is for
 * tests and for the dashboard's test button (one attempt, an answer at once).
 */
export function createNotifier(config: ServerConfig, log: Logger, options: { retry?: Partial<RetryPolicy> } = {}): CompositeNotifier {
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  const { email, webhook } = config.notifications;
  const channels: NotificationChannel[] = [];
  if (email) channels.push(new EmailNotifier(email, config.publicUrl, retry, log));
  if (webhook) channels.push(new WebhookNotifier(webhook, config.publicUrl, retry, log));
  return new CompositeNotifier(channels, log);
}
