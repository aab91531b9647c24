import { describe, expect, it } from 'vitest';
import {
  NO_RESTORE_POINTS,
  keptRestorePoints,
  planRetention,
  type ClientVersion,
  type FinishedRun,
  type RetentionRules,
} from '../../src/services/retention-rules.ts';

const NOW = new Date('2026-06-30T12:00:00Z');
const ago = (days: number) => new Date(NOW.getTime() - days * 86_400_000);

/**
 * One path's history, oldest first, as the days ago each version became
 * current; each stops being current when the next starts; the last is current
 * unless `deletedDaysAgo` is given. Ids are base+1.. from oldest to newest.
 */
function path(name: string, base: number, startedDaysAgo: number[], deletedDaysAgo?: number): ClientVersion[] {
  return startedDaysAgo.map((started, index) => {
    const next = startedDaysAgo[index + 1];
    const validTo = next !== undefined ? ago(next) : deletedDaysAgo !== undefined ? ago(deletedDaysAgo) : null;
    return { id: base + index + 1, path: name, validFrom: ago(started), validTo };
  });
}

const keepAll: RetentionRules = { base: { versions: 1, days: null }, folders: [], restorePoints: NO_RESTORE_POINTS };

interface Case {
  name: string;
  versions: ClientVersion[];
  runs?: FinishedRun[];
  rules: RetentionRules;
  pruned: number[];
}

const daily = path('/dumps/db.sql', 0, [40, 30, 20, 16, 10, 3, 2, 1.5, 1, 0.5]);

const cases: Case[] = [
  { name: 'base only, count 1: only the current version stays', versions: path('/a', 0, [3, 2, 1]), rules: keepAll, pruned: [1, 2] },
  {
    name: 'base as today: N versions, D days',
    versions: path('/a', 0, [40, 20, 15, 1]),
    rules: { ...keepAll, base: { versions: 3, days: 10 } },
    pruned: [1, 2],
  },
  {
    name: 'folder rule 3.1 2.15 on /dumps: 3 versions a day apart, 2 versions 15 days apart',
    versions: daily,
    rules: { ...keepAll, folders: [{ folder: '/dumps', rules: [{ count: 3, minAgeDays: 1 }, { count: 2, minAgeDays: 15 }] }] },
    // newest-first starts: 0.5(10) 1(9) 1.5(8) 2(7) 3(6) 10(5) 16(4) 20(3) 30(2) 40(1)
    // 3.1 keeps 10 (0.5), 8 (1.5), 6 (3); 2.15 keeps 10 (0.5), 4 (16)
    pruned: [1, 2, 3, 5, 7, 9],
  },
  {
    name: 'folder rules apply only under their folder',
    versions: [...path('/dumps/x', 0, [3, 2, 1]), ...path('/dumpsters/y', 10, [3, 2, 1])],
    rules: { ...keepAll, folders: [{ folder: '/dumps/', rules: [{ count: 5, minAgeDays: 0 }] }] },
    pruned: [11, 12],
  },
  {
    name: 'a version is kept if any rule keeps it (base keeps more than the folder rule)',
    versions: path('/dumps/x', 0, [4, 3, 2, 1]),
    rules: { ...keepAll, base: { versions: 3, days: null }, folders: [{ folder: '/dumps', rules: [{ count: 1, minAgeDays: 0 }] }] },
    pruned: [1],
  },
  {
    name: 'restore point: a version visible in a kept run is kept, others pruned',
    versions: path('/a', 0, [5, 3, 1]),
    runs: [{ id: 1, finishedAt: ago(4) }, { id: 2, finishedAt: ago(2) }],
    rules: { ...keepAll, restorePoints: { ...NO_RESTORE_POINTS, last: 1 } },
    pruned: [1],
  },
  {
    name: 'restore point: a file deleted before the run is not visible in it',
    versions: path('/gone', 0, [5, 3], 2.5),
    runs: [{ id: 1, finishedAt: ago(1) }],
    rules: { ...keepAll, restorePoints: { ...NO_RESTORE_POINTS, last: 1 } },
    // base count 1 still keeps a deleted file's last version (no age limit)
    pruned: [1],
  },
  {
    name: 'restore points in the future of the server clock are ignored',
    versions: path('/a', 0, [5, 1]),
    runs: [{ id: 1, finishedAt: new Date(NOW.getTime() + 3_600_000) }],
    rules: { ...keepAll, restorePoints: { ...NO_RESTORE_POINTS, last: 1 } },
    pruned: [1],
  },
  {
    name: 'the current version is never pruned, even with nothing keeping it',
    versions: path('/a', 0, [1]),
    rules: { base: { versions: 1, days: 0 }, folders: [], restorePoints: NO_RESTORE_POINTS },
    pruned: [],
  },
];

describe('planRetention', () => {
  it.each(cases)('$name', ({ versions, runs, rules, pruned }) => {
    const plan = planRetention(versions, runs ?? [], rules, NOW);
    expect(plan.pruned).toEqual(pruned);
    expect(plan.kept.size + plan.pruned.length).toEqual(versions.length);
  });

  it('gives an expiry date for versions kept only by the age limit, none for others', () => {
    const plan = planRetention(path('/a', 0, [20, 5, 2]), [], { ...keepAll, base: { versions: 5, days: 10 } }, NOW);
    // version 2 stopped being current 2 days ago: expires in 8 days; version 1 ended 5 days ago: in 5 days
    expect(plan.kept.get(2)).toEqual({ reasons: ['base'], expiresAt: ago(-8) });
    expect(plan.kept.get(1)).toEqual({ reasons: ['base'], expiresAt: ago(-5) });
    expect(plan.kept.get(3)).toEqual({ reasons: ['current'], expiresAt: null });
  });

  it('gives no expiry date when a restore point also keeps the version', () => {
    const plan = planRetention(path('/a', 0, [20, 5]), [{ id: 9, finishedAt: ago(10) }], {
      base: { versions: 5, days: 10 },
      folders: [],
      restorePoints: { ...NO_RESTORE_POINTS, last: 1 },
    }, NOW);
    expect(plan.kept.get(1)).toEqual({ reasons: ['base', 'restore-point'], expiresAt: null });
    expect(plan.keptRuns).toEqual([9]);
  });
});

describe('keptRestorePoints', () => {
  const at = (iso: string, id: number): FinishedRun => ({ id, finishedAt: new Date(iso) });
  const runs = [
    at('2026-06-30T10:30:00Z', 1),
    at('2026-06-30T10:10:00Z', 2),
    at('2026-06-30T08:00:00Z', 3),
    at('2026-06-29T23:00:00Z', 4),
    at('2026-06-28T12:00:00Z', 5),
    at('2026-06-21T12:00:00Z', 6),
    at('2026-05-31T12:00:00Z', 7),
    at('2025-12-31T12:00:00Z', 8),
  ];
  const table: [string, Partial<typeof NO_RESTORE_POINTS>, number[]][] = [
    ['nothing asked: nothing kept', {}, []],
    ['last 2', { last: 2 }, [1, 2]],
    ['hourly 2: the newest run of each of the 2 newest hours', { hourly: 2 }, [1, 3]],
    ['daily 3', { daily: 3 }, [1, 4, 5]],
    ['weekly 3 (ISO weeks, Monday start)', { weekly: 3 }, [1, 5, 6]],
    ['monthly 2', { monthly: 2 }, [1, 7]],
    ['yearly 5: only as many as there are years', { yearly: 5 }, [1, 8]],
    ['rules combine as a union', { last: 1, daily: 2, yearly: 2 }, [1, 4, 8]],
  ];
  it.each(table)('%s', (_name, rules, ids) => {
    expect(keptRestorePoints([...runs].reverse(), { ...NO_RESTORE_POINTS, ...rules }).map((r) => r.id)).toEqual(ids);
  });
});

describe('keptRestorePoints says which rules keep each run', () => {
  it('names every kind that keeps a run, in rule order', () => {
    const runs: FinishedRun[] = [
      { id: 2, finishedAt: new Date('2026-06-30T10:30:00Z') },
      { id: 1, finishedAt: new Date('2026-06-29T10:30:00Z') },
    ];
    expect(keptRestorePoints(runs, { ...NO_RESTORE_POINTS, last: 1, daily: 2, yearly: 1 }).map((r) => [r.id, r.keptBy])).toEqual([
      [2, ['last', 'daily', 'yearly']],
      [1, ['daily']],
    ]);
  });
});
