/**
 * Entries that used to take their whole directory (or the whole run) down
 * with them (issue 9), through the real server and agent processes: names
 * that are not valid UTF-8, paths longer than PATH_MAX, and files appended to
 * while they are read.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_PREFIX, encodePosixPath, sha256Hex, type FilesPage, type FileVersion, type VersionsResponse } from '@cairn/shared';
import { AGENT_MAIN, ADMIN_PASSWORD, DashboardSession, agentApiGet, envModeAgentEnv, readAgentState, runAgentOnce } from '../helpers/agent-e2e.ts';
import { startProcess, startServerProcess, type ServerProcess } from '../helpers/processes.ts';

/** A path as raw bytes: strings are UTF-8, numbers single bytes, buffers themselves. */
function bytesOf(...parts: (string | number | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((part) => (typeof part === 'number' ? Buffer.of(part) : Buffer.from(part))));
}

/** The current files and symlinks below `prefix` (directory entries left out: agent-restore-tree covers those). */
async function currentFiles(serverUrl: string, token: string, prefix: string): Promise<FileVersion[]> {
  const page = await agentApiGet<FilesPage>(serverUrl, token, `/files?limit=1000&prefix=${encodeURIComponent(prefix)}`);
  return page.files.filter((file) => file.kind !== 'directory');
}

async function restore(args: string[]): Promise<{ code: number | null; output: string }> {
  const proc = startProcess(AGENT_MAIN, ['restore', ...args], {});
  const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
  return { code, output: proc.output() };
}

describe('odd entries through the real server and agent', () => {
  let base: string;
  let server: ServerProcess;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-odd-'));
    server = await startServerProcess({ DATA_DIR: path.join(base, 'server'), ADMIN_PASSWORD });
  });
  afterAll(async () => {
    await server?.stop();
    // GNU rm walks with openat: node's rm cannot remove paths longer than PATH_MAX.
    execFileSync('rm', ['-rf', base]);
  });

  it('backs up, lists and restores names that are not valid UTF-8 byte-exact, and deletes none of their siblings', async () => {
    const tree = path.join(base, 'latin1');
    const stateDir = path.join(base, 'latin1-state');
    await mkdir(path.join(tree, 'docs'), { recursive: true });
    await writeFile(path.join(tree, 'docs/a.txt'), 'sibling a');
    await writeFile(path.join(tree, 'docs/b.txt'), 'sibling b');
    const first = await runAgentOnce(envModeAgentEnv(server.url, stateDir, [tree]));
    expect(first.report).toMatchObject({ status: 'succeeded', filesChanged: 2 });

    // Latin-1 names: a file next to the siblings, a directory with a file in it, a symlink with a Latin-1 target.
    const resume = bytesOf(tree, '/docs/r', 0xe9, 'sum', 0xe9, '.txt');
    const dir = bytesOf(tree, '/docs/caf', 0xe9);
    const inner = bytesOf(tree, '/docs/caf', 0xe9, '/men', 0xfc, '.txt');
    const link = bytesOf(tree, '/docs/lien');
    await writeFile(resume, 'latin-1 name');
    await mkdir(dir);
    await writeFile(inner, 'inside a latin-1 directory');
    await symlink(bytesOf('caf', 0xe9, '/men', 0xfc, '.txt'), link);
    const second = await runAgentOnce(envModeAgentEnv(server.url, stateDir, [tree]));
    expect(second.report).toMatchObject({ status: 'succeeded', filesChanged: 3, filesDeleted: 0, filesFailed: 0 });

    const { token, clientId } = await readAgentState(stateDir);
    const listed = await currentFiles(server.url, token, tree);
    expect(listed.map((f) => f.path).sort()).toEqual(
      [path.join(tree, 'docs/a.txt'), path.join(tree, 'docs/b.txt'), encodePosixPath(resume), encodePosixPath(inner), encodePosixPath(link)].sort(),
    );
    expect(listed.find((f) => f.path === encodePosixPath(link))?.linkTarget).toBe(encodePosixPath(bytesOf('caf', 0xe9, '/men', 0xfc, '.txt')));

    const target = path.join(base, 'latin1-restored');
    const { code, output } = await restore(['--target', target, '--state', stateDir, '--prefix', tree]);
    expect(code, output).toBe(0);
    const restoredDocs = bytesOf(target, tree, '/docs');
    const names = (await readdir(restoredDocs, { encoding: 'buffer' })).map((name) => name.toString('hex')).sort();
    expect(names).toEqual(['a.txt', 'b.txt', bytesOf('r', 0xe9, 'sum', 0xe9, '.txt'), bytesOf('caf', 0xe9), 'lien'].map((n) => Buffer.from(n).toString('hex')).sort());
    expect(await readFile(bytesOf(target, resume))).toEqual(Buffer.from('latin-1 name'));
    expect(await readFile(bytesOf(target, inner))).toEqual(Buffer.from('inside a latin-1 directory'));
    expect(await readlink(bytesOf(target, link), { encoding: 'buffer' })).toEqual(bytesOf('caf', 0xe9, '/men', 0xfc, '.txt'));

    // Each run's summary reaches the client's log on the server at info level, not only its errors.
    const session = new DashboardSession(server.url);
    await session.login();
    const logs = await session.clientLogs(clientId);
    expect(logs).toMatch(/level-info">info<\/span><\/td><td class="mono small msg">backup run succeeded: 5 files scanned, 3 changed, 0 deleted, 0 failed/);
  });

  it('a file appended to all the time is stored as read, flagged on its version, and reported as a warning', async () => {
    const tree = path.join(base, 'growing');
    const stateDir = path.join(base, 'growing-state');
    await mkdir(tree);
    const log = path.join(tree, 'app.log');
    await writeFile(log, randomBytes(32 << 20));
    await writeFile(path.join(tree, 'calm.txt'), 'calm');
    // Appends all the time, from another process: every read of the 32 MiB file sees it grow.
    const writer = spawn('bash', ['-c', 'while :; do printf "another line\\n" >> "$1"; done', 'bash', log], { stdio: 'ignore' });
    let result: Awaited<ReturnType<typeof runAgentOnce>>;
    try {
      result = await runAgentOnce(envModeAgentEnv(server.url, stateDir, [tree]));
    } finally {
      writer.kill('SIGKILL');
      await once(writer, 'exit');
    }
    expect(result.report).toMatchObject({ status: 'succeeded', filesChanged: 2, filesFailed: 0 });
    expect(result.output).toContain('app.log: changed while being read 3 times; stored the bytes as read');

    const { token, clientId } = await readAgentState(stateDir);
    const [version] = (await agentApiGet<VersionsResponse>(server.url, token, `/versions?path=${encodeURIComponent(log)}`)).versions;
    expect(version?.changedWhileRead).toBe(true);
    const [calm] = (await agentApiGet<VersionsResponse>(server.url, token, `/versions?path=${encodeURIComponent(path.join(tree, 'calm.txt'))}`)).versions;
    expect(calm?.changedWhileRead).toBeUndefined();
    // Stored exactly as read: a prefix of what the file became (it is only appended to), hashing to the recorded hash.
    const response = await fetch(`${server.url}${API_PREFIX}/contents/${version?.sha256}`, { headers: { authorization: `Bearer ${token}` } });
    const stored = Buffer.from(await response.arrayBuffer());
    expect(stored.length).toBe(version?.size);
    expect(stored.length).toBeGreaterThanOrEqual(32 << 20);
    expect(sha256Hex(stored)).toBe(version?.sha256);
    expect((await readFile(log)).subarray(0, stored.length).equals(stored)).toBe(true);
    // The spooled copy is gone once the run is over.
    expect(await readdir(path.join(stateDir, 'spool'))).toEqual([]);

    const session = new DashboardSession(server.url);
    await session.login();
    expect(await session.versionsPage(clientId, log)).toContain('changed while being read</span>');
    expect(await session.clientLogs(clientId)).toContain('app.log: changed while being read 3 times');
  });

  it('a path longer than PATH_MAX fails on its own: its siblings stay backed up, nothing is deleted, later runs still work', async () => {
    const tree = path.join(base, 'deep');
    const stateDir = path.join(base, 'deep-state');
    await mkdir(tree);
    await writeFile(path.join(tree, 'top.txt'), 'top');
    // A directory whose own path is just under PATH_MAX (4,096 bytes): a short name fits in it, a long one does not.
    let deep = tree;
    while (Buffer.byteLength(deep) + 241 < 3_950) deep = path.join(deep, 'd'.repeat(240));
    deep = path.join(deep, 'e'.repeat(3_950 - Buffer.byteLength(deep) - 1));
    await mkdir(deep, { recursive: true });
    await writeFile(path.join(deep, 'short.txt'), 'fits');
    const first = await runAgentOnce(envModeAgentEnv(server.url, stateDir, [tree]));
    expect(first.report).toMatchObject({ status: 'succeeded', filesChanged: 2 });

    const longName = 'L'.repeat(250);
    expect(Buffer.byteLength(path.join(deep, longName))).toBeGreaterThan(4_096);
    execFileSync('bash', ['-c', 'cd "$1" && echo too long > "$2"', 'bash', deep, longName]);
    await writeFile(path.join(tree, 'new.txt'), 'new');
    for (let run = 0; run < 2; run += 1) {
      const { report, output } = await runAgentOnce(envModeAgentEnv(server.url, stateDir, [tree]));
      expect(report).toMatchObject({ status: 'partial', filesDeleted: 0, filesFailed: 1 });
      expect(output).toContain('ENAMETOOLONG');
    }
    const { token } = await readAgentState(stateDir);
    expect((await currentFiles(server.url, token, tree)).map((f) => f.path).sort()).toEqual(
      [path.join(deep, 'short.txt'), path.join(tree, 'new.txt'), path.join(tree, 'top.txt')].sort(),
    );
  });
});
