import { readFileSync } from 'node:fs';
import path from 'node:path';
import { EnvReader, variablesRead, type Env } from '@cairn/shared/env';
import { DatabaseUrlError, parseDatabaseUrl } from '../db/database-url.ts';

export interface S3Config {
  bucket: string;
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
}

/** Where the replica store is (decision 161): a second disk path, or a second S3 bucket. */
export type ReplicaStoreConfig = { kind: 'disk'; dir: string } | { kind: 's3'; s3: S3Config };

export interface ReplicaConfig {
  store: ReplicaStoreConfig;
  /** Period of the replication pass. */
  intervalSeconds: number;
  /** A copy is deleted from the replica this long after GC deleted the object from the primary (decision 162). */
  deleteGraceSeconds: number;
  /** Period of the metadata export to the replica (decision 167): how much a rebuild from the replica alone can lose. */
  exportIntervalSeconds: number;
  /** Exports kept however old (beyond them, the newest of each day within deleteGraceSeconds). */
  exportKeep: number;
}

/** SMTP server alert emails go through (from SMTP_URL; the password is never logged). */
export interface SmtpConfig {
  host: string;
  port: number;
  /** TLS from the first byte (smtps://); smtp:// upgrades with STARTTLS when the server offers it. */
  secure: boolean;
  user: string | undefined;
  password: string | undefined;
}

export interface NotificationsConfig {
  /** Unset: no alert emails. Recipients are the admins listed in ALERT_EMAIL_TO. */
  email: { smtp: SmtpConfig; from: string; to: string[] } | undefined;
  /** Unset: no webhook. The secret signs each body (decision 74). */
  webhook: { url: string; secret: string } | undefined;
}

export interface ServerConfig {
  port: number;
  host: string;
  dataDir: string;
  /** Where the server is reached by people and agents; used in links. */
  publicUrl: string;
  /** PUBLIC_URL was set, so publicUrl is an address people reach, not the localhost default. */
  publicUrlConfigured: boolean;
  databaseUrl: string | undefined;
  /** Where PGlite comes from if an earlier release's DATA_DIR/db must be imported (decision 95). */
  pgliteImport: {
    /** PGLITE_IMPORT_MODULE: an unpacked @electric-sql/pglite package; nothing is fetched. */
    moduleDir: string | undefined;
    /** PGLITE_IMPORT_CACHE_DIR: where the fetched package is kept; unset: DATA_DIR/pglite-import, removed after the import. */
    cacheDir: string | undefined;
  };
  s3: S3Config | undefined;
  /** The optional second store every pack is copied to; unset: no replica. */
  replica: ReplicaConfig | undefined;
  adminUsername: string;
  adminPassword: string | undefined;
  /** Signs session cookies; null means "generate one and keep it under DATA_DIR" (single replica only). */
  secretKey: string | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  trustProxy: boolean;
  /** Bearer token a Prometheus scraper sends to GET /metrics; unset: no /metrics route (404). */
  metricsToken: string | undefined;
  retention: {
    defaultVersions: number;
    defaultDays: number | undefined;
    sweepIntervalSeconds: number;
  };
  gc: {
    /** Unreferenced contents younger (or more recently touched) than this are kept. */
    graceSeconds: number;
    intervalSeconds: number;
  };
  verify: {
    /** Period of the scheduled verify run; 0: only on demand. */
    intervalSeconds: number;
    /** Every pack is read at least once in this many days: each run reads its share. */
    fullPassDays: number;
  };
  alerts: {
    /** Period of the alert engine's pass over every client (it also runs after each finished run). */
    intervalSeconds: number;
    /** The S3 store's capacity for the storage-filling alert; absent: S3 has no limit to warn about. */
    s3CapacityBytes: number | undefined;
    /** replica_lagging opens when the oldest pack not yet on the replica was committed longer ago than this. */
    replicaLagSeconds: number;
  };
  limits: {
    /** Largest single uploaded part (one file's content). */
    maxPartBytes: number;
    maxParts: number;
    maxJsonBodyBytes: number;
  };
  session: {
    idleMinutes: number;
    /** A session ends this long after sign-in, however active (issue 14). */
    maxHours: number;
  };
  notifications: NotificationsConfig;
  cluster: {
    /** How often this replica updates its row in `servers` (decision 149). */
    heartbeatSeconds: number;
    /** A replica whose last heartbeat is older than this is shown as lost. */
    lostAfterSeconds: number;
  };
}

const EMAIL_ADDRESS = /^[^\s@<>,;"]+@[^\s@<>,;"]+$/;
/** A bare address or `Display Name <address>`. */
// eslint-disable-next-line no-control-regex -- control characters (a line break) are what the display name must not hold
const EMAIL_FROM = /^(?:[^<>@,;"\x00-\x1f\x7f]*<[^\s@<>,;"]+@[^\s@<>,;"]+>|[^\s@<>,;"]+@[^\s@<>,;"]+)$/;
const MIN_WEBHOOK_SECRET_LENGTH = 16;

/** Parses SMTP_URL; problems never quote the value, which holds a password. */
function parseSmtpUrl(raw: string, problems: string[]): SmtpConfig | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    problems.push('SMTP_URL must be a URL such as smtps://user:password@smtp.example.com:465 (the value is not shown: it may hold a password)');
    return undefined;
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') {
    problems.push(`SMTP_URL must start with smtp:// or smtps://, got "${url.protocol}//"`);
    return undefined;
  }
  if (url.hostname === '') {
    problems.push('SMTP_URL must name the SMTP host (smtp://user:password@host:port)');
    return undefined;
  }
  const secure = url.protocol === 'smtps:';
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? (secure ? 465 : 587) : Number(url.port),
    secure,
    user: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
  };
}

function readNotifications(r: EnvReader): NotificationsConfig {
  // Every variable is read whatever the others hold, so variablesRead() sees them all.
  const smtpUrl = r.optionalString('SMTP_URL');
  const from = r.optionalString('ALERT_EMAIL_FROM');
  const toText = r.optionalString('ALERT_EMAIL_TO');
  const webhookUrl = r.optionalString('ALERT_WEBHOOK_URL');
  const webhookSecret = r.optionalString('ALERT_WEBHOOK_SECRET');

  let email: NotificationsConfig['email'];
  if (smtpUrl === undefined) {
    if (from !== undefined || toText !== undefined) r.problems.push('ALERT_EMAIL_FROM and ALERT_EMAIL_TO need SMTP_URL (the server that sends the emails)');
  } else {
    const smtp = parseSmtpUrl(smtpUrl, r.problems);
    if (from === undefined) r.problems.push('ALERT_EMAIL_FROM is required with SMTP_URL (e.g. "Cairn <cairn@example.com>")');
    else if (!EMAIL_FROM.test(from)) r.problems.push(`ALERT_EMAIL_FROM must be an address or "Name <address>", got "${from}"`);
    const to = (toText ?? '').split(',').map((address) => address.trim()).filter((address) => address !== '');
    if (to.length === 0) r.problems.push('ALERT_EMAIL_TO is required with SMTP_URL (comma-separated addresses)');
    const bad = to.filter((address) => !EMAIL_ADDRESS.test(address));
    if (bad.length > 0) r.problems.push(`ALERT_EMAIL_TO must be comma-separated addresses, not "${bad.join('", "')}"`);
    if (smtp && from !== undefined && to.length > 0) email = { smtp, from, to };
  }

  let webhook: NotificationsConfig['webhook'];
  if (webhookUrl === undefined) {
    if (webhookSecret !== undefined) r.problems.push('ALERT_WEBHOOK_SECRET needs ALERT_WEBHOOK_URL');
  } else {
    let valid = false;
    try {
      const url = new URL(webhookUrl);
      valid = url.protocol === 'http:' || url.protocol === 'https:';
    } catch {
      // reported below
    }
    // Not quoted: a webhook URL often carries a token in its path or query.
    if (!valid) r.problems.push('ALERT_WEBHOOK_URL must be an http(s) URL');
    if (webhookSecret === undefined || webhookSecret.length < MIN_WEBHOOK_SECRET_LENGTH) {
      r.problems.push(`ALERT_WEBHOOK_SECRET is required with ALERT_WEBHOOK_URL, at least ${MIN_WEBHOOK_SECRET_LENGTH} characters (try: openssl rand -hex 32)`);
    } else if (valid) {
      webhook = { url: webhookUrl, secret: webhookSecret };
    }
  }
  return { email, webhook };
}

/**
 * REPLICA_DIR or REPLICA_S3_* (never both), read whatever is set so
 * variablesRead() sees them all. The replica must be another place than the
 * primary: a copy in the same directory or bucket is no second copy.
 */
function readReplica(r: EnvReader, primary: { dataDir: string; s3: S3Config | undefined }): ReplicaConfig | undefined {
  const dirText = r.optionalString('REPLICA_DIR');
  const bucket = r.optionalString('REPLICA_S3_BUCKET');
  const endpoint = r.url('REPLICA_S3_ENDPOINT');
  const forcePathStyle = r.boolean('REPLICA_S3_FORCE_PATH_STYLE', endpoint !== undefined);
  const region = r.string('REPLICA_S3_REGION', 'us-east-1');
  const accessKeyId = r.optionalString('REPLICA_S3_ACCESS_KEY_ID');
  const secretAccessKey = r.optionalString('REPLICA_S3_SECRET_ACCESS_KEY');
  const intervalSeconds = r.integer('REPLICA_INTERVAL_SECONDS', 60, 1, 86_400);
  const deleteGraceSeconds = r.integer('REPLICA_DELETE_GRACE_SECONDS', 7 * 86_400, 0);
  const exportIntervalSeconds = r.integer('REPLICA_EXPORT_INTERVAL_SECONDS', 3600, 1, 7 * 86_400);
  const exportKeep = r.integer('REPLICA_EXPORT_KEEP', 24, 1, 10_000);
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    r.problems.push('REPLICA_S3_ACCESS_KEY_ID and REPLICA_S3_SECRET_ACCESS_KEY must be set together');
  }
  if (dirText !== undefined && bucket !== undefined) {
    r.problems.push('REPLICA_DIR and REPLICA_S3_BUCKET cannot both be set: the replica is one store, a directory or a bucket');
    return undefined;
  }
  if (bucket === undefined && (endpoint !== undefined || accessKeyId !== undefined)) {
    r.problems.push('REPLICA_S3_ENDPOINT and REPLICA_S3_ACCESS_KEY_ID need REPLICA_S3_BUCKET (the replica bucket)');
  }
  if (dirText !== undefined) {
    const dir = path.resolve(dirText);
    const primaryDir = path.join(primary.dataDir, 'blobs');
    if (primary.s3 === undefined && (dir === primaryDir || dir.startsWith(`${primaryDir}${path.sep}`) || primaryDir.startsWith(`${dir}${path.sep}`))) {
      r.problems.push(`REPLICA_DIR must be another directory than the primary store (${primaryDir}) and not inside it or around it, got "${dir}"`);
      return undefined;
    }
    return { store: { kind: 'disk', dir }, intervalSeconds, deleteGraceSeconds, exportIntervalSeconds, exportKeep };
  }
  if (bucket === undefined) return undefined;
  if (primary.s3 !== undefined && primary.s3.bucket === bucket && primary.s3.endpoint === endpoint) {
    r.problems.push(`REPLICA_S3_BUCKET must be another bucket (or REPLICA_S3_ENDPOINT another endpoint) than the primary's S3_BUCKET "${bucket}"`);
    return undefined;
  }
  return { store: { kind: 's3', s3: { bucket, endpoint, region, forcePathStyle, accessKeyId, secretAccessKey } }, intervalSeconds, deleteGraceSeconds, exportIntervalSeconds, exportKeep };
}

/** Whether `dir` holds the package.json of @electric-sql/pglite. */
function isPglitePackage(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown }).name === '@electric-sql/pglite';
  } catch {
    return false;
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * Reads and validates the server's configuration once, at start-up. Every
 * problem is listed in one ConfigError. Nothing else in the server reads the
 * environment.
 */
export function loadServerConfig(env: Env): ServerConfig {
  const r = new EnvReader(env);
  const port = r.integer('PORT', 8000, 0, 65535);
  const host = r.string('HOST', '0.0.0.0');
  const dataDir = path.resolve(r.string('DATA_DIR', './data'));
  const configuredPublicUrl = r.url('PUBLIC_URL');
  const publicUrl = configuredPublicUrl ?? `http://localhost:${port}`;
  const databaseUrl = r.optionalString('DATABASE_URL');
  if (databaseUrl !== undefined) {
    try {
      parseDatabaseUrl(databaseUrl);
    } catch (error) {
      if (!(error instanceof DatabaseUrlError)) throw error;
      r.problems.push(error.message);
    }
  }
  const pgliteModule = r.optionalString('PGLITE_IMPORT_MODULE');
  if (pgliteModule !== undefined && !isPglitePackage(pgliteModule)) {
    r.problems.push(`PGLITE_IMPORT_MODULE must be the directory of an unpacked @electric-sql/pglite package (the one holding its package.json), got "${pgliteModule}"`);
  }
  const pgliteCache = r.optionalString('PGLITE_IMPORT_CACHE_DIR');
  const bucket = r.optionalString('S3_BUCKET');
  const s3Endpoint = r.url('S3_ENDPOINT');
  const forcePathStyle = r.boolean('S3_FORCE_PATH_STYLE', s3Endpoint !== undefined);
  const region = r.string('AWS_REGION', 'us-east-1');
  const accessKeyId = r.optionalString('AWS_ACCESS_KEY_ID');
  const secretAccessKey = r.optionalString('AWS_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    r.problems.push('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together');
  }
  const secretKey = r.optionalString('SECRET_KEY');
  if (secretKey !== undefined && secretKey.length < 32) {
    r.problems.push('SECRET_KEY must be at least 32 characters (try: openssl rand -hex 32)');
  }
  const adminPassword = r.optionalString('ADMIN_PASSWORD');
  if (adminPassword !== undefined && adminPassword.length < 8) {
    r.problems.push('ADMIN_PASSWORD must be at least 8 characters');
  }
  const metricsToken = r.optionalString('METRICS_TOKEN');
  if (metricsToken !== undefined && !/^[\x21-\x7e]{32,}$/.test(metricsToken)) {
    r.problems.push('METRICS_TOKEN must be at least 32 visible ASCII characters, no spaces (try: openssl rand -hex 32)');
  }
  const heartbeatSeconds = r.integer('CLUSTER_HEARTBEAT_SECONDS', 10, 1, 3600);
  const lostAfterSeconds = r.integer('CLUSTER_LOST_AFTER_SECONDS', 60, 2, 86_400);
  if (lostAfterSeconds < 2 * heartbeatSeconds) {
    r.problems.push(`CLUSTER_LOST_AFTER_SECONDS must be at least twice CLUSTER_HEARTBEAT_SECONDS (${2 * heartbeatSeconds}), got ${lostAfterSeconds}: one late heartbeat must not make a replica look lost`);
  }
  const s3: S3Config | undefined =
    bucket === undefined ? undefined : { bucket, endpoint: s3Endpoint, region, forcePathStyle, accessKeyId, secretAccessKey };
  const replica = readReplica(r, { dataDir, s3 });
  const config: ServerConfig = {
    port,
    host,
    dataDir,
    publicUrl,
    publicUrlConfigured: configuredPublicUrl !== undefined,
    databaseUrl,
    pgliteImport: {
      moduleDir: pgliteModule === undefined ? undefined : path.resolve(pgliteModule),
      cacheDir: pgliteCache === undefined ? undefined : path.resolve(pgliteCache),
    },
    s3,
    replica,
    adminUsername: r.string('ADMIN_USERNAME', 'admin'),
    adminPassword,
    secretKey,
    logLevel: r.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    trustProxy: r.boolean('TRUST_PROXY', false),
    metricsToken,
    retention: {
      defaultVersions: r.integer('DEFAULT_RETENTION_VERSIONS', 30, 1, 100_000),
      defaultDays: r.optionalInteger('DEFAULT_RETENTION_DAYS', 1, 36_500),
      sweepIntervalSeconds: r.integer('RETENTION_SWEEP_INTERVAL_SECONDS', 3600, 10),
    },
    gc: {
      graceSeconds: r.integer('GC_GRACE_SECONDS', 86_400, 0),
      intervalSeconds: r.integer('GC_INTERVAL_SECONDS', 3600, 10),
    },
    verify: {
      intervalSeconds: r.integer('VERIFY_INTERVAL_SECONDS', 86_400, 0),
      fullPassDays: r.integer('VERIFY_FULL_PASS_DAYS', 30, 1, 3650),
    },
    alerts: {
      intervalSeconds: r.integer('ALERTS_INTERVAL_SECONDS', 300, 10),
      s3CapacityBytes: r.optionalInteger('S3_CAPACITY_BYTES', 1, Number.MAX_SAFE_INTEGER),
      replicaLagSeconds: r.integer('REPLICA_LAG_ALERT_SECONDS', 6 * 3600, 60),
    },
    limits: {
      maxPartBytes: r.integer('MAX_UPLOAD_PART_BYTES', 64 * 1024 ** 3, 1),
      maxParts: r.integer('MAX_UPLOAD_PARTS', 1000, 1, 100_000),
      maxJsonBodyBytes: r.integer('MAX_JSON_BODY_BYTES', 16 * 1024 * 1024, 1024),
    },
    session: {
      idleMinutes: r.integer('SESSION_IDLE_MINUTES', 60, 1, 60 * 24 * 30),
      maxHours: r.integer('SESSION_MAX_HOURS', 24 * 7, 1, 24 * 365),
    },
    notifications: readNotifications(r),
    cluster: { heartbeatSeconds, lostAfterSeconds },
  };
  r.done();
  return config;
}

/** The names of every variable the server reads; the compose/env checks compare against it. */
export function serverConfigVariables(): string[] {
  return [...variablesRead(loadServerConfig)].sort();
}
