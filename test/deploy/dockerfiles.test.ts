/**
 * The Dockerfiles pass a real Dockerfile linter (dockerfile-utils, the
 * validator behind the Dockerfile language server, with every optional rule
 * raised to an error), and keep the properties the deployment relies on.
 * See docs/decisions.md for why this linter and not hadolint/dockerfilelint.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { validate, ValidationSeverity, type ValidatorSettings } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/processes.ts';
import { COMPOSE_FILES, DOCKERFILES, readComposeTemplate, readFinalStage, readRepoFile, serviceRole, type Role } from './deploy-files.ts';

const STRICT: ValidatorSettings = {
  deprecatedMaintainer: ValidationSeverity.ERROR,
  directiveCasing: ValidationSeverity.ERROR,
  emptyContinuationLine: ValidationSeverity.ERROR,
  instructionCasing: ValidationSeverity.ERROR,
  instructionCmdMultiple: ValidationSeverity.ERROR,
  instructionEntrypointMultiple: ValidationSeverity.ERROR,
  instructionHealthcheckMultiple: ValidationSeverity.ERROR,
  instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
  instructionWorkdirRelative: ValidationSeverity.ERROR,
};

function lint(content: string): string[] {
  return validate(content, STRICT).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
}

const EXPECTED: Record<Role, { port: number; volume: string; portVariable: string }> = {
  server: { port: 8000, volume: '/data', portVariable: 'PORT' },
  agent: { port: 8080, volume: '/config', portVariable: 'CLIENT_UI_PORT' },
};

describe.each(Object.entries(DOCKERFILES) as [Role, string][])('%s image (%s)', (role, dockerfile) => {
  const content = readRepoFile(dockerfile);
  const stage = readFinalStage(dockerfile);
  const expected = EXPECTED[role];

  it('passes the Dockerfile linter with every rule as an error', () => {
    expect(lint(content)).toEqual([]);
  });

  it('the linter catches a broken Dockerfile (the lint is not vacuous)', () => {
    const broken = `${content}\nHEALTHCHEK CMD true\nWORKDIR relative\nCMD ["again"]\n`;
    expect(lint(broken).length).toBeGreaterThanOrEqual(3);
  });

  it('is multi-stage on node:24-slim', () => {
    expect(content.match(/^FROM node:24-slim\b/gm)?.length).toBeGreaterThanOrEqual(2);
    expect(stage.baseImage).toBe('node:24-slim');
  });

  it('installs production dependencies only, from the lockfile, for its own workspace', () => {
    const workspace = role === 'server' ? '@cairn/server' : '@cairn/agent';
    expect(content).toMatch(new RegExp(`npm ci --omit=dev --workspace=${workspace}\\b`));
    expect(content).not.toMatch(/npm install/);
  });

  it('runs its TypeScript entry point with node alone, no loader (Node 24 strips the types; decision 182)', () => {
    expect(stage.command[0]).toBe('node');
    for (const flag of ['--import', '--loader', '--experimental-loader', '--require', '-r']) expect(stage.command).not.toContain(flag);
    expect(stage.command.join(' ')).not.toMatch(/tsx/);
    expect(content).not.toMatch(/\/opt\/tsx|tsx@/);
  });

  it("keeps Node's compile cache where its user can write, outside the code and the volumes", () => {
    const cache = stage.env.NODE_COMPILE_CACHE ?? '';
    expect(cache.startsWith('/tmp/')).toBe(true);
    expect(stage.volumes.some((volume) => cache.startsWith(`${volume}/`))).toBe(false);
  });

  it('runs as a non-root user', () => {
    expect(stage.user).toBeDefined();
    expect(stage.user).not.toMatch(/^(root|0)(:|$)/);
  });

  it(`keeps its data in the declared volume ${expected.volume}`, () => {
    expect(stage.volumes).toEqual([expected.volume]);
    expect(Object.values(stage.env)).toContain(expected.volume);
  });

  it(`checks its health on /healthz with node itself, on port ${expected.port}`, () => {
    expect(stage.healthcheck?.[0]).toBe('node');
    const script = stage.healthcheck?.at(-1) ?? '';
    expect(script).toContain('/healthz');
    expect(script).toContain(`process.env.${expected.portVariable} || ${expected.port}`);
    expect(stage.env[expected.portVariable]).toBe(String(expected.port));
    expect(content).toMatch(new RegExp(`^EXPOSE ${expected.port}$`, 'm'));
  });

  it('starts an entry point that exists in the repository, in exec form', () => {
    expect(stage.command.length).toBeGreaterThan(0);
    const workdir = stage.workdir ?? '/';
    expect(workdir.startsWith('/app/')).toBe(true);
    const entry = stage.command.find((arg) => arg.endsWith('.ts'));
    expect(entry).toBeDefined();
    expect(existsSync(path.join(REPO_ROOT, workdir.slice('/app/'.length), entry ?? ''))).toBe(true);
  });

  it('cleans up after apt-get and installs no recommended extras', () => {
    for (const run of content.matchAll(/apt-get install[^\n]*/g)) {
      expect(run[0]).toContain('--no-install-recommends');
      expect(content).toContain('rm -rf /var/lib/apt/lists/*');
    }
  });

  if (role === 'agent') {
    it('ships the PostgreSQL and MySQL client tools for dump pre-commands', () => {
      expect(content).toMatch(/apt-get install[^\n]*\bpostgresql-client\b/);
      expect(content).toMatch(/apt-get install[^\n]*\b(default-mysql-client|mariadb-client)\b/);
    });
  }
});

describe('writable mounts', () => {
  it.each(COMPOSE_FILES)('%s mounts named volumes only on directories the image creates for its user', (file) => {
    for (const service of Object.values(readComposeTemplate(file).services)) {
      const role = serviceRole(service);
      if (role === undefined) continue;
      const content = readRepoFile(DOCKERFILES[role]);
      const user = readFinalStage(DOCKERFILES[role]).user ?? '';
      const created = [...content.matchAll(/mkdir -p ([^&\n]+)/g)].flatMap((m) => (m[1] ?? '').trim().split(/\s+/));
      const owned = [...content.matchAll(new RegExp(`chown ${user}:${user} ([^&\\n]+)`, 'g'))].flatMap((m) => (m[1] ?? '').trim().split(/\s+/));
      const namedTargets = (service.volumes ?? [])
        .map((v) => (typeof v === 'string' ? v.split(':') : [v.source ?? '', v.target]))
        .filter(([source]) => source !== undefined && /^[a-z0-9][\w.-]*$/i.test(source))
        .map(([, target]) => target ?? '');
      expect(namedTargets.length).toBeGreaterThan(0);
      for (const target of namedTargets) {
        expect(created, `${DOCKERFILES[role]} must create ${target}`).toContain(target);
        expect(owned, `${DOCKERFILES[role]} must give ${target} to ${user}`).toContain(target);
      }
    }
  });
});

describe('.dockerignore', () => {
  it('keeps local state, secrets and installed modules out of the build context', () => {
    const ignored = readRepoFile('.dockerignore').split('\n').map((line) => line.trim());
    for (const entry of ['.git', '**/node_modules', '.env', 'data', '.tmp']) expect(ignored).toContain(entry);
  });
});
