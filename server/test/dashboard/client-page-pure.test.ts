import { describe, expect, it } from 'vitest';
import { effectiveConfig } from '../../src/dashboard/client-config-sources.ts';
import { fileSearchPatterns } from '../../src/dashboard/file-search.ts';

describe('fileSearchPatterns', () => {
  it.each([
    ['report', { pathPattern: '%/%report%', namePattern: '%report%' }],
    ['  Report ', { pathPattern: '%/%Report%', namePattern: '%Report%' }],
    ['*.sql', { pathPattern: '%/%.sql', namePattern: '%.sql' }],
    ['app-?.log', { pathPattern: '%/app-_.log', namePattern: 'app-_.log' }],
    ['50%_done\\', { pathPattern: '%/%50\\%\\_done\\\\%', namePattern: '%50\\%\\_done\\\\%' }],
    ['docs/report', { pathPattern: '%docs/report%', namePattern: null }],
    ['docs/*.md', { pathPattern: '%/docs/%.md', namePattern: null }],
    ['/home/*/docs/*.md', { pathPattern: '/home/%/docs/%.md', namePattern: null }],
  ])('%j', (input, expected) => {
    expect(fileSearchPatterns(input)).toEqual(expected);
  });

  it('refuses an empty or overlong term', () => {
    expect(fileSearchPatterns('   ')).toEqual({ error: 'type part of a file name or path' });
    expect(fileSearchPatterns('x'.repeat(201))).toEqual({ error: 'at most 200 characters' });
  });
});

describe('effectiveConfig', () => {
  const central = { monitoredPaths: ['/data', '/home'], excludes: ['*.iso'], preCommands: [{ command: 'pg_dump app', timeoutSeconds: 300 }] };
  const local = {
    monitoredPaths: ['/home', '/srv'],
    excludes: [],
    preCommands: [{ command: 'sync', timeoutSeconds: 3600 }],
    allowRemoteCommands: true,
    remoteCommandAllowlist: null,
    backupIntervalSeconds: null,
  };

  it('marks each item central, local or both, central pre-commands first', () => {
    const at = new Date('2026-11-01T00:00:00Z');
    expect(effectiveConfig(central, local, at)).toEqual({
      reported: true,
      reportedAt: at,
      monitoredPaths: [
        { value: '/data', sources: ['central'] },
        { value: '/home', sources: ['central', 'local'] },
        { value: '/srv', sources: ['local'] },
      ],
      excludes: [{ value: '*.iso', sources: ['central'] }],
      preCommands: [
        { command: 'pg_dump app', timeoutSeconds: 300, source: 'central', refusedBecause: null },
        { command: 'sync', timeoutSeconds: 3600, source: 'local', refusedBecause: null },
      ],
      localBackupIntervalSeconds: null,
      remoteCommands: 'allowed',
      allowlistSize: 0,
      truncated: false,
    });
  });

  it.each([
    [{ allowRemoteCommands: false }, 'refused', 'the agent does not run commands from the server (ALLOW_REMOTE_COMMANDS=false)'],
    [{ remoteCommandAllowlist: ['vacuumdb app'] }, 'allow-listed', 'not on the agent\u2019s REMOTE_COMMAND_ALLOWLIST'],
    [{ remoteCommandAllowlist: ['pg_dump app'] }, 'allow-listed', null],
  ])('a central command under %j is %s', (change, remoteCommands, refusedBecause) => {
    const result = effectiveConfig(central, { ...local, ...change }, null);
    expect(result.remoteCommands).toBe(remoteCommands);
    expect(result.preCommands[0]!.refusedBecause).toBe(refusedBecause);
    expect(result.preCommands[1]!.refusedBecause).toBeNull();
  });

  it('shows only the central items when the agent never reported', () => {
    const result = effectiveConfig(central, null, null);
    expect(result.reported).toBe(false);
    expect(result.remoteCommands).toBe('unknown');
    expect(result.monitoredPaths.map((p) => p.sources)).toEqual([['central'], ['central']]);
    expect(result.preCommands[0]!.refusedBecause).toBeNull();
  });
});
