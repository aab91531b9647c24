import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, open, readdir, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chunkLengths, DEFAULT_CHUNKER_PARAMS, sha256Hex } from '@cairn/shared';
import { ADMIN_PASSWORD, AGENT_MAIN, damageStoredChunk, envModeAgentEnv, readAgentState, runAgentOnce } from '../helpers/agent-e2e.ts';
import { startProcess, startServerProcess, type ServerProcess } from '../helpers/processes.ts';

interface Snapshot {
  kind: 'file' | 'symlink';
  mode: number;
  mtimeMs: number;
  sha256?: string;
  linkTarget?: string;
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every file and symlink below `root`, keyed by relative path: content hash, permission bits, whole-ms mtime. */
async function snapshot(root: string): Promise<Record<string, Snapshot>> {
  const result: Record<string, Snapshot> = {};
  const walk = async (dir: string) => {
    for (const name of await readdir(dir)) {
      const full = path.join(dir, name);
      const stats = await lstat(full);
      const rel = path.relative(root, full);
      if (stats.isDirectory()) await walk(full);
      else if (stats.isSymbolicLink()) result[rel] = { kind: 'symlink', mode: 0, mtimeMs: Math.trunc(stats.mtimeMs), linkTarget: await readlink(full) };
      else result[rel] = { kind: 'file', mode: stats.mode & 0o7777, mtimeMs: Math.trunc(stats.mtimeMs), sha256: await hashFile(full) };
    }
  };
  await walk(root);
  return result;
}

async function restore(args: string[]): Promise<{ code: number | null; output: string }> {
  const proc = startProcess(AGENT_MAIN, ['restore', ...args], {});
  const code = await new Promise<number | null>((resolve) => proc.child.once('exit', resolve));
  return { code, output: proc.output() };
}

describe('restore round trip through the real server', () => {
  const mediumBytes = randomBytes(3 * 1024 * 1024 + 17);
  let base: string;
  let dataDir: string;
  let tree: string;
  let stateDir: string;
  let server: ServerProcess;
  let original: Record<string, Snapshot>;

  beforeAll(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'cairn-e2e-restore-'));
    dataDir = path.join(base, 'server');
    tree = path.join(base, 'tree');
    stateDir = path.join(base, 'agent-state');
    await mkdir(path.join(tree, 'a/b/c/d'), { recursive: true });
    await mkdir(path.join(tree, 'Ünïcødé ✓/日本語'), { recursive: true });
    await writeFile(path.join(tree, 'a/b/c/d/deep.txt'), 'deep\n');
    await writeFile(path.join(tree, 'Ünïcødé ✓/日本語/ファイル.txt'), 'こんにちは\n');
    await writeFile(path.join(tree, 'a/with spaces and (parens).md'), '# spaces\n');
    await writeFile(path.join(tree, 'a/empty'), '');
    await writeFile(path.join(tree, 'a/new\nline and\ttab.txt'), 'odd name\n');
    await writeFile(path.join(tree, 'a/b/empty too'), '');
    await writeFile(path.join(tree, 'script.sh'), '#!/bin/sh\necho hi\n');
    await chmod(path.join(tree, 'script.sh'), 0o750);
    await writeFile(path.join(tree, 'private'), 'secret');
    await chmod(path.join(tree, 'private'), 0o600);
    await symlink('a/b/c/d/deep.txt', path.join(tree, 'link-to-deep'));
    await symlink('/nonexistent/elsewhere', path.join(tree, 'a/dangling link'));
    const big = await open(path.join(tree, 'big.bin'), 'w');
    const block = randomBytes(1 << 20);
    for (let i = 0; i < 100; i += 1) {
      block.writeUInt32LE(i, 0); // every MiB differs
      await big.write(block);
    }
    await big.close();
    // Several MiB: the server has sent its first bytes before it can know they are damaged.
    await writeFile(path.join(tree, 'a/medium.bin'), mediumBytes);
    await utimes(path.join(tree, 'a/empty'), new Date('2001-02-03T04:05:06.789Z'), new Date('2001-02-03T04:05:06.789Z'));
    original = await snapshot(tree);

    server = await startServerProcess({ DATA_DIR: dataDir, ADMIN_PASSWORD });
    const { report } = await runAgentOnce(envModeAgentEnv(server.url, stateDir, [tree]));
    expect(report).toMatchObject({ status: 'succeeded', filesFailed: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('restores the wiped tree byte for byte, with modes, mtimes and symlinks', async () => {
    await rm(tree, { recursive: true, force: true });
    const target = path.join(base, 'restored');
    const { code, output } = await restore(['--target', target, '--state', stateDir]);
    expect(code, output).toBe(0);
    const count = Object.keys(original).length;
    expect(output).toContain(`restored: ${count}/${count} files`);
    expect(await snapshot(path.join(target, tree))).toEqual(original);
  });

  it('refuses to overwrite existing files unless --force', async () => {
    const target = path.join(base, 'restored');
    const refused = await restore(['--target', target, '--state', stateDir, '--prefix', path.join(tree, 'a/b')]);
    expect(refused.code).toBe(1);
    expect(refused.output).toContain('already exists in the target (use --force to overwrite)');
    await writeFile(path.join(target, tree, 'a/b/c/d/deep.txt'), 'overwritten locally');
    const forced = await restore(['--target', target, '--state', stateDir, '--prefix', path.join(tree, 'a/b'), '--force']);
    expect(forced.code, forced.output).toBe(0);
    expect((await snapshot(path.join(target, tree)))['a/b/c/d/deep.txt']).toEqual(original['a/b/c/d/deep.txt']);
  });

  it('never writes through a symlink planted in the target', async () => {
    const target = path.join(base, 'planted');
    const outside = path.join(base, 'outside');
    await mkdir(outside);
    await mkdir(path.join(target, path.dirname(tree)), { recursive: true });
    await symlink(outside, path.join(target, tree));
    const { code, output } = await restore(['--target', target, '--state', stateDir]);
    expect(code).toBe(1);
    expect(output).toContain('is a symlink inside the target');
    expect(await readdir(outside)).toEqual([]);
  });

  it('restores the tree as of an earlier time', async () => {
    const target = path.join(base, 'as-of');
    const { code, output } = await restore(['--target', target, '--state', stateDir, '--as-of', '2000-01-01T00:00:00Z']);
    expect(code, output).toBe(0);
    expect(output).toContain('restoring 0 files');
  });

  it('damaged stored chunks fail those files loudly and the rest still restore', async () => {
    const deep = original['a/b/c/d/deep.txt']?.sha256 as string;
    const medium = original['a/medium.bin']?.sha256 as string;
    const unicode = original['Ünïcødé ✓/日本語/ファイル.txt']?.sha256 as string;
    // The chunk of a.medium.bin that holds its byte 1,500,000, as the agent cut it.
    let at = 0;
    let middleChunk = '';
    for (const length of chunkLengths(mediumBytes, DEFAULT_CHUNKER_PARAMS)) {
      if (at <= 1_500_000 && 1_500_000 < at + length) middleChunk = sha256Hex(mediumBytes.subarray(at, at + length));
      at += length;
    }
    // A small file's stored bytes overwritten; one byte flipped in a chunk in the middle of a large file; a small
    // file's stored bytes cut to zeros (each a chunk inside a pack, found by the packs' own indexes).
    await damageStoredChunk(dataDir, deep, (stored) => stored.fill(0x44));
    await damageStoredChunk(dataDir, middleChunk, (stored) => (stored[Math.floor(stored.length / 2)]! ^= 0x01));
    await damageStoredChunk(dataDir, unicode, (stored) => stored.fill(0));

    const target = path.join(base, 'corrupt');
    const { code, output } = await restore(['--target', target, '--state', stateDir]);
    expect(code, output).toBe(1);
    for (const name of ['a/b/c/d/deep.txt', 'a/medium.bin', 'Ünïcødé ✓/日本語/ファイル.txt']) {
      expect(output).toContain(`FAILED ${path.join(tree, name)}: stored content is damaged or missing`);
    }
    expect(output).toContain('3 file(s) were NOT restored');
    const restored = await snapshot(path.join(target, tree));
    expect(restored['a/b/c/d/deep.txt']).toBeUndefined();
    expect(restored['a/medium.bin']).toBeUndefined();
    expect(restored['big.bin']).toEqual(original['big.bin']);
    expect(Object.keys(restored)).toHaveLength(Object.keys(original).length - 3);

    // The server named each one at error level: the client, the file's path, the hash.
    const { clientId } = await readAgentState(stateDir);
    const errors = server
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level: number; clientId?: string; paths?: string[]; sha256?: string })
      .filter((line) => line.level === 50 && line.sha256 !== undefined);
    for (const [name, sha256] of [['a/b/c/d/deep.txt', deep], ['a/medium.bin', medium], ['Ünïcødé ✓/日本語/ファイル.txt', unicode]] as const) {
      expect(errors.some((line) => line.sha256 === sha256 && line.clientId === clientId && line.paths?.includes(path.join(tree, name))), name).toBe(true);
    }
  });
});
