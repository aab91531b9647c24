import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lchown, link, lstat, lutimes, mkdir, open, rename, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { LIMITS, fsPath, isUnderPrefix, sha256Hex, type Env, type FileVersion } from '@cairn/shared';
import { mapConcurrent } from '../backup/file-hasher.ts';
import { defaultStateDir, resolveUserPath } from '../config/agent-config.ts';
import { ApiClient } from '../net/api-client.ts';
import { errorMessage } from '../net/http-errors.ts';
import { readAgentState } from '../state/agent-state.ts';
import { RESTORE_USAGE, parseRestoreArgs } from './restore-args.ts';
import { RestoreProgress } from './restore-progress.ts';
import { planRestore, type RestorePlan } from './restore-plan.ts';
import { UnsafePathError, lstatOrNull, prepareDestination } from './restore-target.ts';
import { SparseWriter } from './sparse-writer.ts';

const EMPTY_SHA256 = sha256Hex('');

export interface RestoreIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

/** `cairn-agent restore ...`; resolves with the process exit code. */
export async function runRestoreCommand(argv: readonly string[], env: Env, io: RestoreIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const { args, problems } = parseRestoreArgs(argv);
  if (!args) {
    io.stderr.write(`${problems.map((p) => `error: ${p}`).join('\n')}\n\n${RESTORE_USAGE}\n`);
    return 2;
  }
  if (args.help) {
    io.stdout.write(`${RESTORE_USAGE}\n`);
    return 0;
  }
  let serverUrl: string;
  let token: string;
  if (args.server !== undefined && args.token !== undefined) {
    serverUrl = args.server;
    token = args.token;
  } else {
    const stateDir = args.stateDir !== undefined ? resolveUserPath(env, args.stateDir) : defaultStateDir(env);
    const state = await readAgentState(stateDir);
    if (state === null) {
      io.stderr.write(`error: no agent state in ${stateDir}; pass --state DIR or --server URL --token TOKEN\n`);
      return 2;
    }
    serverUrl = state.serverUrl;
    token = state.token;
  }

  const target = resolveUserPath(env, args.target);
  await mkdir(target, { recursive: true });
  const api = new ApiClient({ serverUrl, token });
  try {
    const versions: FileVersion[] = [];
    const query = { limit: LIMITS.maxPageSize, ...(args.asOf ? { asOf: args.asOf } : {}), ...(args.prefix !== '/' ? { prefix: args.prefix } : {}) };
    for await (const page of api.allFiles(query)) for (const file of page) if (isUnderPrefix(file.path, args.prefix)) versions.push(file);
    const plan = planRestore(versions);
    const fileCount = plan.files.length + plan.followers.length + plan.symlinks.length;
    const totalBytes = [...plan.files, ...plan.followers.map((f) => f.file)].reduce((sum, f) => sum + f.size, 0);
    const progress = new RestoreProgress(io.stderr, fileCount, totalBytes);
    io.stderr.write(
      `restoring ${fileCount} files and ${plan.directories.length} directories from ${serverUrl}${args.asOf ? ` as of ${args.asOf}` : ''} into ${target}\n`,
    );
    const options: RestoreOptions = { force: args.force, owners: process.getuid?.() === 0 };
    const directoriesFailed = await carryOut(plan, { api, target, options, progress, concurrency: args.concurrency });
    progress.finish();
    if (progress.failed > 0) io.stderr.write(`${progress.failed} file(s) were NOT restored (see FAILED lines above)\n`);
    if (directoriesFailed > 0) io.stderr.write(`${directoriesFailed} directory(ies) were NOT restored as they were (see FAILED lines above)\n`);
    return progress.failed > 0 || directoriesFailed > 0 ? 1 : 0;
  } catch (error) {
    io.stderr.write(`error: ${errorMessage(error)}\n`);
    return 1;
  } finally {
    await api.close();
  }
}

/** Where a restore counts and reports: RestoreProgress on a terminal, a restore job's report otherwise. */
export interface RestoreTally {
  doneFiles: number;
  doneBytes: number;
  failed: number;
  update(): void;
  /** One path that could not be restored (as it was), and why. */
  failure(path: string, error: string): void;
}

export interface RestoreRun {
  api: ApiClient;
  target: string;
  options: RestoreOptions;
  progress: RestoreTally;
  concurrency: number;
  /** Aborted: no further file or directory is started (a cancelled restore job). */
  signal?: AbortSignal;
}

/**
 * Carries out a plan in its order (see RestorePlan). Each failure is printed
 * and counted (files in `progress.failed`) and the rest goes on; returns how
 * many directories could not be made or given their metadata.
 */
export async function carryOut(plan: RestorePlan, { api, target, options, progress, concurrency, signal }: RestoreRun): Promise<number> {
  const onBytes = (bytes: number) => {
    progress.doneBytes += bytes;
    progress.update();
  };
  let directoriesFailed = 0;
  const directoryStep = async (directory: FileVersion, step: () => Promise<unknown>) => {
    if (signal?.aborted) return;
    try {
      await step();
    } catch (error) {
      directoriesFailed += 1;
      progress.failure(directory.path, errorMessage(error));
    }
  };
  const fileStep = async (file: FileVersion, step: () => Promise<unknown>) => {
    if (signal?.aborted) return;
    try {
      await step();
    } catch (error) {
      progress.failed += 1;
      progress.failure(file.path, errorMessage(error));
    } finally {
      progress.doneFiles += 1;
      progress.update();
    }
  };

  // Directories this restore made (or, with --force, found) get their metadata at the end.
  const made = new Set<FileVersion>();
  for (const directory of plan.directories) {
    await directoryStep(directory, async () => {
      if (await createDirectory(target, directory, options)) made.add(directory);
    });
  }
  const written = new Map<FileVersion, WrittenFile>();
  await mapConcurrent(plan.files, concurrency, (file) =>
    fileStep(file, async () => written.set(file, await restoreFile(api, target, file, options, onBytes))),
  );
  // A follower whose first name failed, or cannot be linked to here, is written with its own content.
  await mapConcurrent(plan.followers, concurrency, ({ file, leader }) =>
    fileStep(file, async () => {
      const first = written.get(leader);
      if (first && (await linkToWritten(target, file, first, options))) onBytes(file.size);
      else await restoreFile(api, target, file, options, onBytes);
    }),
  );
  await mapConcurrent(plan.symlinks, 1, (file) => fileStep(file, () => restoreFile(api, target, file, options, onBytes)));
  for (const directory of plan.directoriesDeepestFirst) {
    if (made.has(directory)) await directoryStep(directory, () => finishDirectory(target, directory, options));
  }
  return directoriesFailed;
}

export interface RestoreOptions {
  /** Replace what is already in the target. */
  force: boolean;
  /** Set owners (lchown/fchown): only root may give files away, so only when running as root. */
  owners: boolean;
}

/** A regular file this restore wrote: where, and which inode, so a hard link to it can be checked. */
export interface WrittenFile {
  destination: string;
  dev: number;
  ino: number;
}

/** Seconds for utimes; half a microsecond up: seconds as a double would otherwise land just below the whole millisecond. */
const utimeOf = (mtimeMs: number) => (mtimeMs + 0.0005) / 1000;

const ownerOf = (file: FileVersion, options: RestoreOptions): { uid: number; gid: number } | null =>
  options.owners && file.uid != null && file.gid != null ? { uid: file.uid, gid: file.gid } : null;

function tempNear(destination: string): string {
  return path.join(path.dirname(destination), `.cairn-restore-${randomBytes(6).toString('hex')}.tmp`);
}

/** Where a file or symlink goes; refuses to replace anything without --force, and never a directory. */
async function fileDestination(target: string, file: FileVersion, options: RestoreOptions): Promise<string> {
  const destination = await prepareDestination(target, file.path);
  const existing = await lstatOrNull(destination);
  if (existing !== null) {
    if (!options.force) throw new Error('already exists in the target (use --force to overwrite)');
    if (existing.isDirectory()) throw new Error('a directory is in the way');
  }
  return destination;
}

/**
 * Restores one file or symlink: content streamed into a temp file next to
 * the destination (created exclusively, never through a symlink), hashed
 * while written, with all-zero blocks left as holes; owner (as root), mode
 * and mtime set, then renamed into place. A hash mismatch leaves nothing
 * behind and fails this file only.
 */
export async function restoreFile(
  api: ApiClient,
  target: string,
  file: FileVersion,
  options: RestoreOptions,
  onBytes: (bytes: number) => void,
): Promise<WrittenFile> {
  const destination = await fileDestination(target, file, options);
  const temp = tempNear(destination);
  try {
    let inode: { dev: number; ino: number };
    if (file.kind === 'symlink') {
      await symlink(fsPath(file.linkTarget ?? ''), fsPath(temp));
      const owner = ownerOf(file, options);
      if (owner) await lchown(fsPath(temp), owner.uid, owner.gid);
      await lutimes(fsPath(temp), utimeOf(file.mtimeMs), utimeOf(file.mtimeMs));
      inode = await lstat(fsPath(temp));
    } else {
      inode = await writeVerified(api, temp, file, options, onBytes);
    }
    await rename(fsPath(temp), fsPath(destination));
    return { destination, dev: inode.dev, ino: inode.ino };
  } catch (error) {
    await unlink(fsPath(temp)).catch(() => undefined);
    throw error;
  }
}

async function writeVerified(
  api: ApiClient,
  temp: string,
  file: FileVersion,
  options: RestoreOptions,
  onBytes: (bytes: number) => void,
): Promise<{ dev: number; ino: number }> {
  const handle = await open(fsPath(temp), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    if (!(file.size === 0 && file.sha256 === EMPTY_SHA256)) {
      if (file.sha256 === null) throw new Error('the server lists no content for this file');
      const hash = createHash('sha256');
      const writer = new SparseWriter(handle);
      let written = 0;
      const body = await api.download(file.sha256);
      for await (const chunk of body as AsyncIterable<Buffer>) {
        hash.update(chunk);
        await writer.write(chunk);
        written += chunk.length;
        onBytes(chunk.length);
      }
      await writer.finish();
      const actual = hash.digest('hex');
      if (actual !== file.sha256 || written !== file.size) {
        throw new Error(`content does not match its hash (expected ${file.sha256}, ${file.size} bytes; got ${actual}, ${written} bytes)`);
      }
    }
    // Owner before mode: chown clears the set-user-id and set-group-id bits.
    const owner = ownerOf(file, options);
    if (owner) await handle.chown(owner.uid, owner.gid);
    await handle.chmod(file.mode & 0o7777);
    await handle.utimes(utimeOf(file.mtimeMs), utimeOf(file.mtimeMs));
    return await handle.stat();
  } finally {
    await handle.close();
  }
}

/**
 * Restores `file` as another name of the inode this restore wrote for the
 * first member of its hard-link group: link() to a temp name next to the
 * destination (inside the target, checked like any file's), the temp name
 * checked to be that very inode, then renamed into place. False when a link
 * cannot be made here (another filesystem, no hard links): the caller then
 * writes the file with its content instead.
 */
export async function linkToWritten(target: string, file: FileVersion, first: WrittenFile, options: RestoreOptions): Promise<boolean> {
  const destination = await fileDestination(target, file, options);
  const temp = tempNear(destination);
  try {
    await link(fsPath(first.destination), fsPath(temp));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EXDEV' || code === 'EPERM' || code === 'EMLINK' || code === 'ENOTSUP' || code === 'ENOENT') return false;
    throw error;
  }
  try {
    const linked = await lstat(fsPath(temp));
    if (!linked.isFile() || linked.dev !== first.dev || linked.ino !== first.ino) {
      throw new Error(`${first.destination} was replaced in the target while restoring; not linked`);
    }
    await rename(fsPath(temp), fsPath(destination));
    return true;
  } catch (error) {
    await unlink(fsPath(temp)).catch(() => undefined);
    throw error;
  }
}

/**
 * Makes a backed-up directory in the target (owner-only while the restore
 * writes into it; `finishDirectory` gives it its own mode later). True when
 * this restore should set its metadata: it made it, or found it and --force
 * is set. A symlink or a non-directory in its place is refused.
 */
export async function createDirectory(target: string, directory: FileVersion, options: RestoreOptions): Promise<boolean> {
  const destination = await prepareDestination(target, directory.path);
  try {
    await mkdir(fsPath(destination), { mode: 0o700 });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const existing = await lstat(fsPath(destination));
  if (existing.isSymbolicLink()) throw new UnsafePathError(directory.path, `${destination} is a symlink inside the target`);
  if (!existing.isDirectory()) throw new Error('a non-directory is in the way');
  return options.force;
}

/**
 * Gives a restored directory its owner (as root), mode and mtime, through a
 * descriptor opened with O_NOFOLLOW|O_DIRECTORY on a path checked again for
 * symlinks, so a directory swapped for a link meanwhile is never followed.
 */
export async function finishDirectory(target: string, directory: FileVersion, options: RestoreOptions): Promise<void> {
  const destination = await prepareDestination(target, directory.path);
  const handle = await open(fsPath(destination), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    const owner = ownerOf(directory, options);
    if (owner) await handle.chown(owner.uid, owner.gid);
    await handle.chmod(directory.mode & 0o7777);
    await handle.utimes(utimeOf(directory.mtimeMs), utimeOf(directory.mtimeMs));
  } finally {
    await handle.close();
  }
}
