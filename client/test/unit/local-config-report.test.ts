import { describe, expect, it } from 'vitest';
import { LIMITS } from '@cairn/shared';
import { loadAgentConfig } from '../../src/config/agent-config.ts';
import { localConfigReport } from '../../src/config/local-config-report.ts';

describe('localConfigReport', () => {
  const env = {
    CLIENT_UI_ENABLED: 'false',
    SERVER_URL: 'http://server.example:3000',
    ENROLLMENT_KEY: 'cairn_enroll_secret-key-value',
    MONITORED_PATHS: '/srv/data,/home',
    EXCLUDES: '**/*.tmp',
    PRE_COMMANDS: 'pg_dump app > /srv/data/app.sql;sync',
    PRE_COMMAND_TIMEOUT: '900',
    ALLOW_REMOTE_COMMANDS: 'false',
    BACKUP_INTERVAL: '7200',
    AGENT_STATE_DIR: '/tmp/cairn-agent-state-unused',
  };

  it('reports paths, excludes, pre-commands and the remote-command policy, and nothing else', () => {
    const config = loadAgentConfig(env);
    const report = localConfigReport(config, config.monitoredPaths);
    expect(report).toEqual({
      monitoredPaths: ['/srv/data', '/home'],
      excludes: ['**/*.tmp'],
      preCommands: [
        { command: 'pg_dump app > /srv/data/app.sql', timeoutSeconds: 900 },
        { command: 'sync', timeoutSeconds: 900 },
      ],
      allowRemoteCommands: false,
      remoteCommandAllowlist: null,
      backupIntervalSeconds: 7200,
    });
    expect(JSON.stringify(report)).not.toContain('secret-key-value');
  });

  it('leaves out what the server would refuse, and says so', () => {
    const config = loadAgentConfig({ ...env, REMOTE_COMMAND_ALLOWLIST: 'vacuumdb app' });
    const paths = Array.from({ length: LIMITS.localConfigItems + 5 }, (_, i) => `/srv/p${i}`);
    const report = localConfigReport({ ...config, excludes: ['ok', 'x'.repeat(5000), 'bad\u0000'] }, paths);
    expect(report.monitoredPaths).toHaveLength(LIMITS.localConfigItems);
    expect(report.excludes).toEqual(['ok']);
    expect(report.remoteCommandAllowlist).toEqual(['vacuumdb app']);
    expect(report.truncated).toBe(true);
  });
});
