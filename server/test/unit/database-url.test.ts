import { describe, expect, it } from 'vitest';
import { DatabaseUrlError, parseDatabaseUrl } from '../../src/db/database-url.ts';

describe('parseDatabaseUrl', () => {
  it.each([
    ['host, port, database and credentials', 'postgres://app:s3cret@db.internal:6432/cairn', { host: 'db.internal', port: 6432, database: 'cairn', username: 'app', password: 's3cret', ssl: false }],
    ['the default port and postgresql://', 'postgresql://app@db/cairn', { host: 'db', port: 5432, database: 'cairn', username: 'app' }],
    ['a socket directory in ?host=', 'postgres://postgres@localhost/cairn?host=/var/run/postgresql', { path: '/var/run/postgresql/.s.PGSQL.5432', database: 'cairn' }],
    ['a socket directory and port in the query', 'postgres:///cairn?host=/tmp/&port=5433&user=me', { path: '/tmp/.s.PGSQL.5433', port: 5433, username: 'me' }],
    ['a percent-encoded socket directory as the host', 'postgres://postgres@%2Fvar%2Frun%2Fpostgresql/cairn', { path: '/var/run/postgresql/.s.PGSQL.5432' }],
    ['a percent-encoded password', 'postgres://app:p%40ss%2Fw@db/cairn', { password: 'p@ss/w' }],
    ['an IPv6 host', 'postgres://app@[::1]:5432/cairn', { host: '::1' }],
    ['sslmode=disable', 'postgres://app@db/cairn?sslmode=disable', { ssl: false }],
    ['sslmode=prefer', 'postgres://app@db/cairn?sslmode=prefer', { ssl: 'prefer' }],
    ['sslmode=require', 'postgres://app@db/cairn?sslmode=require', { ssl: 'require' }],
    ['sslmode=verify-full', 'postgres://app@db/cairn?sslmode=verify-full', { ssl: 'verify-full' }],
    ['dbname, application_name and connect_timeout', 'postgres://app@db?dbname=other&application_name=cairn&connect_timeout=10', { database: 'other', connect_timeout: 10, connection: { application_name: 'cairn' } }],
  ])('accepts %s', (_name, url, expected) => {
    expect(parseDatabaseUrl(url).options).toMatchObject(expected);
  });

  it('checks the certificate chain but not the host name for sslmode=verify-ca', () => {
    const ssl = parseDatabaseUrl('postgres://app@db/cairn?sslmode=verify-ca').options.ssl as { rejectUnauthorized: boolean; checkServerIdentity: () => unknown };
    expect(ssl.rejectUnauthorized).toBe(true);
    expect(ssl.checkServerIdentity()).toBeUndefined();
  });

  it('describes where it connects without the password', () => {
    expect(parseDatabaseUrl('postgres://app:s3cret@db:5432/cairn?sslmode=require').description).toBe('postgres://app@db:5432/cairn?sslmode=require');
    expect(parseDatabaseUrl('postgres://postgres@localhost/cairn?host=/var/run/postgresql').description).toBe('postgres://postgres@localhost:5432/cairn?host=/var/run/postgresql');
  });

  it.each([
    ['another scheme', 'mysql://app@db/cairn', 'must start with postgres://'],
    ['an unparseable URL', 'postgres://app@%zz/cairn', 'DATABASE_URL '],
    ['a port out of range', 'postgres://app@db:99999/cairn', 'DATABASE_URL '],
    ['a port out of range in the query', 'postgres://app@db/cairn?port=0', 'port must be'],
    ['an unknown sslmode', 'postgres://app@db/cairn?sslmode=on', 'sslmode must be one of'],
    ['an unsupported parameter', 'postgres://app@db/cairn?sslrootcert=/ca.pem', 'unsupported parameter "sslrootcert"'],
    ['several hosts', 'postgres://app@db/cairn?host=a,b', 'several hosts'],
    ['a bad connect_timeout', 'postgres://app@db/cairn?connect_timeout=soon', 'connect_timeout'],
  ])('refuses %s in one sentence that does not echo the URL', (_name, url, message) => {
    const attempt = () => parseDatabaseUrl(url.replace('app@', 'app:hunter2@'));
    expect(attempt).toThrow(DatabaseUrlError);
    expect(attempt).toThrow(message);
    try {
      attempt();
    } catch (error) {
      expect((error as Error).message).not.toContain('hunter2');
      expect((error as Error).message).not.toContain('\n');
    }
  });
});
