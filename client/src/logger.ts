import pino, { type Logger } from 'pino';
import type { LogLevelName } from './config/agent-config.ts';

export type { Logger };

/** Structured JSON logs on stdout. Secrets are redacted wherever they appear under these keys. */
export function createLogger(level: LogLevelName): Logger {
  return pino({
    level,
    base: { component: 'agent' },
    redact: {
      paths: ['token', 'password', 'enrollmentKey', '*.token', '*.password', '*.enrollmentKey', 'authorization', '*.authorization', 'headers.authorization'],
      censor: '[redacted]',
    },
  });
}
