import path from 'node:path';
import { EnvReader, variablesRead, type Env } from '@cairn/shared';
import { DatabaseUrlError, parseDatabaseUrl } from '../db/database-url.ts';

export interface S3Config {
  bucket: string;
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
}

export interface ServerConfig {
  port: number;
  host: string;
  dataDir: string;
  /** Where the server is reached by people and agents; used in links. */
  publicUrl: string;
  databaseUrl: string | undefined;
  s3: S3Config | undefined;
  adminUsername: string;
  adminPassword: string | undefined;
  /** Signs session cookies; null means "generate one and keep it under DATA_DIR" (single replica only). */
  secretKey: string | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  trustProxy: boolean;
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
  alerts: {
    /** Period of the alert engine's pass over every client (it also runs after each finished run). */
    intervalSeconds: number;
  };
  limits: {
    /** Largest single uploaded part (one file's content). */
    maxPartBytes: number;
    maxParts: number;
    maxJsonBodyBytes: number;
  };
  session: {
    idleMinutes: number;
  };
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
  const publicUrl = r.url('PUBLIC_URL') ?? `http://localhost:${port}`;
  const databaseUrl = r.optionalString('DATABASE_URL');
  if (databaseUrl !== undefined) {
    try {
      parseDatabaseUrl(databaseUrl);
    } catch (error) {
      if (!(error instanceof DatabaseUrlError)) throw error;
      r.problems.push(error.message);
    }
  }
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
  const config: ServerConfig = {
    port,
    host,
    dataDir,
    publicUrl,
    databaseUrl,
    s3:
      bucket === undefined
        ? undefined
        : { bucket, endpoint: s3Endpoint, region, forcePathStyle, accessKeyId, secretAccessKey },
    adminUsername: r.string('ADMIN_USERNAME', 'admin'),
    adminPassword,
    secretKey,
    logLevel: r.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    trustProxy: r.boolean('TRUST_PROXY', false),
    retention: {
      defaultVersions: r.integer('DEFAULT_RETENTION_VERSIONS', 30, 1, 100_000),
      defaultDays: r.optionalInteger('DEFAULT_RETENTION_DAYS', 1, 36_500),
      sweepIntervalSeconds: r.integer('RETENTION_SWEEP_INTERVAL_SECONDS', 3600, 10),
    },
    gc: {
      graceSeconds: r.integer('GC_GRACE_SECONDS', 86_400, 0),
      intervalSeconds: r.integer('GC_INTERVAL_SECONDS', 3600, 10),
    },
    alerts: {
      intervalSeconds: r.integer('ALERTS_INTERVAL_SECONDS', 300, 10),
    },
    limits: {
      maxPartBytes: r.integer('MAX_UPLOAD_PART_BYTES', 64 * 1024 ** 3, 1),
      maxParts: r.integer('MAX_UPLOAD_PARTS', 1000, 1, 100_000),
      maxJsonBodyBytes: r.integer('MAX_JSON_BODY_BYTES', 16 * 1024 * 1024, 1024),
    },
    session: {
      idleMinutes: r.integer('SESSION_IDLE_MINUTES', 60, 1, 60 * 24 * 30),
    },
  };
  r.done();
  return config;
}

/** The names of every variable the server reads; the compose/env checks compare against it. */
export function serverConfigVariables(): string[] {
  return [...variablesRead(loadServerConfig)].sort();
}
