import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/**
 * Structured JSON logs. Anything that could carry a secret is redacted here,
 * once, whatever the call site logs.
 */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'secretKey',
  '*.secretKey',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'AWS_SECRET_ACCESS_KEY',
  '*.secretAccessKey',
  // Webhook signing keys: an owner's webhook row ({ url, secret, ... }) and the form field.
  'secret',
  '*.secret',
  'alertWebhookSecret',
  '*.alertWebhookSecret',
];

/** `destination` defaults to stdout; tests pass a sink to read what was logged. */
export function createLogger(level: LoggerOptions['level'] = 'info', name = 'cairn-server', destination?: DestinationStream): Logger {
  const options: LoggerOptions = { name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return destination === undefined ? pino(options) : pino(options, destination);
}
