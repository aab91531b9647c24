import { pino, type Logger, type LoggerOptions } from 'pino';

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
];

export function createLogger(level: LoggerOptions['level'] = 'info', name = 'cairn-server'): Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}
