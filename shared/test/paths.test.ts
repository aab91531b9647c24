import { describe, expect, it } from 'vitest';
import { isCanonicalBackupPath, isUnderPrefix, normaliseBackupPath, restoreDestination } from '../src/paths.ts';
import { isStorableText, storableText } from '../src/text.ts';

describe('isCanonicalBackupPath: what the protocol accepts, never rewritten', () => {
  it.each([
    ['/srv/data', true],
    ['/a', true],
    ['/srv/.hidden/..dots/.../x.', true],
    ['/a\\b', true],
    ['/line\nbreak', true],
    ['/ünï cødé/ファイル/\u{1f600}', true],
    ['/byte\u{10ffe9}escape', true],
    ['/' + 'x'.repeat(4095), true],
    ['/', false],
    ['', false],
    ['relative/path', false],
    ['/srv/data/', false],
    ['//srv', false],
    ['/srv//x', false],
    ['/srv/./x', false],
    ['/srv/.', false],
    ['/srv/../etc/passwd', false],
    ['/home/u/../../etc/passwd', false],
    ['/..', false],
    ['/nul\0byte', false],
    ['/lone\ud800', false],
    ['/lone\udc00x', false],
    ['/' + 'x'.repeat(4096), false],
    ['/' + 'é'.repeat(2048), false],
  ])('%j -> %j', (input, expected) => {
    expect(isCanonicalBackupPath(input)).toBe(expected);
  });

  it('is what normaliseBackupPath makes of anything it accepts but the root', () => {
    for (const typed of ['/srv/./data/../db', '//srv//x/', '/a/b/../../c']) {
      expect(isCanonicalBackupPath(normaliseBackupPath(typed)!)).toBe(true);
    }
  });
});

describe('storableText', () => {
  it.each([
    ['plain', 'plain'],
    ['a\0b\0', 'a\u2400b\u2400'],
    ['lone \ud800 high, lone \udfff low', 'lone \ufffd high, lone \ufffd low'],
    ['pair \u{1f600} kept', 'pair \u{1f600} kept'],
    ['\u0001 other controls kept \u007f', '\u0001 other controls kept \u007f'],
  ])('%j -> %j, one unit for one', (input, expected) => {
    const stored = storableText(input);
    expect(stored).toBe(expected);
    expect(stored.length).toBe(input.length);
    expect(isStorableText(stored)).toBe(true);
  });
});

describe('normaliseBackupPath (what a person typed)', () => {
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
