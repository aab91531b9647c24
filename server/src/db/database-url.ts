/**
 * DATABASE_URL in libpq's URI form, turned into postgres.js options. The
 * driver's own parser passes unknown query parameters to the server as
 * settings (`?host=/var/run/postgresql` then fails at connect with
 * "unrecognized configuration parameter") and throws raw URIErrors, so the
 * server parses the URL itself and refuses what it does not understand with
 * one sentence naming the part (never echoing the URL, which may hold a
 * password).
 */
import type { Options } from 'postgres';

export class DatabaseUrlError extends Error {
  constructor(message: string) {
    super(`DATABASE_URL ${message}`);
    this.name = 'DatabaseUrlError';
  }
}

const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
type SslMode = (typeof SSL_MODES)[number];

/** The libpq parameters understood in the query string; anything else is refused. */
const QUERY_PARAMETERS = ['host', 'port', 'dbname', 'user', 'password', 'sslmode', 'application_name', 'connect_timeout'] as const;

export interface DatabaseConnection {
  /** Options for `postgres(options)`. */
  options: Options<Record<string, never>>;
  /** Where it connects, for the start-up log; never contains the password. */
  description: string;
}

const EXPECTED = 'postgres://user:password@host:5432/database?sslmode=require (or ?host=/var/run/postgresql for a Unix socket)';

/**
 * Parses a `postgres://` or `postgresql://` URL. A host that starts with `/`
 * (in `?host=`, or percent-encoded in the authority) is a Unix socket
 * directory, as in libpq. Throws DatabaseUrlError.
 */
export function parseDatabaseUrl(text: string): DatabaseConnection {
  if (!/^postgres(ql)?:\/\//.test(text)) throw new DatabaseUrlError('must start with postgres:// or postgresql://');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new DatabaseUrlError(`is not a valid URL; expected ${EXPECTED}`);
  }
  const params = new Map<string, string>();
  for (const [key, value] of url.searchParams) {
    if (!(QUERY_PARAMETERS as readonly string[]).includes(key)) {
      throw new DatabaseUrlError(`has an unsupported parameter "${key}"; supported: ${QUERY_PARAMETERS.join(', ')}`);
    }
    params.set(key, value);
  }

  const host = params.get('host') ?? decodePart(url.hostname, 'host').replace(/^\[(.*)\]$/, '$1');
  if (host.includes(',')) throw new DatabaseUrlError('names several hosts; give one');
  const portText = params.get('port') ?? url.port;
  const port = portText === '' ? 5432 : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new DatabaseUrlError('port must be a number from 1 to 65535');
  const database = params.get('dbname') ?? decodePart(url.pathname.slice(1), 'database name');
  const user = params.get('user') ?? decodePart(url.username, 'user');
  const password = params.get('password') ?? decodePart(url.password, 'password');

  const sslmode = params.get('sslmode');
  if (sslmode !== undefined && !(SSL_MODES as readonly string[]).includes(sslmode)) {
    throw new DatabaseUrlError(`sslmode must be one of ${SSL_MODES.join(', ')}`);
  }
  const connectTimeout = params.get('connect_timeout');
  if (connectTimeout !== undefined && !/^[1-9][0-9]{0,5}$/.test(connectTimeout)) {
    throw new DatabaseUrlError('connect_timeout must be a whole number of seconds');
  }
  const applicationName = params.get('application_name');

  const socketDir = host.startsWith('/') ? host.replace(/\/+$/, '') : undefined;
  const options: Options<Record<string, never>> = {
    host: socketDir ? 'localhost' : host || 'localhost',
    port,
    ...(socketDir && { path: `${socketDir}/.s.PGSQL.${port}` }),
    ...(database && { database }),
    ...(user && { username: user }),
    ...(password && { password }),
    ssl: sslOption((sslmode as SslMode | undefined) ?? 'disable'),
    ...(connectTimeout && { connect_timeout: Number(connectTimeout) }),
    ...(applicationName && { connection: { application_name: applicationName } }),
  };
  const who = user ? `${user}@` : '';
  const query = [socketDir && `host=${socketDir}`, sslmode && `sslmode=${sslmode}`].filter(Boolean).join('&');
  const description = `postgres://${who}${socketDir ? 'localhost' : host || 'localhost'}:${port}/${database}${query ? `?${query}` : ''}`;
  return { options, description };
}

function decodePart(value: string, what: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new DatabaseUrlError(`has a badly percent-encoded ${what}; expected ${EXPECTED}`);
  }
}

/**
 * libpq's sslmode in postgres.js terms. `allow` and `prefer` both try TLS
 * first and fall back to plain (postgres.js has no plain-first mode);
 * `verify-ca` checks the chain but not the host name. Private CAs come in
 * through NODE_EXTRA_CA_CERTS.
 */
function sslOption(mode: SslMode): Options<Record<string, never>>['ssl'] {
  switch (mode) {
    case 'disable':
      return false;
    case 'allow':
    case 'prefer':
      return 'prefer';
    case 'require':
      return 'require';
    case 'verify-ca':
      return { rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      return 'verify-full';
  }
}
