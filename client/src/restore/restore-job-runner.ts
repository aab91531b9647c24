import { mkdir } from 'node:fs/promises';
import {
  RESTORE_JOB_MAX_FAILURES,
  fsPath,
  isUnderPrefix,
  type FileVersion,
  type PreCommandResult,
  type RestoreJobFailure,
  type RestoreJobFinish,
  type RestoreJobProgress,
  type RestoreJobSpec,
} from '@cairn/shared';
import { runCommand } from '../backup/command-runner.ts';
import { decideRemoteCommand } from '../backup/remote-command-policy.ts';
import type { Logger } from '../logger.ts';
import type { ApiClient } from '../net/api-client.ts';
import { errorMessage } from '../net/http-errors.ts';
import { carryOut, type RestoreTally } from './restore-command.ts';
import { planRestore } from './restore-plan.ts';

/** Progress goes to the server at most this often; its answer carries a cancel. */
export const RESTORE_PROGRESS_MS = 1000;
const RESTORE_CONCURRENCY = 4;

export interface RestoreJobSettings {
  allowRemoteCommands: boolean;
  remoteCommandAllowlist: string[] | undefined;
}

/** A restore job's tally: counts for the progress reports, the first failures by name for the outcome. */
class JobTally implements RestoreTally {
  doneFiles = 0;
  doneBytes = 0;
  failed = 0;
  readonly failures: RestoreJobFailure[] = [];

  private readonly log: Logger;
  constructor(log: Logger) {
    this.log = log;
  }

  update(): void {}

  failure(path: string, error: string): void {
    if (this.failures.length < RESTORE_JOB_MAX_FAILURES) this.failures.push({ path: path.slice(0, 16_384), error: error.slice(0, 2048) });
    this.log.warn({ path, err: error }, 'restore job: could not restore');
  }
}

/**
 * Carries out one claimed restore job with the CLI's guarantees (the same
 * plan and writer: every byte checked against its hash, nothing written
 * outside the target, nothing replaced unless the job says overwrite),
 * reporting progress every second; a cancel seen in a progress answer stops
 * it before its next file. The post-restore command runs only when every
 * file was restored and this agent allows remote commands (decision 144).
 * Never throws: the outcome is sent with finish, and returned.
 */
export async function runRestoreJob(api: ApiClient, job: RestoreJobSpec, settings: RestoreJobSettings, log: Logger): Promise<RestoreJobFinish> {
  const jobLog = log.child({ restoreJob: job.jobId });
  const tally = new JobTally(jobLog);
  const abort = new AbortController();
  let phase: RestoreJobProgress['phase'] = 'listing';
  let filesTotal = 0;
  let bytesTotal = 0;
  let reporting = false;
  const report = async () => {
    if (reporting) return;
    reporting = true;
    try {
      const answer = await api.restoreJobProgress(job.jobId, {
        phase,
        filesTotal,
        bytesTotal,
        filesDone: tally.doneFiles,
        bytesDone: tally.doneBytes,
        filesFailed: tally.failed,
      });
      if (answer.cancelRequested && !abort.signal.aborted) {
        jobLog.info('restore job cancelled on the server; stopping');
        abort.abort();
      }
    } catch (error) {
      jobLog.debug({ err: errorMessage(error) }, 'restore job progress report failed');
    } finally {
      reporting = false;
    }
  };
  const timer = setInterval(() => void report(), RESTORE_PROGRESS_MS);
  let outcome: RestoreJobFinish;
  try {
    jobLog.info({ source: job.sourceClientName, asOf: job.asOf, paths: job.paths, targetDir: job.targetDir }, 'restore job started');
    await report();
    const versions: FileVersion[] = [];
    for await (const page of api.restoreJobFiles(job.jobId)) {
      for (const file of page) if (job.paths.some((prefix) => isUnderPrefix(file.path, prefix))) versions.push(file);
      if (abort.signal.aborted) break;
    }
    const plan = planRestore(versions);
    filesTotal = plan.files.length + plan.followers.length + plan.symlinks.length;
    bytesTotal = [...plan.files, ...plan.followers.map((f) => f.file)].reduce((sum, f) => sum + f.size, 0);
    phase = 'restoring';
    let directoriesFailed = 0;
    if (!abort.signal.aborted) {
      await mkdir(fsPath(job.targetDir), { recursive: true });
      directoriesFailed = await carryOut(plan, {
        api,
        target: job.targetDir,
        options: { force: job.overwrite, owners: process.getuid?.() === 0 },
        progress: tally,
        concurrency: RESTORE_CONCURRENCY,
        signal: abort.signal,
      });
    }
    const restored = { filesRestored: Math.max(0, tally.doneFiles - tally.failed), bytesRestored: tally.doneBytes, filesFailed: tally.failed, failures: tally.failures };
    if (abort.signal.aborted) {
      outcome = { status: 'cancelled', ...restored, command: null, error: 'cancelled on the dashboard' };
    } else if (versions.length === 0) {
      outcome = { status: 'failed', ...restored, command: null, error: `nothing to restore: no backed-up file under ${job.paths.join(', ')} as of ${job.asOf}` };
    } else if (tally.failed > 0 || directoriesFailed > 0) {
      const note = job.postCommand !== null ? '; the post-restore command was not run' : '';
      outcome = { status: 'partial', ...restored, command: null, error: `${tally.failed} file(s) and ${directoriesFailed} directory(ies) could not be restored${note}` };
    } else {
      phase = 'post-command';
      const command = job.postCommand === null ? null : await postCommand(job, settings, jobLog);
      const commandFailed = command !== null && (command.refused === true || command.timedOut || command.exitCode !== 0);
      outcome = {
        status: commandFailed ? 'failed' : 'succeeded',
        ...restored,
        command,
        error: commandFailed ? (command.refused ? command.output : `the post-restore command ${command.timedOut ? 'timed out' : `exited with ${command.exitCode ?? 'a signal'}`}`) : null,
      };
    }
  } catch (error) {
    outcome = {
      status: 'failed',
      filesRestored: Math.max(0, tally.doneFiles - tally.failed),
      bytesRestored: tally.doneBytes,
      filesFailed: tally.failed,
      failures: tally.failures,
      command: null,
      error: errorMessage(error).slice(0, 4096),
    };
  } finally {
    clearInterval(timer);
  }
  try {
    await api.finishRestoreJob(job.jobId, outcome);
  } catch (error) {
    jobLog.error({ err: errorMessage(error) }, 'could not report the restore job\'s outcome');
  }
  jobLog.info({ status: outcome.status, filesRestored: outcome.filesRestored, filesFailed: outcome.filesFailed, commandExitCode: outcome.command?.exitCode ?? null }, 'restore job finished');
  return outcome;
}

async function postCommand(job: RestoreJobSpec, settings: RestoreJobSettings, log: Logger): Promise<PreCommandResult> {
  const command = job.postCommand as string;
  const decision = decideRemoteCommand(command, settings.allowRemoteCommands, settings.remoteCommandAllowlist);
  if (!decision.allowed) {
    log.warn({ command }, `post-restore command ${decision.reason}`);
    return { command, source: 'server', exitCode: null, durationMs: 0, timedOut: false, output: decision.reason, refused: true };
  }
  log.info({ command }, 'running the post-restore command');
  return runCommand({ command, timeoutSeconds: job.postCommandTimeoutSeconds, source: 'server' }, job.targetDir);
}
