import { describe, expect, it } from 'vitest';
import { addedServerUrls, normaliseServerUrl, parseServerUrls } from '../../src/net/server-urls.ts';
import { isCrossOriginRequest, validateSetupForm, type SetupFormValues } from '../../src/setup/setup-form.ts';

const valid: SetupFormValues = {
  serverUrl: 'http://backup.example.com:8000/',
  enrollmentKey: '',
  username: 'alice',
  password: 'secret',
  clientName: 'laptop',
  monitoredPaths: '/home/alice\n/etc',
  currentUsername: '',
  currentPassword: '',
};

describe('validateSetupForm', () => {
  it('accepts a complete form and normalises it', () => {
    const { setup, errors } = validateSetupForm(valid);
    expect(errors).toEqual({});
    expect(setup).toMatchObject({ serverUrl: 'http://backup.example.com:8000', monitoredPaths: ['/home/alice', '/etc'] });
  });

  it.each<[string, Partial<SetupFormValues>, string[]]>([
    ['everything empty lists every field', { serverUrl: '', username: '', password: '', clientName: '', monitoredPaths: '' }, ['serverUrl', 'username', 'password', 'clientName', 'monitoredPaths']],
    ['not a URL', { serverUrl: 'backup.example.com' }, ['serverUrl']],
    ['not http', { serverUrl: 'ftp://x' }, ['serverUrl']],
    ['credentials in the URL are refused', { serverUrl: 'http://a:b@x' }, ['serverUrl']],
    ['relative monitored path', { monitoredPaths: 'home' }, ['monitoredPaths']],
    ['control characters in the name', { clientName: 'a\u0007b' }, ['clientName']],
  ])('%s', (_name, patch, fields) => {
    const { setup, errors } = validateSetupForm({ ...valid, ...patch });
    expect(setup).toBeUndefined();
    expect(Object.keys(errors).sort()).toEqual([...fields].sort());
  });

  it('a configured agent moving to another server needs an account on the current one', () => {
    const current = { serverUrl: 'http://old.example.com' };
    expect(Object.keys(validateSetupForm(valid, current).errors).sort()).toEqual(['currentPassword', 'currentUsername']);
    const moving = validateSetupForm({ ...valid, currentUsername: 'bob', currentPassword: 'pw' }, current);
    expect(moving.setup).toMatchObject({ currentUsername: 'bob', currentPassword: 'pw' });
  });

  it('staying on the same server verifies with the same credentials', () => {
    const { setup } = validateSetupForm(valid, { serverUrl: 'http://backup.example.com:8000' });
    expect(setup).toMatchObject({ currentUsername: 'alice', currentPassword: 'secret' });
  });

  it('a first setup with an enrollment key needs no user name or password, and carries none', () => {
    const { setup, errors } = validateSetupForm({ ...valid, enrollmentKey: 'cairn_enroll_abc', username: '', password: 'typed by mistake' });
    expect(errors).toEqual({});
    expect(setup).toMatchObject({ enrollmentKey: 'cairn_enroll_abc', username: '', password: '' });
  });

  it('a configured agent ignores a key: changing it needs the account', () => {
    const { errors } = validateSetupForm({ ...valid, enrollmentKey: 'cairn_enroll_abc', username: '', password: '' }, { serverUrl: 'http://backup.example.com:8000' });
    expect(Object.keys(errors).sort()).toEqual(['password', 'username']);
  });

  it('normalises server URLs', () => {
    expect(normaliseServerUrl('https://x.example/')).toBe('https://x.example');
    expect(normaliseServerUrl('nope')).toBeNull();
  });

  it('takes several replicas separated by commas, normalised, in order, without duplicates', () => {
    expect(parseServerUrls(' http://a:8000/ , https://b.example,http://a:8000')).toEqual({ urls: ['http://a:8000', 'https://b.example'] });
    expect(parseServerUrls('http://a, b.example, ftp://c')).toEqual({ invalid: ['b.example', 'ftp://c'] });
    expect(parseServerUrls(' , ')).toEqual({ invalid: [] });
    expect(validateSetupForm({ ...valid, serverUrl: 'http://a:8000/, http://b:8000' }).setup).toMatchObject({ serverUrl: 'http://a:8000,http://b:8000' });
    expect(Object.keys(validateSetupForm({ ...valid, serverUrl: 'http://a:8000, nope' }).errors)).toEqual(['serverUrl']);
  });

  it('adding a replica address to a configured agent is a move (needs the account); dropping or reordering is not', () => {
    const current = { serverUrl: 'http://a:8000,http://b:8000' };
    expect(addedServerUrls(current.serverUrl, 'http://b:8000,http://evil.example')).toEqual(['http://evil.example']);
    expect(Object.keys(validateSetupForm({ ...valid, serverUrl: 'http://evil.example,http://a:8000' }, current).errors).sort()).toEqual(['currentPassword', 'currentUsername']);
    expect(validateSetupForm({ ...valid, serverUrl: 'http://b:8000,http://a:8000' }, current).errors).toEqual({});
    expect(validateSetupForm({ ...valid, serverUrl: 'http://b:8000' }, current).errors).toEqual({});
  });
});

describe('isCrossOriginRequest', () => {
  it.each<[string, Record<string, string>, boolean]>([
    ['same-origin fetch metadata', { 'sec-fetch-site': 'same-origin', host: 'h:8080', origin: 'http://h:8080' }, false],
    ['same-origin fetch metadata decides over an opaque origin', { 'sec-fetch-site': 'same-origin', host: 'h:8080', origin: 'null' }, false],
    ['typed URL / bookmark', { 'sec-fetch-site': 'none', host: 'h:8080' }, false],
    ['another site', { 'sec-fetch-site': 'cross-site', host: 'h:8080', origin: 'http://evil.example' }, true],
    ['same-site but another origin', { 'sec-fetch-site': 'same-site', host: 'h:8080' }, true],
    ['old browser, origin matches host', { host: 'h:8080', origin: 'http://h:8080' }, false],
    ['old browser, origin differs', { host: 'h:8080', origin: 'http://evil.example' }, true],
    ['opaque origin', { host: 'h:8080', origin: 'null' }, true],
    ['no browser headers (curl)', { host: 'h:8080' }, false],
  ])('%s', (_name, headers, expected) => {
    expect(isCrossOriginRequest(headers)).toBe(expected);
  });
});
