import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '@cairn/shared';
import { agentConfigVariables, loadAgentConfig, parseList } from '../../src/config/agent-config.ts';
import { REPO_ROOT, startProcess } from '../../../test/helpers/processes.ts';

const ENV_MODE = {
  CLIENT_UI_ENABLED: 'false',
  SERVER_URL: 'http://backup.example.com:8000/',
  USERNAME: 'alice',
  PASSWORD: 'secret',
  MONITORED_PATHS: '/data, /etc/app',
};

describe('loadAgentConfig', () => {
  it('reads env mode with its defaults', () => {
    const config = loadAgentConfig({ ...ENV_MODE, INIT_CWD: '/srv' });
    expect(config).toMatchObject({
      uiEnabled: false,
      credentials: { serverUrl: 'http://backup.example.com:8000', username: 'alice', password: 'secret' },
      monitoredPaths: ['/data', '/etc/app'],
      stateDir: '/srv/data/agent',
      uiPort: 8080,
      uiHost: '0.0.0.0',
      allowRemoteCommands: true,
      remoteCommandAllowlist: undefined,
      pingIntervalSeconds: undefined,
      backupIntervalSeconds: undefined,
      clientName: os.hostname(),
    });
  });

  it('takes several server replicas in SERVER_URL, separated by commas, and names a bad entry', () => {
    const config = loadAgentConfig({ ...ENV_MODE, SERVER_URL: 'http://a:8000/, https://b.example' });
    expect(config.credentials).toMatchObject({ serverUrl: 'http://a:8000,https://b.example' });
    expect(() => loadAgentConfig({ ...ENV_MODE, SERVER_URL: 'http://a:8000,b.example' })).toThrow('SERVER_URL must be an http(s) URL, or several separated by commas, got "http://a:8000,b.example"');
  });

  it('lists every missing variable of env mode at once', () => {
    let error: unknown;
    try {
      loadAgentConfig({ CLIENT_UI_ENABLED: 'false' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of ['SERVER_URL', 'USERNAME', 'PASSWORD', 'MONITORED_PATHS']) expect(problems).toContain(name);
  });

  it('env mode registers with ENROLLMENT_KEY instead of USERNAME/PASSWORD', () => {
    const { USERNAME: _u, PASSWORD: _p, ...noPassword } = ENV_MODE;
    const config = loadAgentConfig({ ...noPassword, ENROLLMENT_KEY: ' cairn_enroll_abc ' });
    expect(config.credentials).toEqual({ serverUrl: 'http://backup.example.com:8000', enrollmentKey: 'cairn_enroll_abc' });
    expect(() => loadAgentConfig({ ...ENV_MODE, ENROLLMENT_KEY: 'cairn_enroll_abc' })).toThrow('PASSWORD must not be set together with ENROLLMENT_KEY');
    expect(() => loadAgentConfig({ CLIENT_UI_ENABLED: 'false', SERVER_URL: 'http://x', MONITORED_PATHS: '/data' })).toThrow('set ENROLLMENT_KEY, or USERNAME and PASSWORD');
  });

  it.each<[string, Record<string, string>, string]>([
    ['bad interval', { PING_INTERVAL: 'soon' }, 'PING_INTERVAL'],
    ['relative monitored path', { MONITORED_PATHS: 'data' }, 'MONITORED_PATHS'],
    ['bad boolean', { ALLOW_REMOTE_COMMANDS: 'maybe' }, 'ALLOW_REMOTE_COMMANDS'],
    ['bad URL', { SERVER_URL: 'backup.example.com' }, 'SERVER_URL'],
    ['bad JSON list', { PRE_COMMANDS: '[1,2]' }, 'PRE_COMMANDS'],
  ])('refuses a %s', (_name, patch, variable) => {
    expect(() => loadAgentConfig({ ...ENV_MODE, ...patch })).toThrow(variable);
  });

  it('splits lists: PRE_COMMANDS and the allow-list on semicolons, or a JSON array', () => {
    const config = loadAgentConfig({
      ...ENV_MODE,
      PRE_COMMANDS: 'pg_dump db > /data/db.sql; echo done',
      REMOTE_COMMAND_ALLOWLIST: '["echo a; echo b"]',
      EXCLUDES: '*.tmp, node_modules',
      PING_INTERVAL: '30',
      BACKUP_INTERVAL: '600',
      ALLOW_REMOTE_COMMANDS: 'false',
    });
    expect(config.preCommands).toEqual(['pg_dump db > /data/db.sql', 'echo done']);
    expect(config.remoteCommandAllowlist).toEqual(['echo a; echo b']);
    expect(config.excludes).toEqual(['*.tmp', 'node_modules']);
    expect(config).toMatchObject({ pingIntervalSeconds: 30, backupIntervalSeconds: 600, allowRemoteCommands: false });
  });

  it('UI mode needs nothing and never keeps a password', () => {
    const config = loadAgentConfig({ PASSWORD: 'x', SERVER_URL: 'http://s' });
    expect(config.uiEnabled).toBe(true);
    expect(config.credentials).toBeUndefined();
    expect(config.setupDefaults.serverUrl).toBe('http://s');
  });

  it('parseList', () => {
    expect(parseList(' a ; ;b ', ';')).toEqual(['a', 'b']);
    expect(parseList(undefined, ',')).toEqual([]);
    expect(parseList('["x,y"]', ',')).toEqual(['x,y']);
    expect(parseList('[nope', ',')).toHaveProperty('error');
  });

  it('names every variable it reads', () => {
    expect(agentConfigVariables()).toEqual(
      expect.arrayContaining([
        'AGENT_STATE_DIR',
        'ALLOW_REMOTE_COMMANDS',
        'BACKUP_INTERVAL',
        'CLIENT_NAME',
        'CLIENT_UI_ENABLED',
        'CLIENT_UI_HOST',
        'CLIENT_UI_PORT',
        'EXCLUDES',
        'LOG_LEVEL',
        'MONITORED_PATHS',
        'PASSWORD',
        'PING_INTERVAL',
        'PRE_COMMANDS',
        'REMOTE_COMMAND_ALLOWLIST',
        'SERVER_URL',
        'USERNAME',
      ]),
    );
  });
});

describe('the agent process', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it('exits with code 1 and lists every missing variable in env mode', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-agent-config-'));
    dirs.push(dir);
    const agent = startProcess(path.join(REPO_ROOT, 'client/src/main.ts'), [], { CLIENT_UI_ENABLED: 'false', AGENT_STATE_DIR: dir }, dir);
    const code = await new Promise<number | null>((resolve) => agent.child.once('exit', resolve));
    expect(code).toBe(1);
    for (const name of ['SERVER_URL', 'USERNAME', 'PASSWORD', 'MONITORED_PATHS']) expect(agent.output()).toContain(`${name} is required`);
  });
});
