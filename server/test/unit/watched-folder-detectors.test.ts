import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ALERT_SETTINGS,
  detectAlertConditions,
  detectExpectedFileMissing,
  detectFileShrank,
  type DetectorInput,
  type WatchedFolderFacts,
} from '../../src/alerts/detectors.ts';

const NOW = new Date('2026-06-30T12:00:00Z');
const HOUR = 3600_000;
const MiB = 1024 * 1024;
const hoursAgo = (h: number) => new Date(NOW.getTime() - h * HOUR);

function input(watched: WatchedFolderFacts[], createdHoursAgo = 1000): DetectorInput {
  return {
    client: { createdAt: hoursAgo(createdHoursAgo), lastPingAt: NOW, lastSuccessAt: NOW, backupIntervalSeconds: 3600, pingIntervalSeconds: 60 },
    runs: [],
    now: NOW,
    watched,
  };
}

/** A watched /dumps (26 h) holding one file whose versions had these sizes, oldest first, one a day. */
function dumps(sizes: number[], path = '/dumps/app.sql'): WatchedFolderFacts {
  const versions = sizes.map((size, i) => ({ size, validFrom: hoursAgo((sizes.length - i) * 24) })).reverse();
  return { folder: { path: '/dumps', maxAgeHours: 26 }, newestVersionAt: versions[0]?.validFrom ?? null, files: [{ path, versions }] };
}

describe('expected_file_missing', () => {
  const folder = (newestHoursAgo: number | null, maxAgeHours = 26, createdHoursAgo = 1000): DetectorInput =>
    input([{ folder: { path: '/dumps', maxAgeHours }, newestVersionAt: newestHoursAgo === null ? null : hoursAgo(newestHoursAgo), files: [] }], createdHoursAgo);

  it.each([
    ['a version 25 h ago, 26 h allowed', folder(25), []],
    ['exactly at the limit', folder(26), []],
    ['a version 27 h ago, 26 h allowed', folder(27), ['warning newest file version 27 h old']],
    ['nothing ever stored, client created 1000 h ago', folder(null), ['warning no file stored under it yet (client created 1000 h ago)']],
    ['nothing stored yet, client created 2 h ago', folder(null, 26, 2), []],
    ['a 1 h folder, a version 90 min ago', folder(1.5, 1), ['warning newest file version 1.5 h old']],
  ])('%s', (_name, facts, expected) => {
    expect(detectExpectedFileMissing(facts).map((c) => `${c.severity} ${c.observed}`)).toEqual(expected);
  });

  it('names the folder, one alert per folder', () => {
    const two = input([
      { folder: { path: '/dumps', maxAgeHours: 26 }, newestVersionAt: hoursAgo(30), files: [] },
      { folder: { path: '/srv/exports', maxAgeHours: 2 }, newestVersionAt: hoursAgo(1), files: [] },
      { folder: { path: '/var/db', maxAgeHours: 2 }, newestVersionAt: hoursAgo(3), files: [] },
    ]);
    expect(detectExpectedFileMissing(two).map((c) => [c.key, c.path])).toEqual([
      ['expected_file_missing:/dumps', '/dumps'],
      ['expected_file_missing:/var/db', '/var/db'],
    ]);
    expect(detectExpectedFileMissing(two)[0]!.message).toBe('no new or changed file under /dumps for 30 h (expected within 26 h)');
  });

  it('is off when disabled, and no watched folders mean no alert', () => {
    expect(detectAlertConditions(input([dumps([100])]), { ...DEFAULT_ALERT_SETTINGS, expectedFile: { enabled: false, folders: [] } })).toEqual([]);
    expect(detectExpectedFileMissing(input([]))).toEqual([]);
  });
});

describe('file_shrank', () => {
  const shrank = (sizes: number[], settings = DEFAULT_ALERT_SETTINGS.fileShrank) =>
    detectFileShrank(input([dumps(sizes)]), settings).map((c) => `${c.observed} / ${c.reference}`);

  it.each([
    ['steady dumps', [100 * MiB, 101 * MiB, 102 * MiB], []],
    ['a dump cut to a tenth', [100 * MiB, 100 * MiB, 10 * MiB], ['10.0 MiB / previous version 100.0 MiB']],
    ['just under half', [100 * MiB, 49 * MiB], ['49.0 MiB / previous version 100.0 MiB']],
    ['exactly half is not less than half', [100 * MiB, 50 * MiB], []],
    ['a small file halving (less than 1 MiB smaller)', [1.5 * MiB, 0.6 * MiB], []],
    ['still truncated on the next version: the alert holds', [100 * MiB, 10 * MiB, 12 * MiB], ['12.0 MiB / previous version 100.0 MiB']],
    ['back to normal size: resolved', [100 * MiB, 10 * MiB, 99 * MiB], []],
    ['grew: nothing', [10 * MiB, 100 * MiB], []],
    ['a single version: nothing to compare', [10 * MiB], []],
    ['the newest drop is the reference', [400 * MiB, 100 * MiB, 100 * MiB, 10 * MiB], ['10.0 MiB / previous version 100.0 MiB']],
  ])('%s', (_name, sizes, expected) => {
    expect(shrank(sizes)).toEqual(expected);
  });

  it('follows its thresholds', () => {
    expect(shrank([100 * MiB, 60 * MiB], { enabled: true, maxRatio: 0.7, minBytes: MiB })).toEqual(['60.0 MiB / previous version 100.0 MiB']);
    expect(shrank([100 * MiB, 10 * MiB], { enabled: true, maxRatio: 0.5, minBytes: 200 * MiB })).toEqual([]);
  });

  it('names the path, once even when two watched folders hold it', () => {
    const facts = dumps([100 * MiB, 10 * MiB]);
    const nested = { ...facts, folder: { path: '/', maxAgeHours: 26 } };
    const conditions = detectFileShrank(input([facts, nested]), DEFAULT_ALERT_SETTINGS.fileShrank);
    expect(conditions).toEqual([
      {
        type: 'file_shrank',
        key: 'file_shrank:/dumps/app.sql',
        severity: 'warning',
        path: '/dumps/app.sql',
        observed: '10.0 MiB',
        reference: 'previous version 100.0 MiB',
        message: '/dumps/app.sql shrank to 10.0 MiB from 100.0 MiB (10%): a truncated file?',
      },
    ]);
    expect(detectAlertConditions(input([facts]), { ...DEFAULT_ALERT_SETTINGS, fileShrank: { ...DEFAULT_ALERT_SETTINGS.fileShrank, enabled: false } })).toEqual([]);
  });
});
