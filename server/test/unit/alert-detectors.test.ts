import { describe, expect, it } from 'vitest';
import type { PreCommandResult } from '@cairn/shared';
import {
  DEFAULT_ALERT_SETTINGS,
  detectAlertConditions,
  robustBaseline,
  type AlertCondition,
  type ClientFacts,
  type RunFacts,
} from '../../src/alerts/detectors.ts';

const NOW = new Date('2026-06-30T12:00:00Z');
const HOUR = 3600_000;
const MiB = 1024 * 1024;

/** Per-run values, oldest first; missing fields take a steady client's values. */
interface RunSpec {
  status?: RunFacts['status'];
  trigger?: string;
  /** Hours before NOW the run started; default: one run an hour, the last one 1 h ago. */
  startedHoursAgo?: number;
  durationMinutes?: number;
  filesChanged?: number;
  filesScanned?: number;
  bytesUploaded?: number;
  bytesScanned?: number;
  preCommands?: PreCommandResult[];
  error?: string;
  /** The run's compression sample: bytes sampled (default 256 KiB, too few to judge the run) and the share they deflated to (default 0.35). */
  sampleBytes?: number;
  ratio?: number;
}

function runs(specs: RunSpec[]): RunFacts[] {
  const n = specs.length;
  return specs
    .map((spec, index) => {
      const startedAt = new Date(NOW.getTime() - (spec.startedHoursAgo ?? n - index) * HOUR);
      const status = spec.status ?? 'succeeded';
      return {
        id: `run-${index}`,
        trigger: spec.trigger ?? 'schedule',
        status,
        startedAt,
        finishedAt: status === 'running' ? null : new Date(startedAt.getTime() + (spec.durationMinutes ?? 5) * 60_000),
        filesScanned: spec.filesScanned ?? 10_000,
        filesChanged: spec.filesChanged ?? 20,
        bytesScanned: spec.bytesScanned ?? 5000 * MiB,
        bytesUploaded: spec.bytesUploaded ?? 100 * MiB,
        preCommands: spec.preCommands ?? [],
        error: spec.error ?? null,
        sampleRawBytes: spec.sampleBytes ?? MiB / 4,
        sampleCompressedBytes: Math.round((spec.sampleBytes ?? MiB / 4) * (spec.ratio ?? 0.35)),
      };
    })
    .reverse();
}

const steady = (n: number, spec: RunSpec = {}): RunSpec[] => Array.from({ length: n }, () => ({ ...spec }));

function client(overrides: Partial<ClientFacts> = {}): ClientFacts {
  return {
    createdAt: new Date(NOW.getTime() - 1000 * HOUR),
    lastPingAt: new Date(NOW.getTime() - 60_000),
    lastSuccessAt: new Date(NOW.getTime() - HOUR + 5 * 60_000),
    backupIntervalSeconds: 3600,
    pingIntervalSeconds: 300,
    ...overrides,
  };
}

const preCommand = (overrides: Partial<PreCommandResult>): PreCommandResult => ({
  command: 'pg_dump -f /dumps/db.sql',
  source: 'server',
  exitCode: 0,
  durationMs: 1000,
  timedOut: false,
  output: '',
  ...overrides,
});

interface Case {
  name: string;
  client?: Partial<ClientFacts>;
  runs: RunSpec[];
  /** The keys of the conditions expected, in detector order. */
  keys: string[];
}

// Daily client: runs at 02:00 UTC each day, the last one `lastHoursAgo` before NOW (12:00).
const daily = (n: number, last: RunSpec): RunSpec[] => [
  ...Array.from({ length: n }, (_, i) => ({ startedHoursAgo: 10 + 24 * (n - i) })),
  { startedHoursAgo: 10, ...last },
];
const dailyClient: Partial<ClientFacts> = { backupIntervalSeconds: 86_400, lastSuccessAt: new Date(NOW.getTime() - 9 * HOUR) };

const cases: Case[] = [
  { name: 'a steady client: nothing holds', runs: steady(30), keys: [] },
  { name: 'a brand-new client with one normal run: nothing holds', runs: steady(1), keys: [] },
  {
    name: 'not enough history: a 100x jump in the third run says nothing yet',
    runs: [...steady(2), { bytesUploaded: 10_000 * MiB, filesChanged: 9000, durationMinutes: 300 }],
    keys: [],
  },
  {
    name: 'a slow drift (+3% a run) is not an anomaly',
    runs: Array.from({ length: 30 }, (_, i) => ({ bytesUploaded: Math.round(100 * MiB * 1.03 ** i), bytesScanned: Math.round(5000 * MiB * 1.01 ** i), filesChanged: 20 + i })),
    keys: [],
  },
  {
    name: 'noisy but usual sizes are not an anomaly',
    runs: Array.from({ length: 30 }, (_, i) => ({ bytesUploaded: (80 + ((i * 37) % 40)) * MiB })),
    keys: [],
  },
  {
    name: 'a sudden jump in changed bytes is',
    runs: [...steady(20), { bytesUploaded: 2000 * MiB }],
    keys: ['unusual_size:changed'],
  },
  {
    name: 'the total dropping by half is unusual; fewer changed bytes is not',
    runs: [...steady(20), { bytesScanned: 2000 * MiB, bytesUploaded: 1 * MiB }],
    keys: ['unusual_size:total'],
  },
  {
    name: 'one earlier outlier does not hide the next one (median, not mean)',
    runs: [...steady(10), { bytesUploaded: 5000 * MiB }, ...steady(10), { bytesUploaded: 2000 * MiB }],
    keys: ['unusual_size:changed'],
  },
  {
    name: 'a failed run is not a baseline for size: the jump is judged on the last good run',
    runs: [...steady(20), { bytesUploaded: 2000 * MiB }, { status: 'failed', error: 'server unreachable', bytesUploaded: 0 }],
    keys: ['failing:run', 'unusual_size:changed'],
  },
  { name: 'the last run failed', runs: [...steady(10), { status: 'failed', error: 'disk full' }], keys: ['failing:run'] },
  { name: 'the last run ended partial', runs: [...steady(10), { status: 'partial' }], keys: ['failing:run'] },
  { name: 'a failed run followed by a success: cleared', runs: [...steady(10), { status: 'failed' }, {}], keys: [] },
  { name: 'a run still going does not hide the last finished one', runs: [...steady(10), { status: 'failed' }, { status: 'running' }], keys: ['failing:run'] },
  {
    name: 'a pre-command that failed and one that timed out, each on its own',
    runs: [...steady(10), { status: 'partial', preCommands: [preCommand({ exitCode: 1 }), preCommand({ command: 'mysqldump', exitCode: null, timedOut: true }), preCommand({ command: 'true' })] }],
    keys: ['failing:run', 'failing:pre-command:pg_dump -f /dumps/db.sql', 'failing:pre-command:mysqldump'],
  },
  {
    name: 'a pre-command the agent refused is not a failure of the command',
    runs: [...steady(10), { preCommands: [preCommand({ exitCode: null, refused: true })] }],
    keys: [],
  },
  {
    name: 'an agent that stopped pinging (more than 3 ping intervals)',
    client: { lastPingAt: new Date(NOW.getTime() - 16 * 60_000) },
    runs: steady(10),
    keys: ['failing:agent-silent'],
  },
  {
    name: 'an agent that never pings but ran a backup 5 minutes ago is not silent (run once by cron)',
    client: { lastPingAt: null },
    runs: [...steady(9), { startedHoursAgo: 0.1 }],
    keys: [],
  },
  {
    name: 'an agent that never pinged and never ran, created long ago, is silent',
    client: { lastPingAt: null, lastSuccessAt: new Date(NOW.getTime() - 60_000) },
    runs: [],
    keys: ['failing:agent-silent'],
  },
  { name: 'a ping 14 minutes ago is still on time', client: { lastPingAt: new Date(NOW.getTime() - 14 * 60_000) }, runs: steady(10), keys: [] },
  {
    name: 'missed backup: no success for 3 intervals (tolerance 2x)',
    client: { lastSuccessAt: new Date(NOW.getTime() - 3 * HOUR) },
    runs: steady(10).map((r, i) => ({ ...r, startedHoursAgo: 14 - i })),
    keys: ['missed_backup'],
  },
  {
    name: 'missed backup: a client that never backed up, created long ago',
    client: { lastSuccessAt: null, lastPingAt: new Date(NOW.getTime() - 60_000) },
    runs: [],
    keys: ['missed_backup'],
  },
  { name: 'a new client within its first intervals: nothing yet', client: { lastSuccessAt: null, createdAt: new Date(NOW.getTime() - HOUR) }, runs: [], keys: [] },
  {
    name: 'a run taking 10x longer than usual (and > 10 min more)',
    runs: [...steady(20), { durationMinutes: 50 }],
    keys: ['unusual_timing:duration'],
  },
  { name: 'a run taking 3x longer is within the usual', runs: [...steady(20), { durationMinutes: 15 }], keys: [] },
  {
    name: 'a 1-second backup taking 10 minutes longer than 5x: below the absolute floor, still 10x',
    runs: [...steady(20, { durationMinutes: 0.02 }), { durationMinutes: 5 }],
    keys: [],
  },
  { name: 'a daily client starting at its usual time', client: dailyClient, runs: daily(10, {}), keys: [] },
  {
    name: 'a daily client whose scheduled run started 6 hours late',
    client: dailyClient,
    runs: daily(10, { startedHoursAgo: 4 }),
    keys: ['unusual_timing:start'],
  },
  {
    name: 'a manual run at another time of day is not late',
    client: dailyClient,
    runs: daily(10, { startedHoursAgo: 4, trigger: 'manual' }),
    keys: [],
  },
  {
    name: 'usual start just before midnight, today just after: not late (across midnight)',
    client: { ...dailyClient, lastSuccessAt: new Date(NOW.getTime() - 11 * HOUR) },
    runs: [...Array.from({ length: 10 }, (_, i) => ({ startedHoursAgo: 12.25 + 24 * (10 - i) })), { startedHoursAgo: 11.75 }],
    keys: [],
  },
  {
    name: 'unexpected extra backups: 30 scheduled runs in 6 hours of an hourly client',
    runs: Array.from({ length: 30 }, (_, i) => ({ startedHoursAgo: 6 - i * 0.2, durationMinutes: 1 })),
    keys: ['extra_backup'],
  },
  {
    name: 'many runs started by hand are not extra scheduled backups',
    runs: [...steady(10), ...Array.from({ length: 30 }, (_, i) => ({ startedHoursAgo: 0.9 - i * 0.02, trigger: 'server', durationMinutes: 0.5 }))],
    keys: [],
  },
  {
    name: 'mass change: 9,000 of 10,000 files changed where 20 usually do',
    runs: [...steady(20), { filesChanged: 9000 }],
    keys: ['mass_change'],
  },
  {
    name: 'mass change needs enough history',
    runs: [...steady(3), { filesChanged: 9000 }],
    keys: [],
  },
  {
    name: 'a client that always changes most of its files is not a mass change',
    runs: [...steady(20, { filesChanged: 8000 }), { filesChanged: 9000 }],
    keys: [],
  },
  {
    name: 'a jump in changed files that stays a small share of the tree is not a mass change',
    runs: [...steady(20, { filesScanned: 1_000_000 }), { filesChanged: 5000, filesScanned: 1_000_000 }],
    keys: [],
  },
  // Compressibility of the new bytes (mass_change:incompressible). Encrypted bytes deflate to about 100%.
  {
    name: 'stops compressing: 64 MiB of new bytes at 100% where they compress to 35%',
    runs: [...steady(20), { sampleBytes: 64 * MiB, ratio: 1.0 }],
    keys: ['mass_change:incompressible'],
  },
  {
    name: 'stops compressing together with most files changed: both mass changes, each under its key',
    runs: [...steady(20), { sampleBytes: 64 * MiB, ratio: 1.0, filesChanged: 9000 }],
    keys: ['mass_change', 'mass_change:incompressible'],
  },
  {
    name: 'stops compressing needs enough history',
    runs: [...steady(4), { sampleBytes: 64 * MiB, ratio: 1.0 }],
    keys: [],
  },
  {
    name: 'earlier runs that sampled too little (32 KiB) are no history',
    runs: [...steady(20, { sampleBytes: 32 * 1024 }), { sampleBytes: 64 * MiB, ratio: 1.0 }],
    keys: [],
  },
  {
    name: 'a run that sampled too few bytes (512 KiB of 1 MiB) is not judged',
    runs: [...steady(20), { sampleBytes: MiB / 2, ratio: 1.0 }],
    keys: [],
  },
  {
    name: 'the threshold of sampled bytes is inclusive: exactly 1 MiB is judged',
    runs: [...steady(20), { sampleBytes: MiB, ratio: 1.0 }],
    keys: ['mass_change:incompressible'],
  },
  {
    name: 'a client whose new bytes never compress (photos, archives) is steady at 98%',
    runs: [...steady(20, { ratio: 0.98 }), { sampleBytes: 64 * MiB, ratio: 1.0 }],
    keys: [],
  },
  {
    name: 'a slow drift of the ratio (35% to 80% over 30 runs) is not an anomaly',
    runs: Array.from({ length: 30 }, (_, i) => ({ sampleBytes: 8 * MiB, ratio: 0.35 + (0.45 * i) / 29 })),
    keys: [],
  },
  {
    name: 'worse compression that still compresses (35% to 80%) is not encryption',
    runs: [...steady(20), { sampleBytes: 64 * MiB, ratio: 0.8 }],
    keys: [],
  },
  {
    name: 'a client whose runs swing between 30% and 95% is not alarmed by 100%',
    runs: [...Array.from({ length: 20 }, (_, i) => ({ ratio: i % 2 === 0 ? 0.3 : 0.95 })), { sampleBytes: 64 * MiB, ratio: 1.0 }],
    keys: [],
  },
  {
    name: 'two incompressible runs in the history do not hide the next one (median)',
    runs: [...steady(9), { ratio: 1.0 }, ...steady(9), { ratio: 1.0 }, { sampleBytes: 64 * MiB, ratio: 1.0 }],
    keys: ['mass_change:incompressible'],
  },
  {
    name: 'the run after an encrypted one that brings no new bytes holds nothing (the alert itself waits for its acknowledgement)',
    runs: [...steady(20), { sampleBytes: 64 * MiB, ratio: 1.0 }, { sampleBytes: 0 }],
    keys: [],
  },
  {
    name: 'a failed run that stored random bytes is not judged; the last good run is',
    runs: [...steady(20), { status: 'failed', sampleBytes: 64 * MiB, ratio: 1.0 }],
    keys: ['failing:run'],
  },
];

describe('alert detectors (golden cases)', () => {
  it.each(cases)('$name', ({ client: overrides, runs: specs, keys }) => {
    const found = detectAlertConditions({ client: client(overrides), runs: runs(specs), now: NOW });
    expect(found.map((c) => c.key)).toEqual(keys);
  });

  it('states the observed value beside its reference', () => {
    const [condition] = detectAlertConditions({ client: client(), runs: runs([...steady(20), { bytesUploaded: 2000 * MiB }]), now: NOW });
    expect(condition).toMatchObject<Partial<AlertCondition>>({
      type: 'unusual_size',
      severity: 'warning',
      observed: '1.95 GiB',
      reference: 'median 100.0 MiB ± 0 B over 20 runs',
    });
  });

  it('states the ratio of the new bytes beside the usual one', () => {
    const found = detectAlertConditions({ client: client(), runs: runs([...steady(20), { sampleBytes: 64 * MiB, ratio: 1.0004 }]), now: NOW });
    expect(found).toEqual([
      expect.objectContaining<Partial<AlertCondition>>({
        type: 'mass_change',
        severity: 'critical',
        observed: 'new bytes compress to 100% of their size (64.0 MiB sampled)',
        reference: 'median 35% ± 0% over 20 runs',
      }),
    ]);
  });

  it('the compressibility detector switched off says nothing, the file-count one still does', () => {
    const settings = { ...DEFAULT_ALERT_SETTINGS, incompressible: { ...DEFAULT_ALERT_SETTINGS.incompressible, enabled: false } };
    const found = detectAlertConditions({ client: client(), runs: runs([...steady(20), { sampleBytes: 64 * MiB, ratio: 1.0, filesChanged: 9000 }]), now: NOW }, settings);
    expect(found.map((c) => c.key)).toEqual(['mass_change']);
  });

  it('a disabled detector says nothing', () => {
    const settings = { ...DEFAULT_ALERT_SETTINGS, failing: { ...DEFAULT_ALERT_SETTINGS.failing, enabled: false } };
    expect(detectAlertConditions({ client: client(), runs: runs([...steady(5), { status: 'failed' }]), now: NOW }, settings)).toEqual([]);
  });

  it('the robust baseline ignores a single outlier', () => {
    expect(robustBaseline([10, 11, 9, 10, 1000])).toEqual({ median: 10, spread: 1.4826 });
  });
});
