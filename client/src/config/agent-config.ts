import os from 'node:os';
import path from 'node:path';
import { EnvReader, normaliseBackupPath, variablesRead, type Env } from '@cairn/shared';
import { formatServerUrls, parseServerUrls } from '../net/server-urls.ts';

export type LogLevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * What env mode needs to register by itself: an enrollment key from the
 * dashboard (ENROLLMENT_KEY), or a user's name and password.
 */
export type EnvCredentials = { serverUrl: string } & ({ enrollmentKey: string } | { username: string; password: string });

export interface AgentConfig {
  uiEnabled: boolean;
  uiPort: number;
  uiHost: string;
  stateDir: string;
  /** Set in env mode (CLIENT_UI_ENABLED=false); the UI mode's form may be pre-filled from the same variables. */
  credentials: EnvCredentials | undefined;
  /** Pre-fill values for the setup form (never the password). */
  setupDefaults: { serverUrl: string; username: string; monitoredPaths: string[] };
  clientName: string;
  hostname: string;
  monitoredPaths: string[];
  excludes: string[];
  preCommands: string[];
  preCommandTimeoutSeconds: number;
  /** Local override of the server's schedule; undefined means "use the server's value". */
  pingIntervalSeconds: number | undefined;
  backupIntervalSeconds: number | undefined;
  allowRemoteCommands: boolean;
  /** When set, server-pushed commands must equal one of these exactly. */
  remoteCommandAllowlist: string[] | undefined;
  hashConcurrency: number;
  logLevel: LogLevelName;
}

export const DEFAULT_PING_INTERVAL_SECONDS = 300;
export const DEFAULT_BACKUP_INTERVAL_SECONDS = 3600;

/**
 * A list variable: a JSON array of strings when it starts with `[` (for items
 * that contain the separator), otherwise split on `separator`.
 */
export function parseList(raw: string | undefined, separator: string): string[] | { error: string } {
  if (raw === undefined) return [];
  const trimmed = raw.trim();
  if (trimmed.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (Array.isArray(parsed) && parsed.every((item) => typeof item === 'string')) {
        return parsed.map((item) => item.trim()).filter((item) => item !== '');
      }
    } catch {
      // reported below
    }
    return { error: 'must be a JSON array of strings when it starts with "["' };
  }
  return trimmed
    .split(separator)
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Relative paths given on the command line or in the env resolve against where the person ran npm. */
export function resolveUserPath(env: Env, input: string): string {
  return path.resolve(env.INIT_CWD ?? process.cwd(), input);
}

/** `.env` lives where the person ran npm (npm runs the agent's script inside client/). */
export function envFilePath(env: Env): string {
  return resolveUserPath(env, '.env');
}

export function defaultStateDir(env: Env): string {
  return resolveUserPath(env, env.AGENT_STATE_DIR?.trim() || './data/agent');
}

/** Monitored paths must be absolute; they are normalised and de-duplicated. */
export function parseMonitoredPaths(values: string[]): { paths: string[]; invalid: string[] } {
  const paths = new Set<string>();
  const invalid: string[] = [];
  for (const value of values) {
    const normalised = normaliseBackupPath(value);
    if (normalised === null) invalid.push(value);
    else paths.add(normalised);
  }
  return { paths: [...paths], invalid };
}

/**
 * Reads and validates the agent's configuration once, at start-up; every
 * problem is listed in one ConfigError. Nothing else in the agent reads the
 * environment.
 */
export function loadAgentConfig(env: Env): AgentConfig {
  const r = new EnvReader(env);
  const uiEnabled = r.boolean('CLIENT_UI_ENABLED', true);
  const listOf = (name: string, separator: string): string[] => {
    const parsed = parseList(r.optionalString(name), separator);
    if (Array.isArray(parsed)) return parsed;
    r.problems.push(`${name} ${parsed.error}`);
    return [];
  };

  let serverUrl: string | undefined;
  let enrollmentKey: string | undefined;
  let username: string;
  let password: string;
  let monitoredRaw: string[];
  const serverUrls = (raw: string | undefined): string | undefined => {
    if (raw === undefined || raw.trim() === '') return undefined;
    const parsed = parseServerUrls(raw);
    if ('urls' in parsed) return formatServerUrls(parsed.urls);
    r.problems.push(`SERVER_URL must be an http(s) URL, or several separated by commas, got "${raw}"`);
    return undefined;
  };
  if (uiEnabled) {
    serverUrl = serverUrls(r.optionalString('SERVER_URL'));
    username = r.string('USERNAME', '');
    password = '';
    r.optionalString('PASSWORD');
    r.optionalString('ENROLLMENT_KEY');
    monitoredRaw = listOf('MONITORED_PATHS', ',');
  } else {
    const why = 'CLIENT_UI_ENABLED=false configures the agent from the environment only';
    const rawUrl = r.required('SERVER_URL', why);
    serverUrl = serverUrls(rawUrl);
    enrollmentKey = r.optionalString('ENROLLMENT_KEY')?.trim() || undefined;
    if (enrollmentKey === undefined) {
      username = r.required('USERNAME', `${why}: set ENROLLMENT_KEY, or USERNAME and PASSWORD`);
      password = r.required('PASSWORD', `${why}: set ENROLLMENT_KEY, or USERNAME and PASSWORD`);
    } else {
      // The key decides the account; a password beside it would only be one more secret on the machine.
      username = r.string('USERNAME', '');
      password = '';
      if (r.optionalString('PASSWORD')) r.problems.push('PASSWORD must not be set together with ENROLLMENT_KEY (the key registers this agent)');
    }
    monitoredRaw = listOf('MONITORED_PATHS', ',');
    if (monitoredRaw.length === 0 && !r.problems.some((p) => p.startsWith('MONITORED_PATHS'))) {
      r.problems.push(`MONITORED_PATHS is required (${why}): comma-separated absolute paths`);
    }
  }
  const monitored = parseMonitoredPaths(monitoredRaw);
  if (monitored.invalid.length > 0) {
    r.problems.push(`MONITORED_PATHS must hold absolute paths, got ${monitored.invalid.map((p) => JSON.stringify(p)).join(', ')}`);
  }

  const hostname = os.hostname() || 'localhost';
  const clientName = r.string('CLIENT_NAME', hostname);
  if (clientName.length > 200) r.problems.push('CLIENT_NAME must be at most 200 characters');

  const allowlistRaw = r.optionalString('REMOTE_COMMAND_ALLOWLIST');
  let remoteCommandAllowlist: string[] | undefined;
  if (allowlistRaw !== undefined) {
    const parsed = parseList(allowlistRaw, ';');
    if (Array.isArray(parsed)) remoteCommandAllowlist = parsed;
    else r.problems.push(`REMOTE_COMMAND_ALLOWLIST ${parsed.error}`);
  }

  const config: AgentConfig = {
    uiEnabled,
    uiPort: r.integer('CLIENT_UI_PORT', 8080, 0, 65535),
    uiHost: r.string('CLIENT_UI_HOST', '0.0.0.0'),
    stateDir: resolveUserPath(env, r.string('AGENT_STATE_DIR', './data/agent')),
    credentials:
      uiEnabled || serverUrl === undefined ? undefined : enrollmentKey !== undefined ? { serverUrl, enrollmentKey } : { serverUrl, username, password },
    setupDefaults: { serverUrl: serverUrl ?? '', username, monitoredPaths: monitored.paths },
    clientName,
    hostname,
    monitoredPaths: monitored.paths,
    excludes: listOf('EXCLUDES', ','),
    preCommands: listOf('PRE_COMMANDS', ';'),
    preCommandTimeoutSeconds: r.integer('PRE_COMMAND_TIMEOUT', 3600, 1, 86_400),
    pingIntervalSeconds: r.optionalInteger('PING_INTERVAL', 1, 86_400),
    backupIntervalSeconds: r.optionalInteger('BACKUP_INTERVAL', 1, 366 * 86_400),
    allowRemoteCommands: r.boolean('ALLOW_REMOTE_COMMANDS', true),
    remoteCommandAllowlist,
    hashConcurrency: r.integer('HASH_CONCURRENCY', Math.min(8, Math.max(2, os.availableParallelism() * 2)), 1, 64),
    logLevel: r.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
  };
  r.done();
  return config;
}

/** The names of every variable the agent reads (in either mode); the compose/env checks compare against it. */
export function agentConfigVariables(): string[] {
  const names = new Set<string>();
  for (const uiEnabled of ['true', 'false']) {
    for (const name of variablesRead(loadAgentConfig, { CLIENT_UI_ENABLED: uiEnabled })) names.add(name);
  }
  names.delete('INIT_CWD');
  return [...names].sort();
}
