import { createHmac, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AlertEvent } from '../alert-event.ts';
import type { NotificationsConfig } from '../../config/server-config.ts';
import type { AlertWebhookLookup } from '../../services/alert-recipients.service.ts';
import { buildDigest } from './alert-digest.ts';
import { describeError, type RetryPolicy, withRetries } from './delivery-retry.ts';
import type { NotificationChannel } from './notification-channel.ts';

/** Alerts carried in one webhook body; the rest are counted in `omitted` (decision 75). */
export const WEBHOOK_MAX_LISTED = 100;
export const SIGNATURE_HEADER = 'x-cairn-signature';
export const TIMESTAMP_HEADER = 'x-cairn-timestamp';
export const DELIVERY_HEADER = 'x-cairn-delivery';
const TIMEOUT_MS = 10_000;

type WebhookConfig = NonNullable<NotificationsConfig['webhook']>;

/**
 * The signature of one delivery (decision 74): HMAC-SHA256 with the shared
 * secret over `<timestamp>.<raw body>`, hex, as `sha256=<hex>`. The timestamp
 * (Unix seconds, also sent in its own header) is signed with the body, so a
 * receiver that refuses old timestamps cannot be fed a recorded delivery.
 */
export function webhookSignature(secret: string, timestamp: string, rawBody: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex')}`;
}

/** The body a receiver gets; `omitted` counts the events beyond WEBHOOK_MAX_LISTED. */
export interface WebhookBody {
  type: 'cairn.alerts';
  deliveryId: string;
  test: boolean;
  server: string;
  opened: number;
  resolved: number;
  events: AlertEvent[];
  omitted: number;
}

class WebhookStatusError extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`receiver answered HTTP ${status}`);
    this.status = status;
  }
}

/** Network errors, timeouts, 5xx and 429 are worth another try; any other answer is final. */
function isTransientHttpError(error: unknown): boolean {
  if (error instanceof WebhookStatusError) return error.status >= 500 || error.status === 429;
  return true;
}

/** The URL for logs and the dashboard: no credentials, no query (either may hold a token). */
export function displayUrl(raw: string): string {
  const url = new URL(raw);
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * One signed digest of `events` POSTed to `target`, retried as decision 76
 * says; the global webhook and every owner's webhook send through this.
 */
async function postDigest(
  target: WebhookConfig,
  events: readonly AlertEvent[],
  options: { test: boolean; publicUrl: string; retry: RetryPolicy; log: Logger; channel: string },
): Promise<{ attempts: number }> {
  const digest = buildDigest(events, { maxListed: WEBHOOK_MAX_LISTED, publicUrl: options.publicUrl, test: options.test });
  const body: WebhookBody = {
    type: 'cairn.alerts',
    deliveryId: randomUUID(),
    test: digest.test,
    server: options.publicUrl,
    opened: digest.opened,
    resolved: digest.resolved,
    events: digest.listed,
    omitted: digest.omitted,
  };
  const rawBody = JSON.stringify(body);
  const shown = displayUrl(target.url);
  const { attempts } = await withRetries(
    options.retry,
    () => post(target, body.deliveryId, rawBody),
    isTransientHttpError,
    (error, n, delayMs) =>
      options.log.warn({ channel: options.channel, target: shown, attempt: n, delayMs: Math.round(delayMs), error: describeError(error) }, 'alert webhook failed, retrying'),
  );
  return { attempts };
}

async function post(target: WebhookConfig, deliveryId: string, rawBody: string): Promise<void> {
  // Signed afresh for each try, so a retry carries a current timestamp.
  const timestamp = String(Math.floor(Date.now() / 1000));
  const response = await fetch(target.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'cairn-alerts',
      [TIMESTAMP_HEADER]: timestamp,
      [SIGNATURE_HEADER]: webhookSignature(target.secret, timestamp, rawBody),
      [DELIVERY_HEADER]: deliveryId,
    },
    body: rawBody,
    redirect: 'manual',
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  await response.body?.cancel();
  if (response.status < 200 || response.status > 299) throw new WebhookStatusError(response.status);
}

/** One signed POST per engine pass to ALERT_WEBHOOK_URL. */
export class WebhookNotifier implements NotificationChannel {
  readonly name = 'webhook';
  readonly target: string;

  private readonly config: WebhookConfig;
  private readonly publicUrl: string;
  private readonly retry: RetryPolicy;
  private readonly log: Logger;
  constructor(
    config: WebhookConfig,
    publicUrl: string,
    retry: RetryPolicy,
    log: Logger,
  ) {
    this.config = config;
    this.publicUrl = publicUrl;
    this.retry = retry;
    this.log = log;
    this.target = displayUrl(config.url);
  }

  async send(events: readonly AlertEvent[], options: { test: boolean }): Promise<{ attempts: number }> {
    return postDigest(this.config, events, { test: options.test, publicUrl: this.publicUrl, retry: this.retry, log: this.log, channel: this.name });
  }

  close(): void {}
}

/**
 * Per engine pass, one signed POST to each owner's own webhook with only the
 * events of their clients of the types they chose (decision 96), read from
 * the database at send time. Server-wide events (no owner) never go here.
 * The owners' webhooks are tried side by side, so one slow or failing
 * receiver does not hold back another; the channel fails if any gave up. A
 * test send (the dashboard's button) is for the configured channels only.
 */
export class OwnerWebhookNotifier implements NotificationChannel {
  readonly name = 'owner-webhooks';
  readonly target = "owners' webhooks";

  private readonly webhooks: AlertWebhookLookup;
  private readonly publicUrl: string;
  private readonly retry: RetryPolicy;
  private readonly log: Logger;
  constructor(
    webhooks: AlertWebhookLookup,
    publicUrl: string,
    retry: RetryPolicy,
    log: Logger,
  ) {
    this.webhooks = webhooks;
    this.publicUrl = publicUrl;
    this.retry = retry;
    this.log = log;
  }

  async send(events: readonly AlertEvent[], options: { test: boolean }): Promise<{ attempts: number }> {
    if (options.test) return { attempts: 0 };
    const ownerIds = [...new Set(events.flatMap((event) => (event.alert.ownerId === null ? [] : [event.alert.ownerId])))];
    const deliveries = (await this.webhooks(ownerIds)).flatMap((hook) => {
      const theirs = events.filter((event) => event.alert.ownerId === hook.userId && hook.types.includes(event.alert.type));
      return theirs.length === 0 ? [] : [{ hook, theirs }];
    });
    const results = await Promise.allSettled(
      deliveries.map(({ hook, theirs }) => postDigest(hook, theirs, { test: false, publicUrl: this.publicUrl, retry: this.retry, log: this.log, channel: this.name })),
    );
    let attempts = 0;
    let failure: unknown;
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') {
        attempts = Math.max(attempts, result.value.attempts);
        return;
      }
      failure ??= result.reason;
      const { hook } = deliveries[i]!;
      // Which owner's receiver gave up; the composite's error line only names the channel.
      this.log.warn({ channel: this.name, userId: hook.userId, target: displayUrl(hook.url), error: describeError(result.reason) }, "an owner's alert webhook was not delivered");
    });
    if (failure !== undefined) throw failure;
    return { attempts };
  }

  close(): void {}
}
