/**
 * The scenarios and targets of shared/design/QUALITY.md, and what one
 * measured run of one system yields.
 */

export type ScenarioId = 'S1' | 'S2' | 'S3' | 'S4' | 'S5' | 'S6' | 'S7';

export interface ScenarioTarget {
  /** Our time / restic's time must be at most this. */
  timeRatio?: number;
  /** Our uploaded bytes / restic's added bytes must be at most this. */
  bytesRatio?: number;
  /** Peak RSS of the agent and of the server, each, / restic's must be at most this. */
  memoryRatio?: number;
  /** Our stored bytes / restic's repository after the scenario's last day must be at most this. */
  storedRatio?: number;
}

export interface Scenario {
  id: ScenarioId;
  title: string;
  dataset: 'small' | 'mixed' | 'dump' | 'pgbench';
  target: ScenarioTarget;
  targetText: string;
}

/** S6 and S7 back up one dump on each of this many days after the first. */
export const DUMP_DAYS = 7;

export const SCENARIOS: readonly Scenario[] = [
  { id: 'S1', title: 'first backup, many small files', dataset: 'small', target: { timeRatio: 0.7, memoryRatio: 1.5 }, targetText: 'time <= 0.7x restic; peak RSS <= 1.5x' },
  { id: 'S2', title: 're-run, nothing changed', dataset: 'small', target: { timeRatio: 0.5 }, targetText: 'time <= 0.5x restic' },
  { id: 'S3', title: 're-run, 1% of files changed', dataset: 'small', target: { timeRatio: 1.0, bytesRatio: 0.3 }, targetText: 'time <= 1.0x, bytes uploaded <= 0.3x restic' },
  { id: 'S4', title: 'first backup, mixed data', dataset: 'mixed', target: { timeRatio: 1.0, memoryRatio: 1.5 }, targetText: 'time <= 1.0x restic; peak RSS <= 1.5x' },
  { id: 'S5', title: 're-run of S4, nothing changed', dataset: 'mixed', target: { timeRatio: 1.5 }, targetText: 'time <= 1.5x restic' },
  { id: 'S6', title: 'generated SQL dump, 7 days of 1% scattered row edits', dataset: 'dump', target: { storedRatio: 0.25 }, targetText: 'stored after 7 days <= 0.25x restic' },
  { id: 'S7', title: 'pg_dump of pgbench, 7 days of pgbench -t', dataset: 'pgbench', target: { storedRatio: 0.25 }, targetText: 'stored after 7 days <= 0.25x restic' },
];

/** cairn-disk-pg: the disk store with the PostgreSQL server of --postgres instead of the embedded one (only with --postgres). */
export type SystemId = 'cairn-disk' | 'cairn-s3' | 'cairn-disk-pg' | 'restic';

/** One system running one scenario. */
export interface Measurement {
  scenario: ScenarioId;
  system: SystemId;
  ok: boolean;
  /** Why it failed, when it did. */
  error?: string;
  /**
   * The time compared with restic: for Cairn the agent's backup run
   * (config fetch to finished run, as the agent logs it); for restic the
   * whole `restic backup` process. See docs/benchmarks.md.
   */
  seconds: number;
  /** Cairn only: agent process start to the run's end (includes node start-up and registration). */
  processSeconds?: number;
  filesScanned: number;
  bytesScanned: number;
  filesChanged?: number;
  /** File bytes sent (Cairn: content bytes uploaded; restic: data_added). */
  bytesUploaded: number;
  /** Size of the store after the run (Cairn: blobs plus the metadata database; restic: the whole repository). */
  storedBytes: number;
  storedAllocatedBytes?: number;
  /** Cairn only: the metadata database's pg_database_size (included in storedBytes). */
  metadataBytes?: number;
  /**
   * Cairn only: the same database's size on the fresh server before its
   * first backup (system catalogs and empty tables, 8-9 MB), which S6/S7's
   * stored verdict leaves out: it judges packs plus index rows (decision 173).
   */
  metadataBaselineBytes?: number;
  /** Peak RSS in bytes: agent (Cairn) or restic. */
  agentPeakRss?: number | null;
  /** Cairn: peak of the summed PSS of the server process and its PostgreSQL's processes, sampled every 200 ms. */
  serverPeakPss?: number | null;
  resticPeakRss?: number | null;
  /** Cairn: the run's status as the agent reported it. */
  status?: string;
  /** S6/S7: the day of this backup (0 = the first dump). */
  day?: number;
  /** Not run because the system cannot run the scenario yet (the reason); such a measurement is not a failure. */
  notYet?: string;
}
