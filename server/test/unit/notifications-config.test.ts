import { describe, expect, it } from 'vitest';
import { ConfigError } from '@cairn/shared';
import { loadServerConfig } from '../../src/config/server-config.ts';

function problems(env: Record<string, string>): string[] {
  try {
    loadServerConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('notification settings', () => {
  it('are off when nothing is set', () => {
    expect(loadServerConfig({}).notifications).toEqual({ email: undefined, webhook: undefined });
  });

  it('read SMTP_URL into host, port, TLS mode and decoded credentials', () => {
    const config = loadServerConfig({
      SMTP_URL: 'smtps://mailer%40example.com:p%3Ass%2Fword@smtp.example.com',
      ALERT_EMAIL_FROM: 'Cairn <cairn@example.com>',
      ALERT_EMAIL_TO: ' ops@example.com ,lead@example.com,',
    });
    expect(config.notifications.email).toEqual({
      smtp: { host: 'smtp.example.com', port: 465, secure: true, user: 'mailer@example.com', password: 'p:ss/word' },
      from: 'Cairn <cairn@example.com>',
      to: ['ops@example.com', 'lead@example.com'],
    });
    const plain = loadServerConfig({ SMTP_URL: 'smtp://mail.internal:2525', ALERT_EMAIL_FROM: 'cairn@example.com', ALERT_EMAIL_TO: 'ops@example.com' });
    expect(plain.notifications.email?.smtp).toEqual({ host: 'mail.internal', port: 2525, secure: false, user: undefined, password: undefined });
  });

  it('list every problem at once and never quote SMTP_URL, which holds a password', () => {
    const found = problems({
      SMTP_URL: 'https://user:hunter2-secret@smtp.example.com',
      ALERT_EMAIL_FROM: 'not an address',
      ALERT_EMAIL_TO: 'ops@example.com, nobody',
      ALERT_WEBHOOK_URL: 'ftp://hooks.example.com/x?token=abc123',
      ALERT_WEBHOOK_SECRET: 'short',
    });
    expect(found).toEqual([
      'SMTP_URL must start with smtp:// or smtps://, got "https://"',
      'ALERT_EMAIL_FROM must be an address or "Name <address>", got "not an address"',
      'ALERT_EMAIL_TO must be comma-separated addresses, not "nobody"',
      'ALERT_WEBHOOK_URL must be an http(s) URL',
      'ALERT_WEBHOOK_SECRET is required with ALERT_WEBHOOK_URL, at least 16 characters (try: openssl rand -hex 32)',
    ]);
    expect(found.join('\n')).not.toContain('hunter2-secret');
    expect(found.join('\n')).not.toContain('abc123');
    expect(problems({ SMTP_URL: 'not a url :: hunter2' }).join('\n')).not.toContain('hunter2');
    const injected = problems({ SMTP_URL: 'smtp://smtp.example.com', ALERT_EMAIL_FROM: 'Cairn\r\nBcc: x@example.com <cairn@example.com>', ALERT_EMAIL_TO: 'ops@example.com' });
    expect(injected).toHaveLength(1);
    expect(injected[0]).toMatch(/^ALERT_EMAIL_FROM must be an address/);
  });

  it('need their companions', () => {
    expect(problems({ SMTP_URL: 'smtp://smtp.example.com' })).toEqual([
      'ALERT_EMAIL_FROM is required with SMTP_URL (e.g. "Cairn <cairn@example.com>")',
      'ALERT_EMAIL_TO is required with SMTP_URL (comma-separated addresses)',
    ]);
    expect(problems({ ALERT_EMAIL_TO: 'ops@example.com' })).toEqual(['ALERT_EMAIL_FROM and ALERT_EMAIL_TO need SMTP_URL (the server that sends the emails)']);
    expect(problems({ ALERT_WEBHOOK_SECRET: '0123456789abcdef' })).toEqual(['ALERT_WEBHOOK_SECRET needs ALERT_WEBHOOK_URL']);
    expect(problems({ ALERT_WEBHOOK_URL: 'https://hooks.example.com/cairn' })).toHaveLength(1);
  });
});
