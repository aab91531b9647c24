import { chmod, chown, link, lstat, mkdir, mkdtemp, open, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VersionsResponse } from '@cairn/shared';
import { ADMIN_PASSWORD, AGENT_MAIN, agentApiGet, envModeAgentEnv, readAgentState, runAgentOnce } from '../helpers/agent-e2e.ts';
import { REPO_ROOT, startProcess, startServerProcess, type ServerProcess } from '../helpers/processes.ts';

/**
 * The tree as a tree, not just its files: directories (empty ones too) with
 * their modes, mtimes and owners, hard links, and sparse files, through a
 * real server and real agent processes.
 */

interface Node {
  kind: 'file' | 'directory' | 'symlink';
  mode: number;
  mtimeMs: number;
  uid: number;
  gid: number;
  size: number;
}

const SPARSE_SIZE = 8 * 1024 * 1024;
const TSX_LOADER = pathToFileURL(path.join(REPO_ROOT, 'node_modules/tsx/dist/esm/index.mjs')).href;
const isRoot = process.getuid?.() === 0;

/** Every entry below (and including) `root`, keyed by relative path. */
async function tree(root: string): Promise<Record<string, Node>> {
  const result: Record<string, Node> = {};
  const walk = async (full: string) => {
    const stats = await lstat(full);
    const kind = stats.isDirectory() ? 'directory' : stats.isSymbolicLink() ? 'symlink' : 'file';
    result[path.relative(root, full) || '.'] = {
      kind,
      mode: kind === 'symlink' ? 0 : stats.mode & 0o7777,
      mtimeMs: Math.trunc(stats.mtimeMs),
      uid: stats.uid,
      gid: stats.gid,
      size: kind === 'directory' ? 0 : stats.size,
    };
    if (stats.isDirectory()) for (const name of await readdir(full)) await walk(path.join(full, name));
  };
  await walk(root);
  return result;
}

async function restore(args: string[]): Promise<{ code: number | null; output: string }> {
  const proc = startProcess(AGENT_MAIN, ['restore', ...args], {});
  const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
  return { code, output: proc.output() };
}

describe('restore brings back the tree as it was', () => {
  let base: string;
  let source: string;
  let stateDir: string;
  let server: ServerProcess;
  let original: Record<string, Node>;
  let restored: string;
  let restoreOutput: string;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-tree-'));
    source = path.join(base, 'tree');
    stateDir = path.join(base, 'agent-state');
    await mkdir(path.join(source, 'empty'), { recursive: true });
    await mkdir(path.join(source, 'private/inner'), { recursive: true });
    await mkdir(path.join(source, 'shared'), { recursive: true });
    await mkdir(path.join(source, 'readonly'), { recursive: true });
    await writeFile(path.join(source, 'private/inner/secret.txt'), 'secret\n');
    await writeFile(path.join(source, 'shared/original.txt'), 'linked twice\n');
    await link(path.join(source, 'shared/original.txt'), path.join(source, 'private/second-name.txt'));
    await writeFile(path.join(source, 'readonly/kept.txt'), 'in a read-only folder\n');

    // 8 MiB with data only in the first and last 4 KiB, and a hole between.
    const sparse = await open(path.join(source, 'sparse.img'), 'w');
    await sparse.write(randomBytes(4096), 0, 4096, 0);
    await sparse.write(randomBytes(4096), 0, 4096, SPARSE_SIZE - 4096);
    await sparse.close();

    if (isRoot) {
      await chown(path.join(source, 'private/inner/secret.txt'), 1234, 5678);
      await chown(path.join(source, 'private'), 4321, 8765);
    }
    await chmod(path.join(source, 'private'), 0o700);
    await chmod(path.join(source, 'private/inner'), 0o750);
    await chmod(path.join(source, 'empty'), 0o751);
    await chmod(path.join(source, 'readonly'), 0o555);
    await chmod(source, 0o750);
    // Directory times last, deepest first: writing inside a directory moves its mtime.
    const old = (iso: string) => new Date(iso);
    await utimes(path.join(source, 'private/inner'), old('2003-03-03T03:03:03.333Z'), old('2003-03-03T03:03:03.333Z'));
    await utimes(path.join(source, 'private'), old('2002-02-02T02:02:02.222Z'), old('2002-02-02T02:02:02.222Z'));
    await utimes(path.join(source, 'empty'), old('2001-01-01T01:01:01.111Z'), old('2001-01-01T01:01:01.111Z'));
    await utimes(path.join(source, 'readonly'), old('2004-04-04T04:04:04.444Z'), old('2004-04-04T04:04:04.444Z'));
    await utimes(path.join(source, 'shared'), old('2005-05-05T05:05:05.555Z'), old('2005-05-05T05:05:05.555Z'));
    await utimes(source, old('2000-06-06T06:06:06.666Z'), old('2000-06-06T06:06:06.666Z'));
    original = await tree(source);

    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD });
    const env = envModeAgentEnv(server.url, stateDir, [source]);
    const { report } = await runAgentOnce(env);
    expect(report).toMatchObject({ status: 'succeeded', filesFailed: 0 });
    // Nothing changed: no new version of anything, directories included; nor after a lost cache (resync).
    expect((await runAgentOnce(env)).report).toMatchObject({ status: 'succeeded', filesChanged: 0 });
    await rm(path.join(stateDir, 'scan-cache.jsonl'));
    expect((await runAgentOnce(env)).report).toMatchObject({ status: 'succeeded', filesChanged: 0, bytesUploaded: 0 });
    const { serverUrl, token } = await readAgentState(stateDir);
    for (const directory of [source, path.join(source, 'private'), path.join(source, 'empty')]) {
      const { versions } = await agentApiGet<VersionsResponse>(serverUrl, token, `/versions?path=${encodeURIComponent(directory)}`);
      expect(versions.map((v) => v.kind), directory).toEqual(['directory']);
    }

    await rm(source, { recursive: true, force: true });
    restored = path.join(base, 'restored');
    const outcome = await restore(['--target', restored, '--state', stateDir]);
    expect(outcome.code, outcome.output).toBe(0);
    restoreOutput = outcome.output;
  });

  afterAll(async () => {
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('restores every directory, empty ones too, with its mode and mtime (the monitored root included)', async () => {
    const again = await tree(path.join(restored, source));
    const directories = (t: Record<string, Node>) =>
      Object.fromEntries(Object.entries(t).filter(([, n]) => n.kind === 'directory').map(([p, n]) => [p, { mode: n.mode, mtimeMs: n.mtimeMs }]));
    expect(directories(again)).toEqual(directories(original));
    // utimes with a Date can land a nanosecond below the millisecond it names, so the whole ms may be one less.
    expect(directories(again)['empty']?.mode).toBe(0o751);
    expect(Date.parse('2001-01-01T01:01:01.111Z') - directories(again)['empty']!.mtimeMs).toBeLessThanOrEqual(1);
    expect(directories(again)['.']?.mode).toBe(0o750);
    expect(Date.parse('2000-06-06T06:06:06.666Z') - directories(again)['.']!.mtimeMs).toBeLessThanOrEqual(1);
    expect(restoreOutput).toContain('6 directories');
  });

  it('restores files with their modes, mtimes and sizes', async () => {
    const again = await tree(path.join(restored, source));
    const files = (t: Record<string, Node>) =>
      Object.fromEntries(Object.entries(t).filter(([, n]) => n.kind === 'file').map(([p, n]) => [p, { mode: n.mode, mtimeMs: n.mtimeMs, size: n.size }]));
    expect(files(again)).toEqual(files(original));
  });

  it('restores a hard-linked pair as one inode with two names', async () => {
    const first = await lstat(path.join(restored, source, 'shared/original.txt'));
    const second = await lstat(path.join(restored, source, 'private/second-name.txt'));
    expect(second.ino).toBe(first.ino);
    expect(first.nlink).toBe(2);
  });

  it('restores a sparse file with its hole', async () => {
    const stats = await lstat(path.join(restored, source, 'sparse.img'));
    expect(stats.size).toBe(SPARSE_SIZE);
    // Dense would be 16,384 blocks of 512 bytes; the two 4 KiB ends need 16 (a little more for metadata).
    expect(stats.blocks * 512).toBeLessThan(SPARSE_SIZE / 8);
  });

  it.runIf(isRoot)('as another user, restores everything but owners, silently', async () => {
    const nobody = 65534;
    const own = path.join(base, 'as-nobody');
    await mkdir(own);
    await chown(own, nobody, nobody);
    await chmod(base, 0o711); // mkdtemp made it root-only; nobody must pass through it to its own folder
    const { serverUrl, token } = await readAgentState(stateDir);
    const child = spawn(process.execPath, ['--import', TSX_LOADER, AGENT_MAIN, 'restore', '--target', own, '--server', serverUrl, '--token', token], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: own },
      uid: nobody,
      gid: nobody,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (data: Buffer) => (output += data.toString()));
    child.stderr.on('data', (data: Buffer) => (output += data.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code, output).toBe(0);
    const again = await tree(path.join(own, source));
    const withoutOwners = (t: Record<string, Node>) => Object.fromEntries(Object.entries(t).map(([p, n]) => [p, { ...n, uid: 0, gid: 0 }]));
    expect(withoutOwners(again)).toEqual(withoutOwners(original));
    expect(new Set(Object.values(again).map((n) => n.uid))).toEqual(new Set([nobody]));
  });

  it.runIf(isRoot)('restores owners when running as root', async () => {
    const again = await tree(path.join(restored, source));
    expect(again['private/inner/secret.txt']).toMatchObject({ uid: 1234, gid: 5678 });
    expect(again['private']).toMatchObject({ uid: 4321, gid: 8765 });
    const owners = (t: Record<string, Node>) => Object.fromEntries(Object.entries(t).map(([p, n]) => [p, [n.uid, n.gid]]));
    expect(owners(again)).toEqual(owners(original));
  });
});
