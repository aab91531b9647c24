import type { Logger } from 'pino';
import type { AlertEvent, AlertNotifier } from '../alert-event.ts';
import type { ServerConfig } from '../../config/server-config.ts';
import type { AlertRecipientLookup, AlertWebhookLookup } from '../../services/alert-recipients.service.ts';
import { DEFAULT_RETRY, DeliveryError, describeError, type RetryPolicy } from './delivery-retry.ts';
import { EmailNotifier } from './email-notifier.ts';
import type { NotificationChannel } from './notification-channel.ts';
import { OwnerWebhookNotifier, WebhookNotifier } from './webhook-notifier.ts';

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
 * How long `notify` gathers events into one message: until no new events
 * came for `quietMs`, and never longer than `maxWaitMs` after the first.
 */
export interface CoalescePolicy {
  quietMs: number;
  maxWaitMs: number;
}

export const DEFAULT_COALESCE: CoalescePolicy = { quietMs: 3000, maxWaitMs: 30_000 };

/**
 * Fans alerts out to every configured channel, one message per channel for
 * each batch (decision 75).
 *
 * `notify` is the AlertNotifier the engine calls. It only queues and
 * resolves at once, never rejecting: the engine hands over events client by
 * client, so the events of one pass over a broken fleet arrive as many calls
 * within seconds, and they go out together once the calls pause (see
 * CoalescePolicy). Delivery then runs in the background; a channel that
 * gives up is logged at error. `flush` sends what is queued now and waits
 * for every delivery under way; `close` flushes and releases the channels.
 *
 * `deliver` sends one batch at once and tells how each channel fared (the
 * dashboard's test button shows it); it never rejects either.
 */
export class CompositeNotifier implements AlertNotifier {
  #queued: AlertEvent[] = [];
  #firstQueuedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #inFlight = new Set<Promise<unknown>>();

  readonly channels: readonly NotificationChannel[];
  private readonly log: Logger;
  private readonly coalesce: CoalescePolicy;
  constructor(
    channels: readonly NotificationChannel[],
    log: Logger,
    coalesce: CoalescePolicy = DEFAULT_COALESCE,
  ) {
    this.channels = channels;
    this.log = log;
    this.coalesce = coalesce;
  }

  async notify(events: readonly AlertEvent[]): Promise<void> {
    if (this.channels.length === 0 || events.length === 0) return;
    if (this.#queued.length === 0) this.#firstQueuedAt = Date.now();
    this.#queued.push(...events);
    clearTimeout(this.#timer);
    const left = this.coalesce.maxWaitMs - (Date.now() - this.#firstQueuedAt);
    this.#timer = setTimeout(() => void this.flush(), Math.max(0, Math.min(this.coalesce.quietMs, left)));
    // A queued batch does not keep the process alive; close() sends it on shutdown.
    this.#timer.unref();
  }

  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#queued;
    this.#queued = [];
    if (batch.length > 0) {
      const delivery = this.deliver(batch);
      this.#inFlight.add(delivery);
      void delivery.finally(() => this.#inFlight.delete(delivery));
    }
    await Promise.all(this.#inFlight);
  }

  async deliver(events: readonly AlertEvent[], options: { test?: boolean } = {}): Promise<ChannelOutcome[]> {
    if (events.length === 0) return [];
    const test = options.test ?? false;
    return Promise.all(
      this.channels.map(async (channel): Promise<ChannelOutcome> => {
        const base = { channel: channel.name, target: channel.target };
        try {
          const { attempts } = await channel.send(events, { test });
          // 0 attempts: nothing in the batch was for this channel (no owner's webhook wanted any of it).
          if (attempts > 0) this.log.info({ ...base, attempts, events: events.length, test }, 'alert notification delivered');
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

  async close(): Promise<void> {
    await this.flush();
    for (const channel of this.channels) channel.close();
  }
}

/**
 * The notifier for the configured channels (SMTP_URL, ALERT_WEBHOOK_URL);
 * with none configured it has no channels and does nothing. `retry` is for
 * tests and for the dashboard's test button (one attempt, an answer at once),
 * `coalesce` for tests. `recipients` finds the owners' own addresses
 * (alertRecipientLookup on the database); without it email goes to the
 * ALERT_EMAIL_TO admins only. `webhooks` finds the owners' own webhooks
 * (alertWebhookLookup); with it there is always that channel, whether or not
 * the server has a webhook of its own.
 */
export function createNotifier(
  config: ServerConfig,
  log: Logger,
  options: { retry?: Partial<RetryPolicy>; coalesce?: CoalescePolicy; recipients?: AlertRecipientLookup; webhooks?: AlertWebhookLookup } = {},
): CompositeNotifier {
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  const { email, webhook } = config.notifications;
  const channels: NotificationChannel[] = [];
  if (email) channels.push(new EmailNotifier(email, config.publicUrl, retry, log, options.recipients));
  if (webhook) channels.push(new WebhookNotifier(webhook, config.publicUrl, retry, log));
  if (options.webhooks) channels.push(new OwnerWebhookNotifier(options.webhooks, config.publicUrl, retry, log));
  return new CompositeNotifier(channels, log, options.coalesce);
}
