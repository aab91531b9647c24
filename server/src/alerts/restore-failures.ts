import type { RestoreJobStatus } from '@cairn/shared';
import type { AlertCondition } from './detectors.ts';

/** The latest finished job of a restore schedule onto the client, where it did not succeed. */
export interface FailedScheduledRestore {
  scheduleId: string;
  sourceClientName: string;
  paths: string[];
  job: {
    id: string;
    status: RestoreJobStatus;
    error: string | null;
    result: { filesFailed: number; command: { exitCode: number | null; timedOut: boolean; refused?: boolean | undefined } | null } | null;
  };
}

/**
 * restore_failed conditions (decision 145): one per schedule whose latest
 * job failed or was partial, held until a later job of that schedule
 * succeeds (or the schedule goes). Ad-hoc jobs raise none: the person who
 * started one watches it on the dashboard.
 */
export function detectRestoreFailures(failed: readonly FailedScheduledRestore[]): AlertCondition[] {
  return failed.map((f) => {
    const command = f.job.result?.command ?? null;
    const why =
      f.job.error ??
      (command?.refused
        ? 'the agent refused the post-restore command (remote commands not allowed there)'
        : command && command.timedOut
          ? 'the post-restore command timed out'
          : command && command.exitCode !== 0
            ? `the post-restore command exited with ${command.exitCode ?? 'a signal'}`
            : `${f.job.result?.filesFailed ?? 0} file(s) could not be restored`);
    return {
      type: 'restore_failed',
      key: `restore_failed:${f.scheduleId}`,
      severity: 'warning',
      path: f.paths.length === 1 ? f.paths[0]! : null,
      observed: `${f.job.status}: ${why}`,
      reference: 'the scheduled restore succeeds',
      message: `the scheduled restore of ${f.paths.join(', ')} from ${f.sourceClientName} ended ${f.job.status}: ${why}`,
    };
  });
}
