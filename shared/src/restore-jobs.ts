/**
 * Restore jobs (issue 13, decision 142): a restore made on the dashboard and
 * carried out by an agent. The agent learns of a job through the live
 * channel's `restore` event or its ping's `restoreJobsPending`, claims it,
 * lists the job's files page by page, downloads them with its usual
 * verified downloads, reports progress (and learns of a cancel in the
 * answer), then finishes the job with its outcome.
 *
 *   POST /restore-jobs/claim            -> 200 RestoreJobSpec | 204 (none queued)
 *   GET  /restore-jobs/:jobId/files     -> FilesPage (the source client's tree as of the job's time, under its paths)
 *   POST /restore-jobs/:jobId/progress  -> RestoreJobProgressAnswer
 *   POST /restore-jobs/:jobId/finish    -> OkResponse
 */
import { Type, type Static } from 'typebox';
import { ByteCount, FileCount, FilePath, IsoTime, LIMITS, PathPrefix, PreCommandResult, Text, Uuid } from './protocol.ts';

/** Paths one job may name. */
export const RESTORE_JOB_MAX_PATHS = 100;
/** Failed files a job's outcome lists by name (the count is always whole). */
export const RESTORE_JOB_MAX_FAILURES = 100;
/** Longest post-restore command, like a pre-command. */
export const RESTORE_COMMAND_MAX_LENGTH = 4096;

export const RestoreJobStatus = Type.Union([
  Type.Literal('queued'),
  Type.Literal('running'),
  Type.Literal('succeeded'),
  Type.Literal('partial'),
  Type.Literal('failed'),
  Type.Literal('cancelled'),
]);
export type RestoreJobStatus = Static<typeof RestoreJobStatus>;

/** What the agent is told to do; everything it needs but the file list. */
export const RestoreJobSpec = Type.Object({
  jobId: Uuid,
  sourceClientName: Text({ maxLength: 255 }),
  /** The point in time restored (the job's creation time for "latest"). */
  asOf: IsoTime,
  /** Path prefixes restored, each with everything under it; `/` is the whole tree. */
  paths: Type.Array(PathPrefix, { minItems: 1, maxItems: RESTORE_JOB_MAX_PATHS }),
  /** Absolute directory on the target machine; each file lands at targetDir + its backed-up path. */
  targetDir: FilePath,
  /** Replace files already in the target (the CLI's --force). */
  overwrite: Type.Boolean(),
  /** Run with `sh -c` after the files are in place, only where the agent allows remote commands. */
  postCommand: Type.Union([Type.Null(), Text({ minLength: 1, maxLength: RESTORE_COMMAND_MAX_LENGTH })]),
  postCommandTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 86_400 }),
});
export type RestoreJobSpec = Static<typeof RestoreJobSpec>;

export const RestoreJobParams = Type.Object({ jobId: Uuid });
export type RestoreJobParams = Static<typeof RestoreJobParams>;

export const RestoreJobProgress = Type.Object({
  phase: Type.Union([Type.Literal('listing'), Type.Literal('restoring'), Type.Literal('post-command')]),
  filesTotal: FileCount,
  bytesTotal: ByteCount,
  filesDone: FileCount,
  bytesDone: ByteCount,
  filesFailed: FileCount,
});
export type RestoreJobProgress = Static<typeof RestoreJobProgress>;

export const RestoreJobProgressAnswer = Type.Object({
  /** A person cancelled the job: stop, and finish it as cancelled. */
  cancelRequested: Type.Boolean(),
});
export type RestoreJobProgressAnswer = Static<typeof RestoreJobProgressAnswer>;

export const RestoreJobFailure = Type.Object({
  path: Type.String({ maxLength: LIMITS.pathBytes * 4 }),
  error: Type.String({ maxLength: 2048 }),
});
export type RestoreJobFailure = Static<typeof RestoreJobFailure>;

export const RestoreJobFinish = Type.Object({
  status: Type.Union([Type.Literal('succeeded'), Type.Literal('partial'), Type.Literal('failed'), Type.Literal('cancelled')]),
  filesRestored: FileCount,
  bytesRestored: ByteCount,
  filesFailed: FileCount,
  failures: Type.Array(RestoreJobFailure, { maxItems: RESTORE_JOB_MAX_FAILURES }),
  /** The post-restore command's result; null when the job had none or never got that far. */
  command: Type.Union([Type.Null(), PreCommandResult]),
  /** Why the job failed as a whole (listing refused, target not writable...). */
  error: Type.Union([Type.Null(), Type.String({ maxLength: 4096 })]),
});
export type RestoreJobFinish = Static<typeof RestoreJobFinish>;
