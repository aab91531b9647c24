import { describe, expect, it } from 'vitest';
import { DEFAULT_STORAGE_ALERT_SETTINGS, detectStorageFilling, type StorageFacts } from '../../src/alerts/storage-filling.ts';

const NOW = new Date('2026-06-30T12:00:00Z');
const DAY = 86_400_000;
const GiB = 1024 ** 3;

/** A 1000 GiB store at `usedGiB`, having grown by `perDayGiB` a day over the last 14 days. */
function store(usedGiB: number, perDayGiB: number, kind: StorageFacts['store'] = 'disk'): StorageFacts {
  const samples = Array.from({ length: 15 }, (_, i) => ({ atMs: NOW.getTime() - (14 - i) * DAY, value: (usedGiB - (14 - i) * perDayGiB) * GiB }));
  return { store: kind, usedBytes: usedGiB * GiB, capacityBytes: 1000 * GiB, samples, now: NOW };
}

describe('storage_filling', () => {
  it.each([
    ['half full, flat', store(500, 0), []],
    ['half full, 1 GiB a day: 500 days left', store(500, 1), []],
    ['80% used', store(800, 0), ['warning 800.0 GiB of 1000.0 GiB used (80%); not growing']],
    ['89% used', store(890, 0), ['warning 890.0 GiB of 1000.0 GiB used (89%); not growing']],
    ['90% used: critical', store(900, 0), ['critical 900.0 GiB of 1000.0 GiB used (90%); not growing']],
    ['half full but 40 GiB a day: 12 days left', store(500, 40), ['warning 500.0 GiB of 1000.0 GiB used (50%); full in 12 days at the recent growth']],
    ['half full, 35 GiB a day: 14 days left is not under 14', store(510, 35), []],
    ['shrinking at 95%: still critical', store(950, -5), ['critical 950.0 GiB of 1000.0 GiB used (95%); not growing']],
    ['full', store(1000, 1), ['critical 1000.0 GiB of 1000.0 GiB used (100%); full in less than a day at the recent growth']],
  ])('%s', (_name, facts, expected) => {
    expect(detectStorageFilling(facts).map((c) => `${c.severity} ${c.observed}`)).toEqual(expected);
  });

  it('one alert, server-wide, saying which store and the marks', () => {
    expect(detectStorageFilling(store(850, 0, 's3'))).toEqual([
      {
        type: 'storage_filling',
        key: 'storage_filling',
        severity: 'warning',
        path: null,
        observed: '850.0 GiB of 1000.0 GiB used (85%); not growing',
        reference: 'warning at 80% or under 14 days to full, critical at 90%',
        message: 'the S3 store is filling: 850.0 GiB of 1000.0 GiB used (85%), not growing',
      },
    ]);
  });

  it('follows its settings, and says nothing without samples to forecast from below the mark', () => {
    expect(detectStorageFilling(store(500, 0), { ...DEFAULT_STORAGE_ALERT_SETTINGS, warnPercent: 50 }).map((c) => c.severity)).toEqual(['warning']);
    expect(detectStorageFilling({ ...store(500, 40), samples: [] })).toEqual([]);
    expect(detectStorageFilling({ ...store(500, 0), capacityBytes: 0 })).toEqual([]);
  });
});
