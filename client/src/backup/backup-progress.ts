import type { PreCommandResult, RunStats } from '@cairn/shared';

export type CyclePhase = 'config' | 'pre-commands' | 'scanning' | 'hashing' | 'uploading' | 'committing' | 'finishing';

/** Live progress of the running cycle, read by the status page. */
export interface CycleProgress {
  phase: CyclePhase;
  runId: string | null;
  startedAt: string;
  filesScanned: number;
  filesToCheck: number;
  filesChecked: number;
  /** New or changed files the server has accepted so far in this run. */
  filesCommitted: number;
  bytesToHash: number;
  bytesHashed: number;
  bytesUploaded: number;
}

export type CycleTrigger = 'schedule' | 'manual' | 'server';

/** What one cycle did, kept for the status page. */
export interface CycleReport {
  runId: string | null;
  trigger: CycleTrigger;
  status: 'succeeded' | 'partial' | 'failed';
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  stats: RunStats;
  preCommands: PreCommandResult[];
  /** The reason a run failed or was partial, in one line. */
  error: string | null;
  /** The first per-file and per-command problems, for the status page. */
  problems: string[];
  /** The server refused the token (revoked, or the client was deleted). */
  authFailed: boolean;
}

export function emptyStats(): RunStats {
  return { filesScanned: 0, filesChanged: 0, filesDeleted: 0, filesFailed: 0, bytesScanned: 0, bytesUploaded: 0 };
}

export function newProgress(): CycleProgress {
  return {
    phase: 'config',
    runId: null,
    startedAt: new Date().toISOString(),
    filesScanned: 0,
    filesToCheck: 0,
    filesChecked: 0,
    filesCommitted: 0,
    bytesToHash: 0,
    bytesHashed: 0,
    bytesUploaded: 0,
  };
}
