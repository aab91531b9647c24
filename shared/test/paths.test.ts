import { describe, expect, it } from 'vitest';
import { isUnderPrefix, normaliseBackupPath, restoreDestination } from '../src/paths.ts';

describe('normaliseBackupPath', () => {
  it.each([
    ['/srv/data', '/srv/data'],
    ['/srv/data/', '/srv/data'],
    ['/srv/./data/../db', '/srv/db'],
    ['//srv//x', '/srv/x'],
    ['/', '/'],
    ['/a\\b', '/a\\b'],
    ['/line\nbreak', '/line\nbreak'],
    ['/ünï cødé/ファイル', '/ünï cødé/ファイル'],
    ['relative/path', null],
    ['', null],
    ['/nul\0byte', null],
    ['/' + 'x'.repeat(5000), null],
  ])('%j -> %j', (input, expected) => {
    expect(normaliseBackupPath(input)).toBe(expected);
  });
});

describe('restoreDestination', () => {
  it.each([
    ['/restore', '/srv/a.txt', '/restore/srv/a.txt'],
    ['/restore', '/srv/../../etc/passwd', '/restore/etc/passwd'],
    ['/restore', '/', null],
    ['/restore', 'srv/a', null],
  ])('%s + %j -> %j', (target, backupPath, expected) => {
    expect(restoreDestination(target, backupPath)).toBe(expected);
  });
});

describe('isUnderPrefix', () => {
  it.each([
    ['/srv/data/x', '/srv/data', true],
    ['/srv/data', '/srv/data', true],
    ['/srv/database', '/srv/data', false],
    ['/anything', '/', true],
  ])('%s under %s: %s', (candidate, prefix, expected) => {
    expect(isUnderPrefix(candidate, prefix)).toBe(expected);
  });
});
