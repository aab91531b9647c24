import { describe, expect, it } from 'vitest';
import { effectiveRetentionPolicy, versionsToPrune, type RetentionPolicy, type VersionLifetime } from '../../src/services/retention-policy.ts';

const NOW = new Date('2026-06-30T12:00:00Z');
const day = (n: number) => new Date(NOW.getTime() - n * 86_400_000);

/**
 * A path's history written newest first as the days ago each version
 * stopped being current (null = current); each version started one day
 * before the next one's end. Ids are 1..n from oldest to newest.
 */
function history(endedDaysAgo: (number | null)[]): VersionLifetime[] {
  const n = endedDaysAgo.length;
  return endedDaysAgo.map((ended, index) => {
    const validTo = ended === null ? null : day(ended);
    const validFrom = day((ended ?? 0) + 1 + index * 0.001);
    return { id: n - index, validFrom, validTo };
  });
}

interface Case {
  name: string;
  versions: (number | null)[];
  policy: RetentionPolicy;
  pruned: number[];
}

const cases: Case[] = [
  { name: 'only the current version: nothing to prune', versions: [null], policy: { versions: 1, days: 1 }, pruned: [] },
  { name: 'by count: keeps the newest N, counting the current one', versions: [null, 1, 2, 3, 4], policy: { versions: 3, days: null }, pruned: [2, 1] },
  { name: 'by count 1: only the current version stays', versions: [null, 1, 2], policy: { versions: 1, days: null }, pruned: [2, 1] },
  { name: 'by count, within the limit: nothing pruned', versions: [null, 1, 2], policy: { versions: 3, days: null }, pruned: [] },
  { name: 'by age: non-current versions that ended days or more ago go', versions: [null, 5, 10, 40], policy: { versions: 100, days: 10 }, pruned: [2, 1] },
  { name: 'by age: the current version stays however old it is', versions: [null], policy: { versions: 1, days: 1 }, pruned: [] },
  { name: 'count and age combine: pruned when either says so', versions: [null, 1, 2, 30], policy: { versions: 2, days: 7 }, pruned: [2, 1] },
  { name: 'deleted file without an age limit: its last version is kept', versions: [3, 4, 5], policy: { versions: 1, days: null }, pruned: [2, 1] },
  { name: 'deleted file: its last version is kept for `days`', versions: [3, 4], policy: { versions: 5, days: 7 }, pruned: [] },
  { name: 'deleted file: its last version goes after `days`', versions: [8, 9], policy: { versions: 5, days: 7 }, pruned: [2, 1] },
  { name: 'an age just under the limit is kept', versions: [null, 6.99], policy: { versions: 5, days: 7 }, pruned: [] },
];

describe('versionsToPrune', () => {
  it.each(cases)('$name', ({ versions, policy, pruned }) => {
    expect(versionsToPrune(history(versions), policy, NOW).sort()).toEqual([...pruned].sort());
  });

  it('does not depend on the order versions are given in', () => {
    const versions = history([null, 1, 2, 3, 4]);
    const policy = { versions: 2, days: null };
    expect(versionsToPrune([...versions].reverse(), policy, NOW).sort()).toEqual(versionsToPrune(versions, policy, NOW).sort());
  });

  it('never prunes a current version, even when clocks put it behind older versions', () => {
    const skewed: VersionLifetime[] = [
      { id: 1, validFrom: day(1), validTo: day(0.5) },
      { id: 2, validFrom: day(5), validTo: null },
    ];
    expect(versionsToPrune(skewed, { versions: 1, days: 1 }, NOW)).toEqual([1]);
  });
});

describe('effectiveRetentionPolicy', () => {
  const owner = { retentionVersions: 30, retentionDays: 90 };
  it.each([
    { name: 'no override: the owner policy', client: { retentionVersions: null, retentionDays: null }, expected: { versions: 30, days: 90 } },
    { name: 'override with days', client: { retentionVersions: 5, retentionDays: 7 }, expected: { versions: 5, days: 7 } },
    { name: 'override without an age limit', client: { retentionVersions: 5, retentionDays: null }, expected: { versions: 5, days: null } },
  ])('$name', ({ client, expected }) => {
    expect(effectiveRetentionPolicy(owner, client)).toEqual(expected);
  });
});
