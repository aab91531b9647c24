import {
  LIMITS,
  displayPath,
  formatBytes,
  formatDuration,
  type ClientConfig,
  type FileUpsert,
  type FileVersion,
  type LogEntry,
  type PreCommandResult,
  type SimilarHint,
} from '@cairn/shared';
import type { Logger } from '../logger.ts';
import type { ApiClient } from '../net/api-client.ts';
import { PermanentError, RetryableError, errorMessage, isAuthError } from '../net/http-errors.ts';
import { DEFAULT_RETRY_POLICY, backoffDelayMs } from '../net/retry-policy.ts';
import type { CacheEntry, ScanCache } from '../state/scan-cache.ts';
import { emptyStats, newProgress, type CycleProgress, type CycleReport, type CycleTrigger } from './backup-progress.ts';
import { assembleBatches, chunked, deletedPaths, isUnchanged, sameAsServerVersion, uploadBatches, upsertOf } from './change-detector.ts';
import { assembleRecordBytes, assembleRecordPieces, type ChunkList } from './chunk-list.ts';
import { commandFailed, runCommand } from './command-runner.ts';
import { FileChangedError, KEEP_BYTES_MAX, READ_BYTES, hashFile, keepArena, mapConcurrent, type HashedFile, type KeepBytes } from './file-hasher.ts';
import { decideRemoteCommand } from './remote-command-policy.ts';
import { effectiveRoots } from './scan-roots.ts';
import { scanRoots, type ScanResult, type ScannedEntry } from './scanner.ts';
import { UPLOAD_LIMITS, uploadBatch, type UploadItem } from './uploader.ts';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** What the owner of this agent decided locally; the server's config adds to it within these bounds. */
export interface LocalBackupSettings {
  monitoredPaths: string[];
  excludes: string[];
  preCommands: string[];
  preCommandTimeoutSeconds: number;
  allowRemoteCommands: boolean;
  remoteCommandAllowlist: string[] | undefined;
  hashConcurrency: number;
  /** Always excluded (the agent's own state directory). */
  alwaysExclude: string[];
  /** Where copies of files that keep changing while read wait for their upload (decision 64); emptied by every cycle. */
  spoolDir: string;
}

/** The scan cache, kept in memory between cycles and saved after each. */
export interface CacheStore {
  load(): Promise<ScanCache | null>;
  save(cache: ScanCache): Promise<void>;
}

export interface CycleDeps {
  api: ApiClient;
  log: Logger;
  cache: CacheStore;
  settings: LocalBackupSettings;
  trigger: CycleTrigger;
  progress?: CycleProgress;
  onConfig?: (config: ClientConfig) => void;
}

/** Files hashed (and then uploaded and committed) together: bounds memory and commits progress as it goes. */
const WORK_BATCH_FILES = 2_000;
const WORK_BATCH_BYTES = 256 * 1024 * 1024;
/** Batches that start smaller: 1/8, 1/4 and 1/2 of the limits above. */
const RAMP_UP_BATCHES = 3;
const CHANGED_FILE_ATTEMPTS = 3;
/** Bytes of small files one hashing pass keeps for its upload (decision 202): one arena of this size per batch in flight. */
const KEPT_BYTES_PER_BATCH = 8 * 1024 * 1024;
/** Upload requests in flight at once (decision 198), and the fewest parts worth a request of their own. */
const UPLOAD_CONCURRENCY = 2;
const UPLOAD_MIN_PARTS = 64;
/** Chunks of large files per "which chunks are missing?" question (one request): bounds the parts in hand however large a file is. */
const CHUNK_WINDOW = LIMITS.missingBatch;
/** Bytes of chunk lists per assemble request (about 130,000 chunks, 1 GiB of content); a longer list travels alone. */
const ASSEMBLE_REQUEST_BYTES = 4 * 1024 * 1024;
const PROBLEMS_KEPT = 50;
/** Problems sent to the server per run: the rest of a batch is one "more not sent" line and the run's summary. */
const LOGS_SENT = LIMITS.logBatch - 2;

interface HashedEntry {
  entry: ScannedEntry;
  hashed: HashedFile;
}

/** What hashing needs from the cycle: its limits, its progress, and where per-file outcomes go. */
interface Hashing {
  concurrency: number;
  progress: CycleProgress;
  spoolDir: string;
  fileFailed: (path: string, reason: string) => void;
  /** Warned, not failed: the file is backed up with the bytes as read. */
  storedAsRead: (path: string) => void;
  /** The content this path had at the last backup (the scan cache's), which the server may store new bytes as deltas against. */
  previousOf: (path: string) => string | undefined;
  /**
   * Read buffers (READ_BYTES each) not in use, kept for the whole cycle: a
   * batch's hashing and a re-hash of the previous batch's changed files may
   * run at once, so each worker takes one and gives it back (decision 192).
   */
  buffers: Buffer[];
  /**
   * Arenas (KEPT_BYTES_PER_BATCH each) for small files' bytes kept from
   * hashing to upload, not in use: kept for the whole cycle and reused, since
   * one freshly allocated per batch is freed only by a full collection, and
   * V8 lets 64 MB of such external memory pile up before it runs one
   * (decision 202).
   */
  arenas: Buffer[];
}

/** The arenas one batch's kept bytes are in, given back to the cycle's (giveBack) once the batch is uploaded. */
type ArenaLease = Buffer[];

function giveBack(hashing: Hashing, lease: ArenaLease): void {
  hashing.arenas.push(...lease);
  lease.length = 0;
}

/**
 * One backup cycle: config -> run -> pre-commands -> scan -> change
 * detection -> hash -> missing -> upload -> changes -> deletes -> finish.
 * Never throws: the outcome, good or bad, is the returned report.
 */
export async function runBackupCycle(deps: CycleDeps): Promise<CycleReport> {
  const { api, log, settings } = deps;
  const progress = deps.progress ?? newProgress();
  const started = Date.now();
  const stats = emptyStats();
  const preCommands: PreCommandResult[] = [];
  const problems: string[] = [];
  const serverLogs: LogEntry[] = [];
  let runId: string | null = null;
  let fatal: string | null = null;
  let degraded: string | null = null;
  let droppedLogs = 0;
  let authFailed = false;

  // Messages are for people: names that are not valid UTF-8 read as \xNN there; the `path` field keeps the exact spelling.
  const problem = (level: 'warn' | 'error', message: string, fields: Record<string, unknown> = {}) => {
    log[level]({ runId, ...fields }, message);
    if (problems.length < PROBLEMS_KEPT) problems.push(message);
    if (serverLogs.length < LOGS_SENT) {
      serverLogs.push({ at: new Date().toISOString(), level, message: message.slice(0, 8000), ...(runId ? { runId } : {}) });
    } else droppedLogs += 1;
  };
  const fileFailed = (path: string, reason: string) => {
    stats.filesFailed += 1;
    problem('warn', `${displayPath(path)}: ${reason}`, { path });
  };
  let cache: ScanCache = new Map();
  let cacheDirty = false;
  const hashing: Hashing = {
    concurrency: settings.hashConcurrency,
    progress,
    spoolDir: settings.spoolDir,
    fileFailed,
    storedAsRead: (path) =>
      problem('warn', `${displayPath(path)}: changed while being read ${CHANGED_FILE_ATTEMPTS} times; stored the bytes as read, which may mix old and new content`, { path }),
    previousOf: (path) => cache.get(path)?.sha256 ?? undefined,
    buffers: [],
    arenas: [],
  };

  try {
    progress.phase = 'config';
    const config = await api.config();
    deps.onConfig?.(config);
    const started = await api.startRun({ trigger: deps.trigger });
    runId = started.runId;
    // Contents the server found damaged: their files are read again even if unchanged, so the bytes are sent again.
    const recheck = new Set(started.recheck ?? []);
    progress.runId = runId;
    log.info({ runId, trigger: deps.trigger }, 'backup run started');

    progress.phase = 'pre-commands';
    preCommands.push(...(await runPreCommands(config, settings, log)));
    degraded = reportPreCommands(preCommands, problem);

    await emptyDirectory(settings.spoolDir);
    progress.phase = 'scanning';
    const scan = await scanStage(config, settings, progress, log, problem);
    for (const error of scan.errors) fileFailed(error.path, error.message);
    stats.filesScanned = scan.entries.filter((entry) => entry.kind !== 'directory').length;
    for (const entry of scan.entries) if (entry.kind === 'file') stats.bytesScanned += entry.size;

    const known = await knownFiles(api, deps.cache, log);
    const serverFiles = known.serverFiles;
    if (known.cache !== null) cache = known.cache;
    const { seen, todo, directories } = changedEntries(scan.entries, cache, recheck, fileFailed);
    // From here the scan's entries live only in the batches, each let go once committed (decision 192):
    // by the last batch the new cache's entries have replaced them instead of sitting next to them.
    scan.entries.length = 0;
    progress.filesToCheck = todo.length;
    progress.bytesToHash = todo.reduce((sum, e) => sum + (e.kind === 'file' ? e.size : 0), 0);

    /** Commits upserts; returns the paths the server refused because their content was collected meanwhile. */
    const commit = async (upserts: FileUpsert[], cacheEntries: Map<string, CacheEntry>, countsAsFiles = true): Promise<Set<string>> => {
      progress.phase = 'committing';
      const refused = new Set<string>();
      for (const slice of chunked(upserts, LIMITS.changesBatch)) {
        const answer = await commitChanges(api, runId as string, slice, cacheEntries);
        for (const path of answer.refused) refused.add(path);
        if (countsAsFiles) stats.filesChanged += answer.opened;
        progress.filesCommitted += slice.length;
        for (const upsert of slice) {
          const entry = cacheEntries.get(upsert.path);
          if (entry) cache.set(upsert.path, entry);
        }
        cacheDirty = true;
      }
      return refused;
    };

    /** Adds the change to this commit, unless (after a lost cache) the server's current version already says it. */
    const stage = (change: { upsert: FileUpsert; cached: CacheEntry }, upserts: FileUpsert[], cacheEntries: Map<string, CacheEntry>) => {
      if (sameAsServerVersion(change.upsert, serverFiles?.get(change.upsert.path))) {
        cache.set(change.upsert.path, change.cached);
        cacheDirty = true;
      } else {
        upserts.push(change.upsert);
        cacheEntries.set(change.upsert.path, change.cached);
      }
    };

    /** Makes sure the server holds the batch's contents. */
    const uploadWork = async (hashed: HashedEntry[], missing: Set<string>, lease: ArenaLease): Promise<{ held: HashedEntry[]; uploadMs: number }> => {
      const t1 = performance.now();
      try {
        const held = await ensureHeld(api, runId as string, hashed, stats, hashing, log, missing);
        return { held, uploadMs: performance.now() - t1 };
      } finally {
        dropKeptBytes(hashed);
        giveBack(hashing, lease);
      }
    };

    const commitWork = async (work: WorkBatch, uploaded: { held: HashedEntry[]; uploadMs: number }, hashMs: number) => {
      const upserts: FileUpsert[] = [];
      const cacheEntries = new Map<string, CacheEntry>();
      for (const link of work.symlinks) {
        progress.filesChecked += 1;
        stage(upsertOf(link), upserts, cacheEntries);
      }
      const addFiles = (held: readonly HashedEntry[]) => {
        for (const { entry, hashed: h } of held) {
          const change = upsertOf(entry, h);
          if (h.spool) change.upsert.changedWhileRead = true;
          stage(change, upserts, cacheEntries);
        }
      };
      const t2 = performance.now();
      let held = uploaded.held;
      addFiles(held);
      let refused = await commit(upserts, cacheEntries);
      // GC collected contents between their upload and this commit (docs/server.md): upload them again and commit again.
      for (let round = 1; refused.size > 0; round += 1) {
        const again = held.filter((item) => refused.has(item.entry.path));
        if (round > CHANGED_FILE_ATTEMPTS) {
          for (const item of again) fileFailed(item.entry.path, `its content was collected by the server before it could be committed, ${round - 1} times`);
          break;
        }
        log.info({ files: again.length }, 'contents collected before their commit; uploading them again');
        await removeSpools(held.filter((item) => !refused.has(item.entry.path)));
        held = await ensureHeld(api, runId as string, again, stats, hashing, log);
        upserts.length = 0;
        cacheEntries.clear();
        addFiles(held);
        refused = await commit(upserts, cacheEntries);
      }
      await removeSpools(held);
      log.debug(
        { files: work.files.length, symlinks: work.symlinks.length, hashMs: Math.round(hashMs), uploadMs: Math.round(uploaded.uploadMs), commitMs: Math.round(performance.now() - t2) },
        'batch done',
      );
    };

    // Three stages in a pipeline (decision 180): while batch i uploads, batch i+1 is read and hashed and
    // batch i-1 is committed, so the agent's reads, the uploads and the server's commits overlap instead
    // of taking turns. Commits stay in batch order, one at a time; a commit only ever follows its own
    // batch's upload, so nothing is committed before the server holds its bytes.
    const batches = workBatches(todo);
    todo.length = 0;
    const hashBatch = (work: WorkBatch | undefined) => {
      if (work === undefined) return null;
      const started = performance.now();
      // The batch's "which are missing?" is asked as soon as it is hashed, while the previous batch still uploads.
      const lease: ArenaLease = [];
      return hashAll(work.files, hashing, lease).then(async (hashed) => ({
        hashed,
        lease,
        ms: performance.now() - started,
        missing: await askMissing(api, [...new Set(hashed.map((item) => item.hashed.sha256))]),
      }));
    };
    let nextHashed = hashBatch(batches[0]);
    let committing: Promise<void> = Promise.resolve();
    let commitFailure: { error: unknown } | undefined;
    // A batch's question was asked while the previous batch uploaded: what that batch got held (a duplicate
    // across the two) is not sent again.
    let previousHeld: ReadonlySet<string> = new Set();
    try {
      for (let i = 0; i < batches.length; i += 1) {
        const { hashed, lease, ms, missing } = await (nextHashed as NonNullable<typeof nextHashed>);
        nextHashed = hashBatch(batches[i + 1]);
        // A failure of the next batch's hashing surfaces when it is awaited, not as an unhandled rejection.
        nextHashed?.catch(() => undefined);
        if (commitFailure) throw commitFailure.error;
        let uploaded: Awaited<ReturnType<typeof uploadWork>>;
        for (const sha of previousHeld) missing.delete(sha);
        try {
          uploaded = await uploadWork(hashed, missing, lease);
          previousHeld = new Set(uploaded.held.map((item) => item.hashed.sha256));
        } catch (error) {
          await removeSpools(hashed);
          throw error;
        }
        const work = batches[i] as WorkBatch;
        batches[i] = DONE_BATCH;
        // After a failed commit the later ones are not tried: the chain stays rejected with the first failure.
        committing = committing.then(() => commitWork(work, uploaded, ms)).finally(() => removeSpools(hashed));
        committing.catch((error: unknown) => {
          commitFailure ??= { error };
        });
      }
      await committing;
    } finally {
      // A run that fails mid-way still lets the batch being hashed and the one being committed finish before the cycle reports.
      await nextHashed?.catch(() => undefined);
      await committing.catch(() => undefined);
    }

    // Directories after their contents, and not counted as changed files: one changes whenever a name in it does.
    const directoryUpserts: FileUpsert[] = [];
    const directoryEntries = new Map<string, CacheEntry>();
    for (const directory of directories) stage(upsertOf(directory), directoryUpserts, directoryEntries);
    await commit(directoryUpserts, directoryEntries, false);

    progress.phase = 'committing';
    const knownPaths = serverFiles === null ? cache.keys() : new Set([...cache.keys(), ...serverFiles.keys()]);
    const deletes = deletedPaths(knownPaths, seen, scan.unseenPrefixes);
    for (const slice of chunked(deletes, LIMITS.changesBatch)) {
      await commitChanges(api, runId, [], new Map(), slice);
      stats.filesDeleted += slice.length;
      for (const path of slice) cache.delete(path);
      cacheDirty = true;
    }
    if (scan.errors.length > 0) degraded ??= `${scan.errors.length} path(s) could not be read`;
    if (stats.filesFailed > 0) degraded ??= `${stats.filesFailed} file(s) not backed up`;
  } catch (error) {
    fatal = errorMessage(error);
    authFailed = isAuthError(error);
    problem('error', `backup run failed: ${fatal}`);
  }

  progress.phase = 'finishing';
  await emptyDirectory(settings.spoolDir).catch((spoolError: unknown) => log.warn({ err: errorMessage(spoolError) }, 'could not empty the spool directory'));
  // Only when the server accepted something: a run with nothing to do leaves the file alone.
  if (cacheDirty) {
    try {
      await deps.cache.save(cache);
    } catch (error) {
      problem('warn', `could not save the scan cache: ${errorMessage(error)}`);
    }
  }
  let outcome: RunOutcome = { status: fatal !== null ? 'failed' : degraded !== null ? 'partial' : 'succeeded', error: fatal ?? degraded };
  if (runId !== null) {
    if (droppedLogs > 0) serverLogs.push({ at: new Date().toISOString(), level: 'warn', message: `${droppedLogs} more problems not sent`, runId });
    // Every run's outcome reaches the client's log on the server, not only its problems.
    serverLogs.push({ at: new Date().toISOString(), level: 'info', message: runSummary(outcome.status, stats, Date.now() - started, outcome.error).slice(0, 8000), runId });
    outcome = await reportRun(api, log, runId, serverLogs, { ...outcome, stats, preCommands });
  }
  const { status, error } = outcome;
  const report: CycleReport = {
    runId,
    trigger: deps.trigger,
    status,
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date().toISOString(),
    durationMs: Date.now() - started,
    stats,
    preCommands,
    error,
    problems,
    authFailed,
  };
  log.info({ runId, status, durationMs: report.durationMs, ...stats, error }, `backup run ${status}`);
  return report;
}

interface RunOutcome {
  status: CycleReport['status'];
  error: string | null;
}

/**
 * Sends the run's logs and its end to the server. A run the server did not
 * hear finish is failed, whatever it was: what was committed stays committed,
 * but the server's record of it says "running".
 */
async function reportRun(
  api: ApiClient,
  log: Logger,
  runId: string,
  serverLogs: LogEntry[],
  run: RunOutcome & { stats: CycleReport['stats']; preCommands: PreCommandResult[] },
): Promise<RunOutcome> {
  try {
    await api.logs({ entries: serverLogs });
  } catch (logError) {
    log.warn({ err: errorMessage(logError) }, 'could not send logs to the server');
  }
  try {
    await api.finishRun(runId, { status: run.status, stats: run.stats, preCommands: run.preCommands, ...(run.error ? { error: run.error.slice(0, 8000) } : {}) });
    return { status: run.status, error: run.error };
  } catch (finishError) {
    log.warn({ runId, err: errorMessage(finishError) }, 'could not finish the run on the server');
    return { status: 'failed', error: `the server did not record the end of this run: ${errorMessage(finishError)}` };
  }
}

/** One line for people: the run's status, counts, bytes and duration (and why it was not a success). */
export function runSummary(status: CycleReport['status'], stats: CycleReport['stats'], durationMs: number, error: string | null): string {
  const counts = `${stats.filesScanned} files scanned, ${stats.filesChanged} changed, ${stats.filesDeleted} deleted, ${stats.filesFailed} failed`;
  const bytes = `${formatBytes(stats.bytesScanned)} scanned, ${formatBytes(stats.bytesUploaded)} uploaded`;
  return `backup run ${status}: ${counts}; ${bytes}; took ${formatDuration(durationMs)}${error ? `; ${error}` : ''}`;
}

/** Each failed, timed-out or refused pre-command as an error; returns why the run is partial because of them, or null. */
function reportPreCommands(results: readonly PreCommandResult[], problem: (level: 'error', message: string, fields: Record<string, unknown>) => void): string | null {
  let degraded: string | null = null;
  for (const result of results) {
    if (!commandFailed(result)) continue;
    const why = result.refused ? result.output : result.timedOut ? 'timed out' : `exit code ${result.exitCode}`;
    degraded ??= `pre-command failed: ${result.command} (${why})`;
    problem('error', `pre-command (${result.source}) failed: ${result.command}: ${why}\n${result.output.slice(-2000)}`, {
      command: result.command,
      exitCode: result.exitCode,
      timedOut: result.timedOut,
    });
  }
  return degraded;
}

/** Walks the union of local and central monitored paths with every exclude; throws when there is nothing to walk. */
async function scanStage(
  config: ClientConfig,
  settings: LocalBackupSettings,
  progress: CycleProgress,
  log: Logger,
  problem: (level: 'warn', message: string) => void,
): Promise<ScanResult> {
  const { roots, invalid } = effectiveRoots([...settings.monitoredPaths, ...config.monitoredPaths]);
  for (const bad of invalid) problem('warn', `ignored monitored path ${JSON.stringify(bad)}: not an absolute path`);
  if (roots.length === 0) throw new Error('no monitored paths configured');
  const scan = await scanRoots(roots, [...settings.excludes, ...config.excludes, ...settings.alwaysExclude], () => {
    progress.filesScanned += 1;
  });
  for (const skipped of scan.skipped) log.info({ path: skipped.path }, skipped.message);
  return scan;
}

/**
 * What the server already has: the scan cache, or, when it is lost (or this
 * is the first run), the server's current file list, so deletes are found and
 * identical versions are not sent again.
 */
async function knownFiles(api: ApiClient, store: CacheStore, log: Logger): Promise<{ cache: ScanCache | null; serverFiles: Map<string, FileVersion> | null }> {
  const cache = await store.load();
  if (cache !== null) return { cache, serverFiles: null };
  const serverFiles = new Map<string, FileVersion>();
  for await (const page of api.allFiles({ limit: LIMITS.maxPageSize })) for (const file of page) serverFiles.set(file.path, file);
  log.info({ serverFiles: serverFiles.size }, 'no scan cache: resynchronising from the server file list');
  return { cache: null, serverFiles };
}

/** Every path seen, and the entries to read (changed against the cache), in path order. */
function changedEntries(
  entries: readonly ScannedEntry[],
  cache: ScanCache,
  recheck: ReadonlySet<string>,
  fileFailed: (path: string, reason: string) => void,
): { seen: Set<string>; todo: ScannedEntry[]; directories: ScannedEntry[] } {
  const seen = new Set<string>();
  const todo: ScannedEntry[] = [];
  const directories: ScannedEntry[] = [];
  for (const entry of entries) {
    seen.add(entry.path);
    if (Buffer.byteLength(entry.path) > LIMITS.pathBytes) fileFailed(entry.path, 'path too long to store');
    else if (!isUnchanged(entry, cache.get(entry.path)) || recheck.has(cache.get(entry.path)?.sha256 ?? '')) {
      (entry.kind === 'directory' ? directories : todo).push(entry);
    }
  }
  // Path order (readdir order is the filesystem's whim): batches and their commits become predictable.
  const byPath = (a: ScannedEntry, b: ScannedEntry) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  todo.sort(byPath);
  directories.sort(byPath);
  return { seen, todo, directories };
}

async function runPreCommands(config: ClientConfig, settings: LocalBackupSettings, log: Logger): Promise<PreCommandResult[]> {
  const results: PreCommandResult[] = [];
  for (const pre of config.preCommands) {
    const decision = decideRemoteCommand(pre.command, settings.allowRemoteCommands, settings.remoteCommandAllowlist);
    if (!decision.allowed) {
      results.push({ command: pre.command, source: 'server', exitCode: null, durationMs: 0, timedOut: false, output: decision.reason, refused: true });
      continue;
    }
    log.info({ command: pre.command, source: 'server' }, 'running pre-command');
    results.push(await runCommand({ command: pre.command, timeoutSeconds: pre.timeoutSeconds, source: 'server' }));
  }
  for (const command of settings.preCommands) {
    log.info({ command, source: 'local' }, 'running pre-command');
    results.push(await runCommand({ command, timeoutSeconds: settings.preCommandTimeoutSeconds, source: 'local' }));
  }
  return results;
}

interface WorkBatch {
  files: ScannedEntry[];
  symlinks: ScannedEntry[];
}

/** What a batch's place in the list holds once it is handed to its commit, so its entries are garbage after it. */
const DONE_BATCH: WorkBatch = Object.freeze({ files: [], symlinks: [] });

/**
 * Consecutive batches of at most WORK_BATCH_FILES entries and WORK_BATCH_BYTES
 * of files. The first ones are smaller (1/8, 1/4, 1/2 of both), so the
 * pipeline's stages start overlapping after a short first hash instead of a
 * full batch's (decision 180).
 */
export function workBatches(todo: readonly ScannedEntry[]): WorkBatch[] {
  const batches: WorkBatch[] = [];
  let current: WorkBatch = { files: [], symlinks: [] };
  let bytes = 0;
  const share = () => 1 / 2 ** Math.max(0, RAMP_UP_BATCHES - batches.length);
  for (const entry of todo) {
    const count = current.files.length + current.symlinks.length;
    if (count > 0 && (count >= WORK_BATCH_FILES * share() || bytes + entry.size > WORK_BATCH_BYTES * share())) {
      batches.push(current);
      current = { files: [], symlinks: [] };
      bytes = 0;
    }
    if (entry.kind === 'symlink') current.symlinks.push(entry);
    else {
      current.files.push(entry);
      bytes += entry.size;
    }
  }
  if (current.files.length + current.symlinks.length > 0) batches.push(current);
  return batches;
}

/**
 * Hashes with bounded concurrency, each file read into a 1 MiB buffer of the
 * cycle's (at most one per worker in use at once, reused batch after batch). A file
 * that changes while read is read again; on the last try its bytes are also
 * copied to the spool directory and, if it changed again, stored as read.
 */
async function hashAll(files: readonly ScannedEntry[], hashing: Hashing, lease: ArenaLease): Promise<HashedEntry[]> {
  const { progress } = hashing;
  progress.phase = 'hashing';
  // Small files' bytes are read into an arena leased for the batch and kept for the upload, which then reads nothing (decision 202).
  let keep: KeepBytes = () => undefined;
  if (files.some((entry) => entry.size > 0 && entry.size <= KEEP_BYTES_MAX)) {
    const arena = hashing.arenas.pop() ?? Buffer.allocUnsafeSlow(KEPT_BYTES_PER_BATCH);
    lease.push(arena);
    keep = keepArena(arena);
  }
  const results = await mapConcurrent(files, hashing.concurrency, async (entry) => {
    // One buffer per file hashed, taken from the cycle's and given back: not 1 MiB per worker per batch, garbage until a full GC.
    const buffer = hashing.buffers.pop() ?? Buffer.allocUnsafe(READ_BYTES);
    try {
      const hashed = await hashWithRetry(entry.path, buffer, hashing.spoolDir, keep);
      if (hashed.spool) hashing.storedAsRead(entry.path);
      progress.bytesHashed += hashed.size;
      return { entry, hashed };
    } catch (error) {
      hashing.fileFailed(entry.path, error instanceof FileChangedError ? `${error.message}; gave up after ${CHANGED_FILE_ATTEMPTS} tries` : readError(error));
      return null;
    } finally {
      hashing.buffers.push(buffer);
      progress.filesChecked += 1;
    }
  });
  return results.filter((r): r is HashedEntry => r !== null);
}

async function hashWithRetry(path: string, buffer: Buffer, spoolDir: string, keep: KeepBytes): Promise<HashedFile> {
  for (let attempt = 1; ; attempt += 1) {
    const last = attempt >= CHANGED_FILE_ATTEMPTS;
    try {
      return await hashFile(path, buffer, last ? join(spoolDir, `${randomBytes(12).toString('hex')}.spool`) : undefined, keep);
    } catch (error) {
      if (!(error instanceof FileChangedError) || last) throw error;
    }
  }
}

/** Where an upload reads a hashed file's bytes: its spooled copy when it has one; the bytes kept from hashing when it has those. */
function uploadSource(item: HashedEntry): { path: string; mtimeMs: number; bytes?: Buffer } {
  if (item.hashed.spool) return item.hashed.spool;
  const source = { path: item.entry.path, mtimeMs: item.hashed.mtimeMs };
  return item.hashed.bytes === undefined ? source : { ...source, bytes: item.hashed.bytes };
}

/** Lets go of the bytes kept from hashing once the server holds them: the batch's arena is freed with the last view (decision 202). */
function dropKeptBytes(items: readonly HashedEntry[]): void {
  // Assigned, not deleted: a deleted property would turn each record into a slower, larger dictionary.
  for (const item of items) item.hashed.bytes = undefined;
}

async function removeSpools(items: readonly HashedEntry[]): Promise<void> {
  for (const item of items) if (item.hashed.spool) await unlink(item.hashed.spool.path).catch(() => undefined);
}

/** Removes what a directory holds (or creates it): spooled copies left by a crashed cycle are garbage. */
async function emptyDirectory(directory: string): Promise<void> {
  await rm(directory, { recursive: true, force: true });
  await mkdir(directory, { recursive: true, mode: 0o700 });
}

function readError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'vanished before it could be read';
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read (permission denied)';
  if (code === 'ELOOP') return 'replaced by a symlink while scanning';
  return `cannot be read: ${errorMessage(error)}`;
}

/**
 * Makes sure the server holds the content of every hashed file: asks which
 * hashes are missing, uploads the missing small contents whole and, of each
 * missing large one, only the chunks the server does not hold (then commits
 * it from its chunk list), in batched multipart requests; retries network
 * trouble after asking again, and re-hashes files that changed while being
 * uploaded. Returns the entries whose content the server now holds.
 */
async function ensureHeld(
  api: ApiClient,
  runId: string,
  hashed: HashedEntry[],
  stats: { bytesUploaded: number },
  hashing: Hashing,
  log: Logger,
  /** The answer to "which are missing?" for these contents, when already asked. */
  knownMissing?: Set<string>,
): Promise<HashedEntry[]> {
  const { progress, fileFailed } = hashing;
  // Files re-hashed because they changed meanwhile keep their bytes in arenas of their own, given back at the end.
  const lease: ArenaLease = [];
  try {
    let pending = hashed;
    const held: HashedEntry[] = [];
    for (let round = 1; pending.length > 0; round += 1) {
      const byHash = new Map<string, HashedEntry[]>();
      const byPath = new Map<string, HashedEntry[]>();
      for (const item of pending) {
        addTo(byHash, item.hashed.sha256, item);
        addTo(byPath, uploadSource(item).path, item);
      }
      const sending: PartSending = {
        api,
        runId,
        stats,
        progress,
        log,
        byPath,
        changed: new Set<HashedEntry>(),
        resend: new Set<string>(),
        similarTo: (item, offset) => {
          const previous = hashing.previousOf(item.entry.path);
          return previous !== undefined && previous !== item.hashed.sha256 ? { similar: { sha256: previous, offset } } : {};
        },
        answered: new Set<string>(),
      };
      const { changed } = sending;
      /** Contents the server refused to assemble for a reason other than missing chunks, with that reason. */
      const refused = new Map<string, string>();
      let missing = round === 1 && knownMissing !== undefined ? knownMissing : await askMissing(api, [...byHash.keys()]);
      progress.phase = 'uploading';
      // Bounded: network trouble gets the usual retries, changed files their own; what is still missing then fails per file.
      for (let attempt = 0; missing.size > 0 && attempt < DEFAULT_RETRY_POLICY.attempts + CHANGED_FILE_ATTEMPTS; attempt += 1) {
        const whole: UploadItem[] = [];
        const chunked: HashedEntry[] = [];
        for (const sha of missing) {
          if (refused.has(sha)) continue;
          const source = byHash.get(sha)?.find((candidate) => !changed.has(candidate));
          if (source === undefined) continue;
          if (source.hashed.chunks !== undefined) chunked.push(source);
          else whole.push({ sha256: sha, size: source.hashed.size, ...uploadSource(source), ...sending.similarTo(source, 0) });
        }
        if (whole.length === 0 && chunked.length === 0) break;
        let failure = await sendParts(sending, whole);
        if (failure === null) failure = await uploadMissingChunks(sending, chunked);
        if (failure === null) failure = await assembleContents(sending, chunked, refused);
        if (failure !== null) {
          if (!(failure instanceof RetryableError) || attempt + 1 >= DEFAULT_RETRY_POLICY.attempts) throw failure;
          const delay = backoffDelayMs(attempt, DEFAULT_RETRY_POLICY, Math.random());
          log.warn({ err: failure.message, attempt: attempt + 1, delayMs: delay }, 'upload failed; retrying');
          await sleep(delay);
        }
        // Only what no answer covered is asked about again: after a clean round, nothing (decision 180).
        const unanswered = [...missing].filter((sha) => !sending.answered.has(sha));
        missing = unanswered.length === 0 ? new Set() : await askMissing(api, unanswered);
      }
      const again: HashedEntry[] = [];
      for (const [sha, list] of byHash) {
        for (const item of list) {
          if (changed.has(item)) again.push(item);
          else if (missing.has(sha)) fileFailed(item.entry.path, `its content could not be uploaded${refused.has(sha) ? `: ${refused.get(sha)}` : ''}`);
          else held.push(item);
        }
      }
      if (again.length === 0) break;
      if (round >= CHANGED_FILE_ATTEMPTS) {
        for (const item of again) fileFailed(item.entry.path, `kept changing while being uploaded; gave up after ${round} tries`);
        break;
      }
      await removeSpools(again);
      pending = await hashAll(
        again.map((item) => item.entry),
        hashing,
        lease,
      );
    }
    // The server holds all of these now: their kept bytes are not needed again, even if GC makes the commit re-upload them.
    dropKeptBytes(held);
    return held;
  } finally {
    giveBack(hashing, lease);
  }
}

function addTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** What sending parts needs: where to count bytes, and which files turned out changed (by the path their bytes are read from). */
interface PartSending {
  api: ApiClient;
  runId: string;
  stats: { bytesUploaded: number };
  progress: CycleProgress;
  log: Logger;
  byPath: ReadonlyMap<string, readonly HashedEntry[]>;
  changed: Set<HashedEntry>;
  /** Chunks an assemble answer named as not held: sent again even if "which are missing?" says otherwise. */
  resend: Set<string>;
  /** The hint for bytes of `item` at `offset`: its file's previous content, when it had another one. */
  similarTo: (item: HashedEntry, offset: number) => { similar?: SimilarHint };
  /** Contents and chunks an upload or assemble answer said the user now holds: not asked about again. */
  answered: Set<string>;
}

/**
 * Uploads parts in several requests at once (the server's pack writes and
 * commits overlap instead of queueing). Counts the bytes of every part the
 * server answered for, marks the files whose bytes changed, and returns the
 * first failure (or null) for the caller to retry after asking again.
 */
async function sendParts(sending: PartSending, items: readonly UploadItem[]): Promise<Error | null> {
  if (items.length === 0) return null;
  const { api, runId, stats, progress, log } = sending;
  const partsPerRequest = Math.max(UPLOAD_MIN_PARTS, Math.min(UPLOAD_LIMITS.maxParts, Math.ceil(items.length / UPLOAD_CONCURRENCY)));
  const outcomes = await mapConcurrent(uploadBatches(items, UPLOAD_LIMITS.maxBytes, partsPerRequest), UPLOAD_CONCURRENCY, async (batch) => {
    try {
      return await uploadBatch(api, runId, batch, (bytes) => {
        progress.bytesUploaded += bytes;
      });
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  });
  let failure: Error | null = null;
  for (const outcome of outcomes) {
    if (isCollectedWhileUploading(outcome)) {
      // The documented GC race (docs/server.md): the named contents are missing again, asked for below and re-sent.
      log.info({ contents: outcome.missing.length, err: outcome.message }, 'contents collected while uploading; uploading them again');
      continue;
    }
    if (outcome instanceof Error) {
      failure ??= outcome;
      continue;
    }
    for (const result of outcome.uploaded) {
      stats.bytesUploaded += result.size;
      sending.answered.add(result.sha256);
    }
    for (const item of outcome.changed) {
      for (const candidate of sending.byPath.get(item.path) ?? []) sending.changed.add(candidate);
      log.info({ path: item.path }, 'file changed while uploading; it will be read again');
    }
  }
  return failure;
}

/**
 * Uploads the chunks of these contents that the server does not hold, a
 * window of chunks at a time (one "which are missing?" question each), so
 * the parts in hand stay bounded however large a file is. A chunk is read
 * from its file (or spooled copy) by range and must still hash to its name;
 * one that does not marks the file changed (its other chunks are skipped).
 */
async function uploadMissingChunks(sending: PartSending, contents: readonly HashedEntry[]): Promise<Error | null> {
  let window: { entry: HashedEntry; sha256: string; offset: number; size: number }[] = [];
  const flush = async (): Promise<Error | null> => {
    const missing = await askMissing(sending.api, [...new Set(window.map((chunk) => chunk.sha256))]);
    for (const sha256 of sending.resend) missing.add(sha256);
    const items: UploadItem[] = [];
    for (const { entry, sha256, offset, size } of window) {
      if (sending.changed.has(entry) || !missing.delete(sha256)) continue;
      sending.resend.delete(sha256);
      items.push({ sha256, size, offset, fileSize: entry.hashed.size, ...uploadSource(entry), ...sending.similarTo(entry, offset) });
    }
    window = [];
    return sendParts(sending, items);
  };
  for (const entry of contents) {
    if (sending.changed.has(entry)) continue;
    for (const chunk of entry.hashed.chunks?.entries() ?? []) {
      window.push({ entry, sha256: chunk.sha256, offset: chunk.offset, size: chunk.size });
      if (window.length < CHUNK_WINDOW) continue;
      const failure = await flush();
      if (failure !== null) return failure;
    }
  }
  return window.length > 0 ? flush() : null;
}

/**
 * Commits contents from their chunk lists (`POST /contents/assemble`),
 * several to a request, up to ASSEMBLE_REQUEST_BYTES of records (a longer
 * list travels alone). A 409 naming chunks the server does not hold (GC
 * took them, or an upload of them was cut short) is not a failure: the
 * caller asks again what is missing and uploads those chunks. Any other
 * refusal is tried once more per content alone, and a content refused alone
 * is recorded in `refused` with the server's reason (its files fail).
 */
async function assembleContents(sending: PartSending, contents: readonly HashedEntry[], refused: Map<string, string>): Promise<Error | null> {
  const records = contents.filter((entry) => !sending.changed.has(entry) && entry.hashed.chunks !== undefined);
  for (const batch of assembleBatches(records, (entry) => assembleRecordBytes(entry.hashed.chunks as ChunkList), ASSEMBLE_REQUEST_BYTES)) {
    const outcome = await assembleOnce(sending, batch);
    if (outcome instanceof Error) return outcome;
    if (outcome === null) continue;
    if (batch.length === 1) {
      refused.set((batch[0] as HashedEntry).hashed.sha256, outcome.refused);
      continue;
    }
    for (const entry of batch) {
      const alone = await assembleOnce(sending, [entry]);
      if (alone instanceof Error) return alone;
      if (alone !== null) refused.set(entry.hashed.sha256, alone.refused);
    }
  }
  return null;
}

/** One assemble request: null when answered (or 409 for missing chunks), the reason when refused otherwise, or the failure. */
async function assembleOnce(sending: PartSending, batch: readonly HashedEntry[]): Promise<{ refused: string } | Error | null> {
  const pieces = batch.flatMap((entry) => assembleRecordPieces(entry.hashed.sha256, entry.hashed.size, entry.hashed.chunks as ChunkList));
  try {
    for (const result of (await sending.api.assemble(pieces)).results) sending.answered.add(result.sha256);
    return null;
  } catch (error) {
    if (error instanceof PermanentError && error.statusCode === 409 && error.missing.length > 0) {
      sending.log.info({ chunks: error.missing.length, contents: batch.length }, 'the server lacks chunks of contents to assemble; uploading them again');
      for (const sha256 of error.missing) sending.resend.add(sha256);
      return null;
    }
    if (error instanceof PermanentError && !isAuthError(error)) return { refused: error.message };
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** The server's 409 for an upload whose object GC deleted before its rows were committed: upload those contents again. */
function isCollectedWhileUploading(outcome: unknown): outcome is PermanentError {
  return outcome instanceof PermanentError && outcome.statusCode === 409 && outcome.missing.length > 0;
}

async function askMissing(api: ApiClient, hashes: string[]): Promise<Set<string>> {
  const missing = new Set<string>();
  for (const slice of chunked(hashes, LIMITS.missingBatch)) {
    if (slice.length === 0) continue;
    for (const sha of (await api.missing({ hashes: slice })).missing) missing.add(sha);
  }
  return missing;
}

/**
 * Sends one changes request. The server refuses a change naming content the
 * user does not hold (collected by GC in between): those files are taken out
 * of this request (and out of `cacheEntries`), the rest is sent again, and
 * their paths are returned as `refused` for the caller to upload again.
 */
async function commitChanges(
  api: ApiClient,
  runId: string,
  upserts: FileUpsert[],
  cacheEntries: Map<string, CacheEntry>,
  deletes: string[] = [],
): Promise<{ opened: number; closed: number; refused: string[] }> {
  try {
    return { ...(await api.changes(runId, { upserts, deletes })), refused: [] };
  } catch (error) {
    if (!(error instanceof PermanentError) || error.missing.length === 0) throw error;
    const gone = new Set(error.missing);
    const refused = upserts.filter((u) => u.sha256 !== null && gone.has(u.sha256));
    const kept = upserts.filter((u) => u.sha256 === null || !gone.has(u.sha256));
    for (const upsert of refused) cacheEntries.delete(upsert.path);
    return { ...(await api.changes(runId, { upserts: kept, deletes })), refused: refused.map((u) => u.path) };
  }
}
