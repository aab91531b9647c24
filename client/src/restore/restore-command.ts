import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lutimes, mkdir, open, rename, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { LIMITS, fsPath, isUnderPrefix, sha256Hex, type Env, type FileVersion } from '@cairn/shared';
import { mapConcurrent } from '../backup/file-hasher.ts';
import { defaultStateDir, resolveUserPath } from '../config/agent-config.ts';
import { ApiClient } from '../net/api-client.ts';
import { errorMessage } from '../net/http-errors.ts';
import { readAgentState } from '../state/agent-state.ts';
import { RESTORE_USAGE, parseRestoreArgs } from './restore-args.ts';
import { RestoreProgress } from './restore-progress.ts';
import { lstatOrNull, prepareDestination } from './restore-target.ts';

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
    const files: FileVersion[] = [];
    const query = { limit: LIMITS.maxPageSize, ...(args.asOf ? { asOf: args.asOf } : {}), ...(args.prefix !== '/' ? { prefix: args.prefix } : {}) };
    for await (const page of api.allFiles(query)) for (const file of page) if (isUnderPrefix(file.path, args.prefix)) files.push(file);
    // Regular files first, symlinks last: nothing is ever written below a link this restore created.
    files.sort((a, b) => (a.kind === b.kind ? (a.path < b.path ? -1 : 1) : a.kind === 'symlink' ? 1 : -1));
    const totalBytes = files.reduce((sum, f) => sum + (f.kind === 'file' ? f.size : 0), 0);
    const progress = new RestoreProgress(io.stderr, files.length, totalBytes);
    io.stderr.write(`restoring ${files.length} files from ${serverUrl}${args.asOf ? ` as of ${args.asOf}` : ''} into ${target}\n`);
    const regular = files.filter((f) => f.kind === 'file');
    const links = files.filter((f) => f.kind === 'symlink');
    const restoreOne = async (file: FileVersion) => {
      try {
        await restoreFile(api, target, file, args.force, (bytes) => {
          progress.doneBytes += bytes;
          progress.update();
        });
      } catch (error) {
        progress.failed += 1;
        progress.print(`FAILED ${file.path}: ${errorMessage(error)}`);
      } finally {
        progress.doneFiles += 1;
        progress.update();
      }
    };
    await mapConcurrent(regular, args.concurrency, restoreOne);
    await mapConcurrent(links, 1, restoreOne);
    progress.finish();
    if (progress.failed > 0) io.stderr.write(`${progress.failed} file(s) were NOT restored (see FAILED lines above)\n`);
    return progress.failed > 0 ? 1 : 0;
  } catch (error) {
    io.stderr.write(`error: ${errorMessage(error)}\n`);
    return 1;
  } finally {
    await api.close();
  }
}


/**
 * Restores one version: content streamed into a temp file next to the
 * destination (created exclusively, never through a symlink), hashed while
 * written, mode and mtime set, then renamed into place. A hash mismatch
 * leaves nothing behind and fails this file only.
 */
export async function restoreFile(api: ApiClient, target: string, file: FileVersion, force: boolean, onBytes: (bytes: number) => void): Promise<void> {
  const destination = await prepareDestination(target, file.path);
  const existing = await lstatOrNull(destination);
  if (existing !== null) {
    if (!force) throw new Error('already exists in the target (use --force to overwrite)');
    if (existing.isDirectory()) throw new Error('a directory is in the way');
  }
  const temp = path.join(path.dirname(destination), `.cairn-restore-${randomBytes(6).toString('hex')}.tmp`);
  // Half a microsecond up: seconds as a double would otherwise land just below the whole millisecond.
  const mtime = (file.mtimeMs + 0.0005) / 1000;
  try {
    if (file.kind === 'symlink') {
      await symlink(fsPath(file.linkTarget ?? ''), fsPath(temp));
      await lutimes(fsPath(temp), mtime, mtime);
    } else {
      await writeVerified(api, temp, file, onBytes);
    }
    await rename(fsPath(temp), fsPath(destination));
  } catch (error) {
    await unlink(fsPath(temp)).catch(() => undefined);
    throw error;
  }
}

async function writeVerified(api: ApiClient, temp: string, file: FileVersion, onBytes: (bytes: number) => void): Promise<void> {
  const handle = await open(fsPath(temp), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    if (!(file.size === 0 && file.sha256 === EMPTY_SHA256)) {
      if (file.sha256 === null) throw new Error('the server lists no content for this file');
      const hash = createHash('sha256');
      let written = 0;
      const body = await api.download(file.sha256);
      for await (const chunk of body as AsyncIterable<Buffer>) {
        hash.update(chunk);
        let offset = 0;
        while (offset < chunk.length) offset += (await handle.write(chunk, offset)).bytesWritten;
        written += chunk.length;
        onBytes(chunk.length);
      }
      const actual = hash.digest('hex');
      if (actual !== file.sha256 || written !== file.size) {
        throw new Error(`content does not match its hash (expected ${file.sha256}, ${file.size} bytes; got ${actual}, ${written} bytes)`);
      }
    }
    await handle.chmod(file.mode & 0o7777);
    const mtime = (file.mtimeMs + 0.0005) / 1000;
    await handle.utimes(mtime, mtime);
  } finally {
    await handle.close();
  }
}
