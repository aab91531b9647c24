import { createRequire } from 'node:module';
import type { Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import type { AlertEvent } from '../alert-event.ts';
import type { NotificationsConfig } from '../../config/server-config.ts';
import type { AlertRecipientLookup } from '../../services/alert-recipients.service.ts';
import { buildDigest, digestSubject, digestText } from './alert-digest.ts';
import { describeError, type RetryPolicy, withRetries } from './delivery-retry.ts';
import type { NotificationChannel } from './notification-channel.ts';

/** Alerts spelled out in one email; the rest are counted (decision 75). */
export const EMAIL_MAX_LISTED = 20;

type EmailConfig = NonNullable<NotificationsConfig['email']>;

/** Failures a later try can fix: no SMTP reply at all (network, timeout) or a 4xx ("try again later") reply. */
function isTransientSmtpError(error: unknown): boolean {
  const { responseCode, code } = (error ?? {}) as { responseCode?: unknown; code?: unknown };
  if (typeof responseCode === 'number') return responseCode >= 400 && responseCode < 500;
  return code !== 'EAUTH' && code !== 'EENVELOPE' && code !== 'EMESSAGE';
}

/**
 * Per engine pass, one email to the admin recipients (ALERT_EMAIL_TO, every
 * event) and one to each owner who chose an address and types: only the
 * events of their own clients of those types (decision 89). Server-wide
 * events (no owner) go to the admins only.
 */
export class EmailNotifier implements NotificationChannel {
  readonly name = 'email';
  readonly target: string;
  readonly #transport: Transporter;

  private readonly config: EmailConfig;
  private readonly publicUrl: string;
  private readonly retry: RetryPolicy;
  private readonly log: Logger;
  /** Looked up at each send, so a changed address applies to the next pass; none = admins only. */
  private readonly recipients?: AlertRecipientLookup;
  constructor(
    config: EmailConfig,
    publicUrl: string,
    retry: RetryPolicy,
    log: Logger,
    recipients?: AlertRecipientLookup,
  ) {
    this.config = config;
    this.publicUrl = publicUrl;
    this.retry = retry;
    this.log = log;
    this.recipients = recipients;
    const { smtp } = config;
    this.target = `${config.to.join(', ')}${recipients ? ' and owners' : ''} via ${smtp.host}:${smtp.port}`;
    // Loaded only when email is configured: nodemailer costs some 90 ms and 13 MiB at every start-up otherwise (decision 170).
    const nodemailer = createRequire(import.meta.url)('nodemailer') as typeof import('nodemailer');
    this.#transport = nodemailer.createTransport({
      host: smtp.host,
      port: smtp.port,
      secure: smtp.secure,
      auth: smtp.user === undefined ? undefined : { user: smtp.user, pass: smtp.password ?? '' },
      // nodemailer waits up to 2 minutes by default; an engine pass should not.
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    });
  }

  async send(events: readonly AlertEvent[], options: { test: boolean }): Promise<{ attempts: number }> {
    const messages: { to: string[]; events: readonly AlertEvent[] }[] = [{ to: this.config.to, events }];
    let failure: unknown;
    if (this.recipients && !options.test) {
      const ownerIds = [...new Set(events.flatMap((event) => (event.alert.ownerId === null ? [] : [event.alert.ownerId])))];
      try {
        for (const recipient of await this.recipients(ownerIds)) {
          const theirs = events.filter((event) => event.alert.ownerId === recipient.userId && recipient.types.includes(event.alert.type));
          if (theirs.length > 0) messages.push({ to: [recipient.email], events: theirs });
        }
      } catch (error) {
        // The admins still get the pass when the owners' addresses cannot be read.
        failure = error;
      }
    }
    // Every recipient gets its try even when an earlier one failed; the channel fails if any did.
    let attempts = 0;
    for (const message of messages) {
      try {
        attempts = Math.max(attempts, (await this.#sendOne(message.to, message.events, options.test)).attempts);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
    return { attempts };
  }

  async #sendOne(to: string[], events: readonly AlertEvent[], test: boolean): Promise<{ attempts: number }> {
    const digest = buildDigest(events, { maxListed: EMAIL_MAX_LISTED, publicUrl: this.publicUrl, test });
    const message = { from: this.config.from, to, subject: digestSubject(digest), text: digestText(digest) };
    return withRetries(
      this.retry,
      () => this.#transport.sendMail(message),
      isTransientSmtpError,
      (error, n, delayMs) =>
        this.log.warn({ channel: this.name, target: this.target, attempt: n, delayMs: Math.round(delayMs), error: describeError(error) }, 'alert email failed, retrying'),
    );
  }

  close(): void {
    this.#transport.close();
  }
}
