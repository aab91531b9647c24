import nodemailer, { type Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import type { AlertEvent } from '../alert-event.ts';
import type { NotificationsConfig } from '../../config/server-config.ts';
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

/** One email per engine pass to the admin recipients (per-user recipients are for later). */
export class EmailNotifier implements NotificationChannel {
  readonly name = 'email';
  readonly target: string;
  readonly #transport: Transporter;

  constructor(
    private readonly config: EmailConfig,
    private readonly publicUrl: string,
    private readonly retry: RetryPolicy,
    private readonly log: Logger,
  ) {
    const { smtp } = config;
    this.target = `${config.to.join(', ')} via ${smtp.host}:${smtp.port}`;
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
    const digest = buildDigest(events, { maxListed: EMAIL_MAX_LISTED, publicUrl: this.publicUrl, test: options.test });
    const message = { from: this.config.from, to: this.config.to, subject: digestSubject(digest), text: digestText(digest) };
    const { attempts } = await withRetries(
      this.retry,
      () => this.#transport.sendMail(message),
      isTransientSmtpError,
      (error, n, delayMs) =>
        this.log.warn({ channel: this.name, target: this.target, attempt: n, delayMs: Math.round(delayMs), error: describeError(error) }, 'alert email failed, retrying'),
    );
    return { attempts };
  }

  close(): void {
    this.#transport.close();
  }
}
